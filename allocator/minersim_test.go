package allocator

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/wattpool/wattpool/stratum/minersim"
)

// TestMinersimActuator drives a real minersim fleet's control API (its
// miners are never started: the API switches their state all the same).
func TestMinersimActuator(t *testing.T) {
	f, err := minersim.NewFleet(minersim.FleetConfig{
		Miner: minersim.MinerConfig{Addr: "127.0.0.1:1", User: "acct.rig"},
		Groups: []minersim.GroupSpec{
			{Name: "rack1", Count: 2, Model: minersim.AntminerS19},
			{Name: "rack 2/b", Count: 1, Model: minersim.AntminerS21},
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	a, err := NewMinersimActuator(mustURL(t, srv.URL+"/"), time.Second, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() != "minersim" {
		t.Errorf("name %q", a.Name())
	}
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	state := func(group string) (mining, curtailed int) {
		g, ok := f.GroupStatus(group)
		if !ok {
			t.Fatalf("no group %q", group)
		}
		return g.Mining, g.Curtailed
	}
	steps := []struct {
		group         string
		after         State
		wantMining    int
		wantCurtailed int
	}{
		{"rack1", Curtailed, 0, 2},
		{"rack 2/b", Curtailed, 0, 1},
		{"rack1", Mining, 2, 0},
		{"rack1", Mining, 2, 0}, // a repeated resume is harmless
		{"rack 2/b", Mining, 1, 0},
	}
	for i, s := range steps {
		before := Mining
		if s.after == Mining {
			before = Curtailed
		}
		if err := a.Apply(ctx, Decision{Group: s.group, Time: now, Before: before, After: s.after}); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if m, c := state(s.group); m != s.wantMining || c != s.wantCurtailed {
			t.Errorf("step %d %s: mining %d curtailed %d, want %d %d", i, s.group, m, c, s.wantMining, s.wantCurtailed)
		}
	}
	err = a.Apply(ctx, Decision{Group: "rack9", Time: now, Before: Mining, After: Curtailed})
	if err == nil || !strings.Contains(err.Error(), `group "rack9"`) || !strings.Contains(err.Error(), "no such group") ||
		!strings.Contains(err.Error(), srv.URL+"/api/v1/groups/rack9/curtail") {
		t.Errorf("unknown group: %v", err)
	}
}

// TestMinersimActuatorDistrusts: answers that do not show the group
// switched, or are not the API's at all, are errors naming group and URL.
func TestMinersimActuatorDistrusts(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stuck/api/v1/groups/rack1/curtail":
			w.Write([]byte(`{"name":"rack1","miners":3,"mining":1,"curtailed":2}`))
		case "/stuck/api/v1/groups/rack1/resume":
			w.Write([]byte(`{"name":"rack1","miners":3,"mining":2,"curtailed":1}`))
		case "/other/api/v1/groups/rack1/curtail":
			w.Write([]byte(`{"name":"rack2","miners":3,"mining":0,"curtailed":3}`))
		case "/empty/api/v1/groups/rack1/curtail":
			w.Write([]byte(`{"name":"rack1","miners":0,"mining":0,"curtailed":0}`))
		case "/html/api/v1/groups/rack1/curtail":
			w.Write([]byte(`<html>login</html>`))
		case "/500/api/v1/groups/rack1/curtail":
			http.Error(w, "fleet on fire", http.StatusInternalServerError)
		case "/slow/api/v1/groups/rack1/curtail":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	defer close(release)
	for _, tc := range []struct {
		prefix string
		after  State
		want   string
	}{
		{"/stuck", Curtailed, "1 of 3 miners still mining after the curtailment"},
		{"/stuck", Mining, "1 of 3 miners still curtailed after the resume"},
		{"/other", Curtailed, `answer describes group "rack2"`},
		{"/empty", Curtailed, "no miners"},
		{"/html", Curtailed, "not the group status JSON"},
		{"/500", Curtailed, `status 500: "fleet on fire"`},
		{"/slow", Curtailed, "Timeout"},
	} {
		timeout := 10 * time.Second // only /slow is meant to time out
		if tc.prefix == "/slow" {
			timeout = 200 * time.Millisecond
		}
		a, err := NewMinersimActuator(mustURL(t, srv.URL+tc.prefix), timeout, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		action := "resume"
		if tc.after == Curtailed {
			action = "curtail"
		}
		err = a.Apply(context.Background(), Decision{Group: "rack1", After: tc.after, Before: 1 - tc.after})
		if err == nil || !strings.Contains(err.Error(), tc.want) ||
			!strings.Contains(err.Error(), `group "rack1" (POST `+srv.URL+tc.prefix+"/api/v1/groups/rack1/"+action+")") {
			t.Errorf("%s %s: %v, want %q", tc.prefix, action, err, tc.want)
		}
	}
	for _, raw := range []string{"ftp://x", "//127.0.0.1:4028", "http://"} {
		if _, err := NewMinersimActuator(mustURL(t, raw), time.Second, nil); err == nil {
			t.Errorf("%q accepted", raw)
		}
	}
	if _, err := NewMinersimActuator(mustURL(t, "http://127.0.0.1:1"), 0, nil); err == nil {
		t.Error("no timeout accepted")
	}
}
