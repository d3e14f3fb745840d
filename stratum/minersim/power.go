package minersim

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Model is the nameplate of a simulated ASIC class. The simulator grinds at
// a small configured hash rate (a CPU cannot do terahashes); the model says
// what the real machine would do, so the control API reports the hashrate
// and power an allocator would see from that machine's firmware.
type Model struct {
	// Name identifies the model in flags and the control API.
	Name string `json:"name"`
	// TerahashPerSecond is the nominal hashrate while mining.
	TerahashPerSecond float64 `json:"terahash_per_second"`
	// JoulesPerTH is the efficiency at nominal hashrate; power while mining
	// is TerahashPerSecond * JoulesPerTH watts.
	JoulesPerTH float64 `json:"joules_per_th"`
	// IdleWatts is the draw while curtailed (control board, fans at idle).
	IdleWatts float64 `json:"idle_watts"`
}

// Validate reports a model that cannot describe a machine.
func (m Model) Validate() error {
	bad := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) || v < 0 }
	switch {
	case m.Name == "":
		return fmt.Errorf("model: empty name")
	case bad(m.TerahashPerSecond) || m.TerahashPerSecond == 0:
		return fmt.Errorf("model %s: terahash per second %v must be > 0", m.Name, m.TerahashPerSecond)
	case bad(m.JoulesPerTH) || m.JoulesPerTH == 0:
		return fmt.Errorf("model %s: joules per TH %v must be > 0", m.Name, m.JoulesPerTH)
	case bad(m.IdleWatts):
		return fmt.Errorf("model %s: idle watts %v must be >= 0", m.Name, m.IdleWatts)
	}
	return nil
}

// MiningWatts is the power draw at nominal hashrate.
func (m Model) MiningWatts() float64 { return m.TerahashPerSecond * m.JoulesPerTH }

// Power returns hashrate (TH/s) and power (W) in the given state.
func (m Model) Power(curtailed bool) (terahashPerSecond, watts float64) {
	if curtailed {
		return 0, m.IdleWatts
	}
	return m.TerahashPerSecond, m.MiningWatts()
}

// Known models, with manufacturer nameplate figures (stock firmware).
var (
	// AntminerS19 is the Bitmain Antminer S19 (95 TH/s, 3250 W).
	AntminerS19 = Model{Name: "antminer-s19", TerahashPerSecond: 95, JoulesPerTH: 34.2, IdleWatts: 20}
	// AntminerS19XP is the Bitmain Antminer S19 XP (140 TH/s, 3010 W).
	AntminerS19XP = Model{Name: "antminer-s19xp", TerahashPerSecond: 140, JoulesPerTH: 21.5, IdleWatts: 20}
	// AntminerS21 is the Bitmain Antminer S21 (200 TH/s, 3500 W).
	AntminerS21 = Model{Name: "antminer-s21", TerahashPerSecond: 200, JoulesPerTH: 17.5, IdleWatts: 20}
	// WhatsminerM30S is the MicroBT Whatsminer M30S (88 TH/s, 3344 W).
	WhatsminerM30S = Model{Name: "whatsminer-m30s", TerahashPerSecond: 88, JoulesPerTH: 38, IdleWatts: 20}
	// BitaxeGamma is a Bitaxe Gamma (BM1370, about 1.2 TH/s at 18 W).
	BitaxeGamma = Model{Name: "bitaxe-gamma", TerahashPerSecond: 1.2, JoulesPerTH: 15, IdleWatts: 2}
)

var knownModels = map[string]Model{
	AntminerS19.Name:    AntminerS19,
	AntminerS19XP.Name:  AntminerS19XP,
	AntminerS21.Name:    AntminerS21,
	WhatsminerM30S.Name: WhatsminerM30S,
	BitaxeGamma.Name:    BitaxeGamma,
}

// ModelByName returns a known model; the error lists the known names.
func ModelByName(name string) (Model, error) {
	if m, ok := knownModels[name]; ok {
		return m, nil
	}
	names := make([]string, 0, len(knownModels))
	for n := range knownModels {
		names = append(names, n)
	}
	sort.Strings(names)
	return Model{}, fmt.Errorf("unknown miner model %q (known: %s)", name, strings.Join(names, ", "))
}
