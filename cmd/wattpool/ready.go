package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// readiness is the /readyz document.
type readiness struct {
	Ready bool `json:"ready"`
	// Reasons name every check that failed; empty when ready.
	Reasons []string `json:"reasons"`
	// LastTemplate is when a node last gave a template (absent: never).
	LastTemplate time.Time `json:"last_template,omitzero"`
	Draining     bool      `json:"draining"`
}

// templateClock is a template source that knows when it last gave a
// template (node.Pool, node.FileSource).
type templateClock interface{ LastTemplate() time.Time }

// ready answers whether this instance has work to give and somewhere to
// put shares: a load balancer's health check (HAProxy's `option httpchk
// GET /readyz`) sends miners elsewhere when it has not. /healthz stays a
// liveness check: the process answers.
func (a *app) ready(now time.Time) readiness {
	r := readiness{Reasons: []string{}, Draining: a.draining.Load()}
	if r.Draining {
		r.Reasons = append(r.Reasons, "draining: shutting down, miners are sent elsewhere")
	}
	maxAge := a.cfg.MaxTemplateAge
	if tc, ok := a.source.(templateClock); ok {
		r.LastTemplate = tc.LastTemplate()
		switch age := now.Sub(r.LastTemplate); {
		case r.LastTemplate.IsZero():
			r.Reasons = append(r.Reasons, "no template from any node yet")
		case age > maxAge:
			r.Reasons = append(r.Reasons, fmt.Sprintf("no template from any node for %v (node.max_template_age %v)",
				age.Round(time.Second), maxAge))
		}
	}
	if a.recorder != nil {
		if h := a.recorder.Health(); !h.DatabaseWritable && !h.SpoolWritable {
			r.Reasons = append(r.Reasons, "ledger: PostgreSQL cannot be written and the spool refuses shares")
		}
	}
	r.Ready = len(r.Reasons) == 0
	return r
}

// serveReady answers /readyz: 200 when ready, 503 with the reasons in JSON
// otherwise.
func (a *app) serveReady(w http.ResponseWriter, _ *http.Request) {
	r := a.ready(time.Now())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !r.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(r)
}
