package allocator

import (
	"cmp"
	"context"
	"math"
	"slices"
	"time"
)

// Merit is the pinned policy (see the package documentation and Evaluate):
// the one the backtest replays and the live loop runs by default.
type Merit struct{}

// Name is "merit", the allocator.policy value that selects it.
func (Merit) Name() string { return "merit" }

// Decide runs Evaluate. It never fails: the pinned policy is a pure
// function of its input.
func (Merit) Decide(_ context.Context, in PolicyInput) ([]Decision, error) {
	return Evaluate(in), nil
}

// Evaluate decides one interval for every group of in.Params.Groups, in
// that order, by the pinned policy: firm lease first, then the merit order
// (hysteresis, min_on/min_off, the lease's max_mw room), then the site cap.
// A group missing from in.States starts mining with its last switch at
// in.Market.Time. The package documentation states the rules and the cases
// the issue left open.
func Evaluate(in PolicyInput) []Decision {
	var e evaluator
	return e.evaluate(in.Params, in.Market, func(_ int, name string) (GroupState, bool) {
		s, ok := in.States[name]
		return s, ok
	})
}

// evaluator holds the scratch space of Evaluate so that a backtest can
// decide a year of intervals without allocating for each. One evaluator
// serves one Params: its orders are computed from the first call's groups.
type evaluator struct {
	dec   []Decision
	order []int
	firm  []bool
	// byJoules and byJoulesAsc are the group indexes by J/TH, highest
	// and lowest first (equal ones in configuration order). They are the
	// firm order, and in every interval with a positive hashprice also
	// the merit order and the site cap's order (mining value falls as
	// J/TH rises), which then need only a check instead of a sort.
	byJoules, byJoulesAsc []int
}

// prepare sizes the scratch space for p's groups and orders them by J/TH.
func (e *evaluator) prepare(p *Params) {
	n := len(p.Groups)
	e.dec = make([]Decision, n)
	e.order = make([]int, n)
	e.firm = make([]bool, n)
	e.byJoules = make([]int, n)
	e.byJoulesAsc = make([]int, n)
	for i := range n {
		e.byJoules[i], e.byJoulesAsc[i] = i, i
	}
	slices.SortFunc(e.byJoules, func(a, b int) int {
		return byValueThenIndex(p.Groups[b].JoulesPerTH(), p.Groups[a].JoulesPerTH(), a, b)
	})
	slices.SortFunc(e.byJoulesAsc, func(a, b int) int {
		return byValueThenIndex(p.Groups[a].JoulesPerTH(), p.Groups[b].JoulesPerTH(), a, b)
	})
}

// sortFrom fills order with from and sorts it by cmp, which is usually a
// linear check that from is already in order.
func sortFrom(order, from []int, cmp func(a, b int) int) {
	copy(order, from)
	for k := 1; k < len(order); k++ {
		if cmp(order[k-1], order[k]) > 0 {
			slices.SortFunc(order, cmp)
			return
		}
	}
}

