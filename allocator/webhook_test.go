package allocator

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/wattpool/wattpool/internal/webhook"
)

func TestSecretFromEnv(t *testing.T) {
	env := map[string]string{"SET": "s3cret", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if s, err := SecretFromEnv(WebhookSpec{SecretEnv: "SET"}, lookup); err != nil || string(s) != "s3cret" {
		t.Errorf("set: %q %v", s, err)
	}
	for name, want := range map[string]string{"EMPTY": "EMPTY is empty", "MISSING": "MISSING is not set", "": "secret_env: empty"} {
		_, err := SecretFromEnv(WebhookSpec{SecretEnv: name}, lookup)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", name, err, want)
		}
	}
}

// TestWebhookActuator: a receiver that verifies every request the way an
// operator's fleet manager would (internal/webhook.Verify, 5-minute window)
// gets one signed document per decision with the documented fields.
func TestWebhookActuator(t *testing.T) {
	secret := []byte("fleet-manager-secret")
	now := time.Date(2026, 3, 1, 17, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	var got []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(r.Header.Get(webhook.Header), body, secret, now.Add(3*time.Second), webhook.MaxAge); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if r.Header.Get("Content-Type") != "application/json" || r.URL.Path != "/hooks/wattpool" {
			http.Error(w, "wrong request", http.StatusBadRequest)
			return
		}
		var doc map[string]any
		if err := json.Unmarshal(body, &doc); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, doc)
		mu.Unlock()
		if doc["group"] == "broken" {
			http.Error(w, "no such rack in the fleet manager", http.StatusUnprocessableEntity)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	spec := WebhookSpec{URL: mustURL(t, srv.URL+"/hooks/wattpool"), SecretEnv: "X", Timeout: 2 * time.Second}
	a, err := NewWebhookActuator(spec, secret, ModeAct, func() time.Time { return now }, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() != "webhook" {
		t.Errorf("name %q", a.Name())
	}
	ctx := context.Background()
	curtail := Decision{Group: "rack1", Time: now, Before: Mining, After: Curtailed, MiningUSDPerMWh: 12.5,
		CurtailedUSDPerMWh: 80, JoulesPerTH: 17.5, Rule: RuleLeaseWins, NextSwitch: now.Add(30 * time.Minute)}
	resume := Decision{Group: "rack2", Time: now.In(time.FixedZone("X", 3600)), Before: Curtailed, After: Mining, Idle: false,
		MiningUSDPerMWh: 90, CurtailedUSDPerMWh: math.NaN(), JoulesPerTH: 21, Rule: RuleMiningWins}
	idle := Decision{Group: "rack3", Time: now, Before: Mining, After: Curtailed, Idle: true, Rule: RuleSiteCap}
	for _, d := range []Decision{curtail, resume, idle} {
		if err := a.Apply(ctx, d); err != nil {
			t.Fatalf("%s: %v", d.Group, err)
		}
	}
	err = a.Apply(ctx, Decision{Group: "broken", Time: now, Before: Mining, After: Curtailed, Rule: RuleFirm})
	if err == nil || !strings.Contains(err.Error(), `group "broken"`) || !strings.Contains(err.Error(), "status 422") ||
		!strings.Contains(err.Error(), "no such rack") {
		t.Errorf("422: %v", err)
	}
	// A sender with the wrong secret is refused by the receiver.
	bad, _ := NewWebhookActuator(spec, []byte("guess"), ModeAct, func() time.Time { return now }, nil)
	if err := bad.Apply(ctx, curtail); err == nil || !strings.Contains(err.Error(), "status 401") {
		t.Errorf("wrong secret: %v", err)
	}
	// A request signed 6 minutes before the receiver's clock is a replay.
	old, _ := NewWebhookActuator(spec, secret, ModeAct, func() time.Time { return now.Add(-6 * time.Minute) }, nil)
	if err := old.Apply(ctx, curtail); err == nil || !strings.Contains(err.Error(), "too old") {
		t.Errorf("replay: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	want := []string{
		`{"action":"curtail","after":"curtailed","before":"mining","curtailed_usd_per_mwh":80,"group":"rack1","idle":false,"joules_per_th":17.5,"mining_usd_per_mwh":12.5,"mode":"act","next_switch":"2026-03-01T17:30:00Z","rule":"lease_wins","time":"2026-03-01T17:00:00Z","type":"allocator.decision"}`,
		`{"action":"resume","after":"mining","before":"curtailed","curtailed_usd_per_mwh":0,"group":"rack2","idle":false,"joules_per_th":21,"mining_usd_per_mwh":90,"mode":"act","rule":"mining_wins","time":"2026-03-01T17:00:00Z","type":"allocator.decision"}`,
		`{"action":"curtail","after":"curtailed","before":"mining","curtailed_usd_per_mwh":0,"group":"rack3","idle":true,"joules_per_th":0,"mining_usd_per_mwh":0,"mode":"act","rule":"site_cap","time":"2026-03-01T17:00:00Z","type":"allocator.decision"}`,
	}
	if len(got) != 4 {
		t.Fatalf("receiver accepted %d documents, want 4 (3 + the 422)", len(got))
	}
	for i, w := range want {
		b, _ := json.Marshal(got[i]) // map keys sorted
		if string(b) != w {
			t.Errorf("document %d:\n got %s\nwant %s", i, b, w)
		}
	}
}

func TestWebhookActuatorSpec(t *testing.T) {
	if _, err := NewWebhookActuator(WebhookSpec{Timeout: time.Second}, []byte("s"), ModeAct, nil, nil); err == nil {
		t.Error("no url accepted")
	}
	spec := WebhookSpec{URL: mustURL(t, "http://127.0.0.1:1/x"), Timeout: time.Second}
	if _, err := NewWebhookActuator(spec, nil, ModeAct, nil, nil); err == nil || !strings.Contains(err.Error(), "empty secret") {
		t.Errorf("no secret: %v", err)
	}
	spec.Timeout = 0
	if _, err := NewWebhookActuator(spec, []byte("s"), ModeAct, nil, nil); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("no timeout: %v", err)
	}
}
