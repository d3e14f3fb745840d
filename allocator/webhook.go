package allocator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/internal/webhook"
)

// WebhookDecision is the JSON document the webhook actuator POSTs for each
// decision it carries, signed with X-Wattpool-Signature (internal/webhook).
// The field names are a contract with the operator's fleet manager: add
// fields, never rename them.
//
//	{
//	  "type": "allocator.decision",
//	  "mode": "act",
//	  "group": "rack1",
//	  "time": "2026-03-01T17:00:00Z",
//	  "before": "mining",
//	  "after": "curtailed",
//	  "action": "curtail",
//	  "idle": false,
//	  "rule": "lease_wins",
//	  "mining_usd_per_mwh": 12.5,
//	  "curtailed_usd_per_mwh": 80,
//	  "joules_per_th": 17.5,
//	  "next_switch": "2026-03-01T17:30:00Z"
//	}
type WebhookDecision struct {
	// Type tells this document apart from the other webhooks wattpool
	// sends to the same receiver: always "allocator.decision".
	Type string `json:"type"`
	// Mode is the allocator's mode (only "act" reaches an actuator).
	Mode  Mode   `json:"mode"`
	Group string `json:"group"`
	// Time is the evaluation's time (RFC 3339, UTC).
	Time   time.Time `json:"time"`
	Before string    `json:"before"`
	After  string    `json:"after"`
	// Action is what the receiver should do: "curtail" (stop hashing),
	// "resume" (start again) or "none" (no change, sent only when a
	// caller repeats a decision that did not switch).
	Action string `json:"action"`
	// Idle is set when the group is curtailed but its power is not leased.
	Idle bool `json:"idle"`
	// Rule is the rule that decided (lease_wins, mining_wins, firm,
	// emergency, override, external, …).
	Rule string `json:"rule"`
	// MiningUSDPerMWh and CurtailedUSDPerMWh are the two values the
	// policy compared, in US dollars per MWh of the group's power.
	MiningUSDPerMWh    float64 `json:"mining_usd_per_mwh"`
	CurtailedUSDPerMWh float64 `json:"curtailed_usd_per_mwh"`
	// JoulesPerTH is the group's nominal efficiency.
	JoulesPerTH float64 `json:"joules_per_th"`
	// NextSwitch is the earliest time min_on/min_off allow the next
	// switch; omitted when unknown.
	NextSwitch *time.Time `json:"next_switch,omitempty"`
}

// Actions a WebhookDecision asks for.
const (
	WebhookCurtail = "curtail"
	WebhookResume  = "resume"
	WebhookNone    = "none"
)

// NewWebhookDecision is the document sent for d in mode.
func NewWebhookDecision(d Decision, mode Mode) WebhookDecision {
	action := WebhookNone
	switch {
	case d.Switched() && d.After == Curtailed:
		action = WebhookCurtail
	case d.Switched() && d.After == Mining:
		action = WebhookResume
	}
	w := WebhookDecision{
		Type: "allocator.decision", Mode: mode, Group: d.Group, Time: d.Time.UTC(),
		Before: d.Before.String(), After: d.After.String(), Action: action, Idle: d.Idle, Rule: string(d.Rule),
		MiningUSDPerMWh: finite(d.MiningUSDPerMWh), CurtailedUSDPerMWh: finite(d.CurtailedUSDPerMWh),
		JoulesPerTH: finite(d.JoulesPerTH),
	}
	if !d.NextSwitch.IsZero() {
		ns := d.NextSwitch.UTC()
		w.NextSwitch = &ns
	}
	return w
}

// finite makes a value JSON can carry: encoding/json refuses NaN and ±Inf,
// and a decision must still be delivered when a value was not computable.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// SecretFromEnv reads the webhook's HMAC secret from the environment
// variable spec.SecretEnv names (lookup is os.LookupEnv in production). A
// missing or empty variable is an error naming the variable, never its
// value: an unsigned webhook would let anyone switch the fleet.
func SecretFromEnv(spec WebhookSpec, lookup func(string) (string, bool)) ([]byte, error) {
	if spec.SecretEnv == "" {
		return nil, errors.New("allocator.webhook.secret_env: empty (name the environment variable that holds the HMAC secret)")
	}
	v, ok := lookup(spec.SecretEnv)
	if !ok {
		return nil, fmt.Errorf("allocator.webhook.secret_env: environment variable %s is not set", spec.SecretEnv)
	}
	if v == "" {
		return nil, fmt.Errorf("allocator.webhook.secret_env: environment variable %s is empty", spec.SecretEnv)
	}
	return []byte(v), nil
}

// WebhookActuator carries each decision to the operator's fleet manager as
// one signed JSON POST (WebhookDecision). A reply outside 2xx, or none
// within the timeout, is an error: the live loop records the failure, the
// group keeps its state and the switch is tried again next evaluation.
type WebhookActuator struct {
	client *webhook.Client
	mode   Mode
	log    *zap.Logger
}

// NewWebhookActuator builds the actuator from [allocator.webhook] and the
// secret (see SecretFromEnv). mode is stamped on every document; now is
// the clock of the signature's t (time.Now when nil).
func NewWebhookActuator(spec WebhookSpec, secret []byte, mode Mode, now func() time.Time, log *zap.Logger) (*WebhookActuator, error) {
	if log == nil {
		log = zap.NewNop()
	}
	c, err := newWebhookClient(spec, secret, now, log)
	if err != nil {
		return nil, err
	}
	return &WebhookActuator{client: c, mode: mode, log: log}, nil
}

// newWebhookClient is the signed client of [allocator.webhook] that the
// actuator and the alerter both post through.
func newWebhookClient(spec WebhookSpec, secret []byte, now func() time.Time, log *zap.Logger) (*webhook.Client, error) {
	if spec.URL == nil {
		return nil, errors.New("allocator.webhook.url: empty")
	}
	if log == nil {
		log = zap.NewNop()
	}
	c, err := webhook.NewClient(spec.URL.String(), secret, spec.Timeout, now, log)
	if err != nil {
		return nil, fmt.Errorf("allocator.webhook: %w", err)
	}
	return c, nil
}

// Name is "webhook".
func (a *WebhookActuator) Name() string { return "webhook" }

// Apply POSTs d and returns when the receiver answered 2xx.
func (a *WebhookActuator) Apply(ctx context.Context, d Decision) error {
	body, err := json.Marshal(NewWebhookDecision(d, a.mode))
	if err != nil {
		return fmt.Errorf("webhook: group %q: encode: %w", d.Group, err)
	}
	if err := a.client.Post(ctx, body); err != nil {
		return fmt.Errorf("group %q: %w", d.Group, err)
	}
	return nil
}
