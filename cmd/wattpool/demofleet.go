package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/wattpool/wattpool/allocator/fleet"
	"github.com/wattpool/wattpool/stratum/minersim"
)

// The demo's miners on real drivers: rack-a's simulated miners serve the
// LuxOS API, rack-b's the stock Antminer CGI (digest auth), each on a
// loopback address of its own, which is also where its pool connection
// comes from. The demo writes their inventory, so the allocator's fleet
// actuator, `wattpool fleet` and the pool's wrong-group report see them,
// and reads every miner through its driver for the status line.

// The simulated Antminer firmware's password and the variable the
// inventory names for it (regtest demo: it secures nothing).
const (
	demoFirmwarePasswordEnv = "DEMO_FIRMWARE_PASSWORD"
	demoFirmwarePassword    = "regtest-demo"
)

// Firmware API ports: LuxOS's own, and an unprivileged HTTP port for the
// Antminer CGI.
const (
	demoLuxOSPort    = 4028
	demoAntminerPort = 8080
)

// demoFirmware is the demo fleet's firmware side.
type demoFirmware struct {
	// countA miners of rack-a (LuxOS), the rest of total rack-b (Antminer).
	countA, total int
	// base is miner 0's address; miner i listens on base + i.
	base netip.Addr
	// inv is the inventory, passwords included (for the status reads).
	inv []fleet.Miner

	fleet *minersim.Fleet
	sets  []*minersim.FirmwareSet
	reg   fleet.Registry
}

// newDemoFirmware places the miners on a random 127.x.y.0/24-ish range,
// so that two demos on one machine do not collide.
func newDemoFirmware(miners int) *demoFirmware {
	gs := demoFleetGroups(miners)
	base := netip.AddrFrom4([4]byte{127, byte(100 + rand.IntN(150)), byte(rand.IntN(256)), 1})
	d := &demoFirmware{countA: gs[0].Count, total: miners, base: base, reg: fleet.NewRegistry(fleet.DriverOptions{})}
	for i := range miners {
		m := fleet.Miner{Address: d.addr(i).String(), Driver: "luxos", Group: "rack-a", Line: i + 2}
		if i >= d.countA {
			m.Driver, m.Group, m.User, m.PasswordEnv = "antminer", "rack-b", "root", demoFirmwarePasswordEnv
			m = m.WithPassword(demoFirmwarePassword)
		}
		d.inv = append(d.inv, m)
	}
	return d
}

// addr is miner i's firmware address.
func (d *demoFirmware) addr(i int) netip.AddrPort {
	b := d.base.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(i)
	a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	port := uint16(demoLuxOSPort)
	if i >= d.countA {
		port = demoAntminerPort
	}
	return netip.AddrPortFrom(a, port)
}

// writeInventory writes the fleet inventory (no password: its variable).
func (d *demoFirmware) writeInventory(path string) error {
	var b strings.Builder
	cw := csv.NewWriter(&b)
	_ = cw.Write([]string{"address", "driver", "group", "user", "password_env"})
	for _, m := range d.inv {
		_ = cw.Write([]string{m.Address, m.Driver, m.Group, m.User, m.PasswordEnv})
	}
	cw.Flush()
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("demo: inventory: %w", err)
	}
	return nil
}

// listen binds every miner's firmware API where the inventory says.
func (d *demoFirmware) listen(f *minersim.Fleet) error {
	d.fleet = f
	ms := f.Miners()
	if len(ms) != d.total {
		return fmt.Errorf("demo: %d simulated miners, the inventory has %d", len(ms), d.total)
	}
	parts := []struct {
		from, to int
		cfg      minersim.FirmwareConfig
	}{
		{0, d.countA, minersim.FirmwareConfig{Kind: minersim.FirmwareLuxOS}},
		{d.countA, d.total, minersim.FirmwareConfig{Kind: minersim.FirmwareAntminer, Password: demoFirmwarePassword}},
	}
	for _, p := range parts {
		if p.from == p.to {
			continue
		}
		set, err := minersim.ListenFirmware(ms[p.from:p.to], d.addr(p.from).String(), false, p.cfg)
		if err != nil {
			d.close()
			return fmt.Errorf("demo: firmware APIs: %w", err)
		}
		d.sets = append(d.sets, set)
		for i, a := range set.Addrs() {
			if a != d.inv[p.from+i].Address {
				d.close()
				return fmt.Errorf("demo: miner %d's firmware listens on %s, the inventory says %s", p.from+i, a, d.inv[p.from+i].Address)
			}
		}
	}
	return nil
}

// serve answers on every firmware API until ctx is done.
func (d *demoFirmware) serve(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range d.sets {
		wg.Go(func() { _ = s.Serve(ctx) })
	}
	wg.Wait()
}

// close releases listeners never served and the drivers' connections.
func (d *demoFirmware) close() {
	for _, s := range d.sets {
		s.Close()
	}
	d.reg.Close()
}

// describe names each group's driver and address range.
func (d *demoFirmware) describe() string {
	var parts []string
	if d.countA > 0 {
		parts = append(parts, fmt.Sprintf("rack-a LuxOS %s..%s", d.addr(0), d.addr(d.countA-1)))
	}
	if d.total > d.countA {
		parts = append(parts, fmt.Sprintf("rack-b Antminer CGI %s..%s", d.addr(d.countA), d.addr(d.total-1)))
	}
	return strings.Join(parts, ", ")
}

// statusLine reads every miner through its driver and describes each
// group: what the firmware says (mining, asleep, failed), its hashrate,
// and the simulated power draw of its miners.
func (d *demoFirmware) statusLine(ctx context.Context) string {
	if d.fleet == nil {
		return ""
	}
	rs := fleet.Act(ctx, d.inv, fleet.ActionStatus, fleet.Options{Drivers: d.reg, CallTimeout: 2 * time.Second, Retries: -1})
	type tot struct {
		driver                  string
		mining, asleep, failed  int
		hashrateTHs, simulatedW float64
	}
	groups := map[string]*tot{}
	var order []string
	for i, r := range rs {
		g := groups[r.Group]
		if g == nil {
			g = &tot{driver: r.Driver}
			groups[r.Group] = g
			order = append(order, r.Group)
		}
		switch {
		case !r.OK:
			g.failed++
		case r.State.State == fleet.StateSleeping:
			g.asleep++
		default:
			g.mining++
		}
		if r.OK {
			g.hashrateTHs += r.State.HashrateTHs
		}
		g.simulatedW += d.fleet.Miners()[i].Status().PowerWatts
	}
	var b strings.Builder
	for _, name := range order {
		g := groups[name]
		fmt.Fprintf(&b, " %s (%s) %d mining, %d asleep", name, g.driver, g.mining, g.asleep)
		if g.failed > 0 {
			fmt.Fprintf(&b, ", %d unreadable", g.failed)
		}
		fmt.Fprintf(&b, ", %.0f TH/s, %s;", g.hashrateTHs, formatWatts(g.simulatedW))
	}
	return strings.TrimSuffix(b.String(), ";")
}

// formatWatts prints W or kW.
func formatWatts(w float64) string {
	if w >= 1000 {
		return fmt.Sprintf("%.1f kW", w/1000)
	}
	return fmt.Sprintf("%.0f W", w)
}
