package fleet

import (
	"context"
	"encoding/json"
	"fmt"
)

// CGMiner reads status from any firmware speaking the cgminer API on TCP
// 4028 ("summary", "devs"; the cgminer API-README, pyasic
// pyasic/rpc/cgminer.py). It has no sleep command: Curtail and Resume
// return ErrCannotCurtail instead of pretending, and the allocator relies
// on the pool-side check (or the webhook) for such groups.
type CGMiner struct{ opts DriverOptions }

// Name is "cgminer".
func (*CGMiner) Name() string { return "cgminer" }

// CanCurtail is false.
func (*CGMiner) CanCurtail() bool { return false }

// Status reads summary (hashrate) and devs (devices alive). A miner
// hashing reads mining; zero hashrate reads unknown, since stock cgminer
// cannot tell a sleeping miner from a broken one.
func (d *CGMiner) Status(ctx context.Context, m Miner) (MinerState, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	ths, err := summaryTHs(ctx, m.Address, d.opts.MaxReplyBytes)
	if err != nil {
		return MinerState{}, err
	}
	devs, err := cgCall(ctx, m.Address, "devs", "", d.opts.MaxReplyBytes)
	if err != nil {
		return MinerState{}, err
	}
	if !devs.ok() {
		return MinerState{}, devs.statusErr("devs", ErrRefused)
	}
	alive, err := aliveDevices(devs)
	if err != nil {
		return MinerState{}, err
	}
	st := MinerState{State: StateUnknown, HashrateTHs: ths}
	if ths > 0 && alive > 0 {
		st.State = StateMining
	}
	return st, nil
}

// aliveDevices counts enabled, alive devices in DEVS, which cgminer sends
// as an array (and some firmware as an object keyed by name).
func aliveDevices(r cgReply) (int, error) {
	raw, ok := r.sections["DEVS"]
	if !ok {
		// cgminer omits DEVS when no device is found.
		return 0, nil
	}
	type dev struct {
		Enabled string `json:"Enabled"`
		Status  string `json:"Status"`
	}
	var list []dev
	if err := json.Unmarshal(raw, &list); err != nil {
		var byName map[string]dev
		if err2 := json.Unmarshal(raw, &byName); err2 != nil {
			return 0, fmt.Errorf("devs: %w: DEVS is neither an array nor an object (%s)", ErrBadReply, snippet(raw))
		}
		for _, d := range byName {
			list = append(list, d)
		}
	}
	n := 0
	for _, d := range list {
		if d.Enabled == "Y" && d.Status == "Alive" {
			n++
		}
	}
	return n, nil
}

// Curtail returns ErrCannotCurtail: stock cgminer has no sleep.
func (*CGMiner) Curtail(_ context.Context, m Miner) error {
	return fmt.Errorf("%w: %s: cgminer firmware has no sleep command", ErrCannotCurtail, m.Address)
}

// Resume returns ErrCannotCurtail.
func (*CGMiner) Resume(_ context.Context, m Miner) error {
	return fmt.Errorf("%w: %s: cgminer firmware has no sleep command", ErrCannotCurtail, m.Address)
}
