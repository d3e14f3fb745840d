package minersim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Miner states as the control API reports them.
const (
	StateMining    = "mining"
	StateCurtailed = "curtailed"
)

// MinerStatus is one miner as its firmware API would describe it.
type MinerStatus struct {
	ID        int    `json:"id"`
	Worker    string `json:"worker"`
	Group     string `json:"group"`
	Model     string `json:"model"`
	State     string `json:"state"`
	Connected bool   `json:"connected"`
	// Ramping: resumed, still within the configured wake ramp.
	Ramping bool `json:"ramping,omitempty"`
	// TerahashPerSecond and PowerWatts come from the power model: nominal
	// hashrate and draw while mining, zero and idle draw while curtailed.
	TerahashPerSecond float64 `json:"hashrate_ths"`
	PowerWatts        float64 `json:"power_w"`
	// Hashes, Submitted, Accepted and Rejected are what the simulator
	// really did.
	Hashes    uint64 `json:"hashes"`
	Submitted uint64 `json:"submitted"`
	Accepted  uint64 `json:"accepted"`
	Rejected  uint64 `json:"rejected"`
}

// Status returns the miner's current status.
func (m *Miner) Status() MinerStatus {
	curtailed := m.curtailed.Load()
	ramping := !curtailed && m.rampingAt(m.now())
	// A ramping miner draws idle power and hashes nothing yet.
	ths, w := m.cfg.Model.Power(curtailed || ramping)
	state := StateMining
	if curtailed {
		state = StateCurtailed
	}
	return MinerStatus{
		ID: m.cfg.ID, Worker: m.cfg.User, Group: m.cfg.Group, Model: m.cfg.Model.Name,
		State: state, Connected: m.connected.Load(), Ramping: ramping,
		TerahashPerSecond: ths, PowerWatts: w,
		Hashes: m.hashes.Load(), Submitted: m.submitted.Load(),
		Accepted: m.accepted.Load(), Rejected: m.rejected.Load(),
	}
}

// SetCurtailed stops (true) or resumes (false) hashing. A curtailed miner
// keeps its pool connection, like firmware sleep mode; a resumed one hashes
// again after its WakeRamp.
func (m *Miner) SetCurtailed(curtailed bool) {
	if !curtailed && m.curtailed.Load() && m.cfg.WakeRamp > 0 {
		// Set before the flag flips, so no slice runs between the two.
		m.wakeAt.Store(m.now().Add(m.cfg.WakeRamp).UnixNano())
	}
	if m.curtailed.Swap(curtailed) && !curtailed {
		m.wake()
	}
}

// rampingAt reports whether a resumed miner is still warming up at now.
func (m *Miner) rampingAt(now time.Time) bool {
	at := m.wakeAt.Load()
	return at != 0 && now.UnixNano() < at
}

// GroupStatus sums a worker group.
type GroupStatus struct {
	Name              string  `json:"name"`
	Miners            int     `json:"miners"`
	Mining            int     `json:"mining"`
	Curtailed         int     `json:"curtailed"`
	Connected         int     `json:"connected"`
	TerahashPerSecond float64 `json:"hashrate_ths"`
	PowerWatts        float64 `json:"power_w"`
}

// GroupStatus returns the named group's totals; ok is false when there is
// no such group.
func (f *Fleet) GroupStatus(name string) (GroupStatus, bool) {
	ms, ok := f.byGroup[name]
	if !ok {
		return GroupStatus{}, false
	}
	g := GroupStatus{Name: name, Miners: len(ms)}
	for _, m := range ms {
		st := m.Status()
		if st.State == StateCurtailed {
			g.Curtailed++
		} else {
			g.Mining++
		}
		if st.Connected {
			g.Connected++
		}
		g.TerahashPerSecond += st.TerahashPerSecond
		g.PowerWatts += st.PowerWatts
	}
	return g, true
}

// SetGroupCurtailed curtails or resumes every miner of a group; it reports
// whether the group exists.
func (f *Fleet) SetGroupCurtailed(name string, curtailed bool) bool {
	ms, ok := f.byGroup[name]
	for _, m := range ms {
		m.SetCurtailed(curtailed)
	}
	return ok
}

// Handler serves the firmware-style control API an allocator calls:
//
//	GET  /api/v1/miners                    every miner's status
//	GET  /api/v1/miners/{id}               one miner
//	POST /api/v1/miners/{id}/curtail       stop hashing (answers the new status)
//	POST /api/v1/miners/{id}/resume        start hashing again
//	GET  /api/v1/groups                    totals per worker group
//	GET  /api/v1/groups/{name}             one group
//	POST /api/v1/groups/{name}/curtail     curtail the whole group
//	POST /api/v1/groups/{name}/resume      resume the whole group
//
// It has no authentication: bind it to 127.0.0.1 or a private network.
func (f *Fleet) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/miners", func(w http.ResponseWriter, _ *http.Request) {
		out := make([]MinerStatus, len(f.miners))
		for i, m := range f.miners {
			out[i] = m.Status()
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /api/v1/miners/{id}", func(w http.ResponseWriter, r *http.Request) {
		if m := f.minerFromPath(w, r); m != nil {
			writeJSON(w, http.StatusOK, m.Status())
		}
	})
	for action, curtail := range map[string]bool{"curtail": true, "resume": false} {
		mux.HandleFunc("POST /api/v1/miners/{id}/"+action, func(w http.ResponseWriter, r *http.Request) {
			if m := f.minerFromPath(w, r); m != nil {
				m.SetCurtailed(curtail)
				writeJSON(w, http.StatusOK, m.Status())
			}
		})
		mux.HandleFunc("POST /api/v1/groups/{name}/"+action, func(w http.ResponseWriter, r *http.Request) {
			name := r.PathValue("name")
			if !f.SetGroupCurtailed(name, curtail) {
				writeError(w, http.StatusNotFound, "no group "+strconv.Quote(name))
				return
			}
			g, _ := f.GroupStatus(name)
			writeJSON(w, http.StatusOK, g)
		})
	}
	mux.HandleFunc("GET /api/v1/groups", func(w http.ResponseWriter, _ *http.Request) {
		out := make([]GroupStatus, 0, len(f.groups))
		for _, name := range f.groups {
			g, _ := f.GroupStatus(name)
			out = append(out, g)
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /api/v1/groups/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		g, ok := f.GroupStatus(name)
		if !ok {
			writeError(w, http.StatusNotFound, "no group "+strconv.Quote(name))
			return
		}
		writeJSON(w, http.StatusOK, g)
	})
	return mux
}

// minerFromPath resolves {id}, answering 400/404 itself when it cannot.
func (f *Fleet) minerFromPath(w http.ResponseWriter, r *http.Request) *Miner {
	raw := r.PathValue("id")
	id, err := strconv.Atoi(raw)
	if err != nil {
		writeError(w, http.StatusBadRequest, "miner id "+strconv.Quote(raw)+" is not an integer")
		return nil
	}
	if id < 0 || id >= len(f.miners) {
		writeError(w, http.StatusNotFound, "no miner "+strconv.Itoa(id))
		return nil
	}
	return f.miners[id]
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