// evaluate is Evaluate with the states looked up through state (by the
// group's index in p.Groups and its name) and the decisions written into
// e.dec (valid until the next call).
func (e *evaluator) evaluate(p *Params, m Market, state func(i int, name string) (GroupState, bool)) []Decision {
	n := len(p.Groups)
	if len(e.dec) != n {
		e.prepare(p)
	}
	dec, order, firm := e.dec, e.order, e.firm
	t := m.Time
	hashprice := HashpriceUSDPerPHDay(m)
	leased := LeasedUSDPerMWh(m.LeaseUSDPerMWh, m.EnergyUSDPerMWh, p.Lease.OperatorPaysEnergy)

	for i, g := range p.Groups {
		s, ok := state(i, g.Name)
		if !ok {
			s = GroupState{State: Mining, LastSwitch: t}
		}
		jpt := g.JoulesPerTH()
		dec[i] = Decision{
			Group:           g.Name,
			Time:            t,
			Before:          s.State,
			After:           s.State,
			MiningUSDPerMWh: MiningUSDPerMWh(hashprice, jpt, p.PoolFeeBps, m.EnergyUSDPerMWh),
			JoulesPerTH:     jpt,
			// NextSwitch holds the last switch until the end, where it
			// becomes the next allowed one.
			NextSwitch: s.LastSwitch,
		}
		firm[i] = false
	}

	// Lease room under max_mw; unlimited is +Inf so that sums never
	// need a special case.
	roomMW := inf
	if p.Lease.MaxMW > 0 {
		roomMW = p.Lease.MaxMW
	}
	// Site room for lease power: a group is leased only if it also fits
	// under site_mw; mining fills what is left afterwards.
	siteMW := inf
	if p.SiteMW > 0 {
		siteMW = p.SiteMW
	}
	var leaseMW float64

	// 1. Firm lease: the least efficient groups (highest J/TH; ties in
	// configuration order) are curtailed until their power covers the
	// step's mw, whatever their dwell.
	if firmMW := FirmMW(p.Lease.Firm, t); firmMW > 0 {
		var covered float64
		for _, i := range e.byJoules {
			if covered >= firmMW-epsilonMW {
				break
			}
			d := &dec[i]
			firm[i] = true
			d.After = Curtailed
			d.CurtailedUSDPerMWh = leased
			d.Rule = RuleFirm
			covered += p.Groups[i].MW()
		}
		leaseMW = covered
		roomMW = max(0, roomMW-covered)
	}

	// 2. Merit order: the other groups from the lowest mining value per
	// MWh upward (ties in configuration order); a group's curtailed value
	// is the lease only if its whole power fits in the room left.
	sortFrom(order, e.byJoules, func(a, b int) int {
		return byValueThenIndex(dec[a].MiningUSDPerMWh, dec[b].MiningUSDPerMWh, a, b)
	})
	for _, i := range order {
		if firm[i] {
			continue
		}
		d := &dec[i]
		mw := p.Groups[i].MW()
		fits := mw <= roomMW+epsilonMW && leaseMW+mw <= siteMW+epsilonMW
		if fits {
			d.CurtailedUSDPerMWh = leased
		}
		since := t.Sub(d.NextSwitch)
		mining, curtailed := d.MiningUSDPerMWh, d.CurtailedUSDPerMWh
		switch d.Before {
		case Mining:
			switch {
			case curtailed > mining+p.HysteresisUSDPerMWh:
				if since >= p.MinOn {
					d.After, d.Rule = Curtailed, RuleLeaseWins
				} else {
					d.Rule = RuleMinOn
				}
			case curtailed > mining:
				d.Rule = RuleHysteresis
			default:
				d.Rule = RuleHold
			}
		default:
			switch {
			case mining > curtailed+p.HysteresisUSDPerMWh:
				if since >= p.MinOff {
					d.After, d.Rule = Mining, RuleMiningWins
				} else {
					d.Rule = RuleMinOff
				}
			case mining > curtailed:
				d.Rule = RuleHysteresis
			default:
				d.Rule = RuleHold
			}
		}
		if d.After == Curtailed {
			if fits {
				roomMW -= mw
				leaseMW += mw
			} else {
				d.Idle = true
			}
		}
	}

	// 3. Site cap: lease power is in place; the mining groups mine from
	// the highest mining value per MWh down, each if it fits in what is
	// left, and the others are idle (overriding min_on: it is physical).
	if p.SiteMW > 0 {
		left := p.SiteMW - leaseMW
		sortFrom(order, e.byJoulesAsc, func(a, b int) int {
			return byValueThenIndex(dec[b].MiningUSDPerMWh, dec[a].MiningUSDPerMWh, a, b)
		})
		for _, i := range order {
			d := &dec[i]
			if d.After != Mining {
				continue
			}
			mw := p.Groups[i].MW()
			if mw <= left+epsilonMW {
				left -= mw
				continue
			}
			d.After, d.Idle, d.Rule = Curtailed, true, RuleSiteCap
			d.CurtailedUSDPerMWh = 0
		}
	}

	for i := range dec {
		d := &dec[i]
		lastSwitch := d.NextSwitch
		if d.Switched() {
			lastSwitch = t
		}
		if d.After == Mining {
			d.NextSwitch = lastSwitch.Add(p.MinOn)
		} else {
			d.NextSwitch = lastSwitch.Add(p.MinOff)
		}
	}
	return dec
}

var inf = math.Inf(1)

// epsilonMW (a milliwatt) absorbs the rounding of sums of powers, so that
// groups of 0.35 and 0.3 MW (0.6499999999999999 in floating point) cover
// a firm step of 0.65 and fit a room of 0.65.
const epsilonMW = 1e-9

// byValueThenIndex orders by value (never NaN: prices are validated),
// equal values in configuration order (group indexes a and b), so that
// every sort is deterministic.
func byValueThenIndex(va, vb float64, a, b int) int {
	if c := cmp.Compare(va, vb); c != 0 {
		return c
	}
	return cmp.Compare(a, b)
}

// FirmMW is the firm lease power owed at t: the mw of the last step whose
// From is at or before t, 0 before the first step.
func FirmMW(steps []FirmStep, t time.Time) float64 {
	mw := 0.0
	for _, s := range steps {
		if s.From.After(t) {
			break
		}
		mw = s.MW
	}
	return mw
}
