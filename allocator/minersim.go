package allocator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
)

// MinersimTimeout bounds one call to minersim's control API when the
// caller has no better figure: the simulator answers in microseconds, so
// a call that takes seconds means it is gone.
const MinersimTimeout = 5 * time.Second

// MinersimActuator switches a worker group through minersim's control API
// (cmd/minersim, stratum/minersim.Fleet.Handler):
//
//	POST {base}/api/v1/groups/{name}/curtail
//	POST {base}/api/v1/groups/{name}/resume
//
// Each answers the group's status. The actuator does not trust a 200
// alone: after a curtailment no miner of the group may still be mining,
// after a resume none may still be curtailed, otherwise Apply fails and
// the live loop tries again next evaluation.
type MinersimActuator struct {
	base   *url.URL
	client *http.Client
	log    *zap.Logger
}

// minersimGroup is the part of minersim's group status the actuator
// checks (stratum/minersim.GroupStatus; decoded here so that the allocator
// does not depend on the simulator's package).
type minersimGroup struct {
	Name      string `json:"name"`
	Miners    int    `json:"miners"`
	Mining    int    `json:"mining"`
	Curtailed int    `json:"curtailed"`
}

// NewMinersimActuator calls the control API at base (allocator.minersim_url,
// e.g. http://127.0.0.1:4028), each call bounded by timeout.
func NewMinersimActuator(base *url.URL, timeout time.Duration, log *zap.Logger) (*MinersimActuator, error) {
	if base == nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, errors.New("allocator.minersim_url: want an http:// or https:// base URL")
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("minersim timeout %v: want > 0", timeout)
	}
	if log == nil {
		log = zap.NewNop()
	}
	b := *base
	b.RawQuery, b.Fragment = "", ""
	return &MinersimActuator{base: &b, client: &http.Client{Timeout: timeout}, log: log}, nil
}

// Name is "minersim".
func (a *MinersimActuator) Name() string { return "minersim" }

// groupURL is {base}/api/v1/groups/{group}/{action}, the group name
// escaped as one path segment.
func (a *MinersimActuator) groupURL(group, action string) string {
	u := *a.base
	prefix := strings.TrimSuffix(a.base.Path, "/")
	rawPrefix := strings.TrimSuffix(a.base.EscapedPath(), "/")
	u.Path = prefix + "/api/v1/groups/" + group + "/" + action
	u.RawPath = rawPrefix + "/api/v1/groups/" + url.PathEscape(group) + "/" + action
	return u.String()
}

// Apply curtails (d.After == Curtailed) or resumes the group and checks
// that its miners followed.
func (a *MinersimActuator) Apply(ctx context.Context, d Decision) error {
	action, wantCurtailed := "resume", false
	if d.After == Curtailed {
		action, wantCurtailed = "curtail", true
	}
	target := a.groupURL(d.Group, action)
	fail := func(format string, args ...any) error {
		return fmt.Errorf("minersim %s of group %q (POST %s): %s", action, d.Group, target, fmt.Sprintf(format, args...))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, nil)
	if err != nil {
		return fail("%v", err)
	}
	res, err := a.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is named already
		}
		return fail("%v", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return fail("reading the answer: %v", err)
	}
	switch {
	case res.StatusCode == http.StatusNotFound:
		return fail("minersim has no such group (404: %s)", clipText(strings.TrimSpace(string(body))))
	case res.StatusCode < 200 || res.StatusCode > 299:
		return fail("status %d: %q", res.StatusCode, clipText(strings.TrimSpace(string(body))))
	}
	var g minersimGroup
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&g); err != nil {
		return fail("answer is not the group status JSON: %v (%q)", err, clipText(strings.TrimSpace(string(body))))
	}
	switch {
	case g.Name != d.Group:
		return fail("answer describes group %q", clipText(g.Name))
	case g.Miners <= 0:
		return fail("the group has no miners")
	case wantCurtailed && g.Mining != 0:
		return fail("%d of %d miners still mining after the curtailment", g.Mining, g.Miners)
	case !wantCurtailed && g.Curtailed != 0:
		return fail("%d of %d miners still curtailed after the resume", g.Curtailed, g.Miners)
	}
	a.log.Debug("minersim group switched", zap.String("group", d.Group), zap.String("action", action),
		zap.Int("miners", g.Miners))
	return nil
}
