package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wattpool/wattpool/allocator/fleet"
	"github.com/wattpool/wattpool/stratum"
)

// The wrong-group report: the pool knows each connection's remote address
// and the group its workers fall in ([[stratum.group]]); the inventory
// knows each miner's host and the group it should be in. A miner whose
// workers show up in another group is mined for the wrong allocator group:
// curtailing "its" group would not touch it. GET /api/v1/fleet and the
// gauge wattpool_fleet_group_mismatches show them.

// groupMismatch is one inventory miner whose pool connections put its
// workers in another group than the inventory says.
type groupMismatch struct {
	// Address is the miner's firmware address in the inventory; Host is
	// the IP its pool connections come from.
	Address        string `json:"address"`
	Host           string `json:"host"`
	Driver         string `json:"driver"`
	InventoryGroup string `json:"inventory_group"`
	// PoolGroup is the group the pool put the workers in ("" when no
	// [[stratum.group]] rule matched them).
	PoolGroup string `json:"pool_group"`
	// Workers are the workers (account.worker) seen in PoolGroup.
	Workers []string `json:"workers"`
}

// fleetReport is the JSON document of GET /api/v1/fleet.
type fleetReport struct {
	// Inventory is the file read (allocator.inventory).
	Inventory string `json:"inventory"`
	// InventoryError says why the inventory could not be read (then the
	// rest is empty).
	InventoryError  string `json:"inventory_error,omitempty"`
	InventoryMiners int    `json:"inventory_miners"`
	// MinersSeen counts inventory miners with at least one authorized
	// worker on the pool; MinersNotSeen the others (down, mining
	// elsewhere, or named by a host name, which is not resolved).
	MinersSeen    int `json:"miners_seen"`
	MinersNotSeen int `json:"miners_not_seen"`
	// Mismatches lists the miners whose workers are in another group.
	Mismatches []groupMismatch `json:"mismatches"`
	// AmbiguousHosts are IPs the inventory lists miners of several
	// groups on (miners behind one NAT address, or one simulator host
	// with a port per miner): their connections cannot be told apart, so
	// they are not judged.
	AmbiguousHosts []string `json:"ambiguous_hosts"`
}

// workerKey is the registry's "account.worker" for a name as a miner sent
// it (an account alone is account.DefaultWorker).
func workerKey(name string) string {
	if !strings.Contains(name, ".") {
		return name + "." + stratum.DefaultWorker
	}
	return name
}

// inventoryHost is the IP of a miner's firmware address; ok is false when
// the host is a name (names are not resolved: compare addresses only).
func inventoryHost(address string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// matchGroups compares the inventory with the pool's connections. groupOf
// maps "account.worker" to the worker's pool group; a worker missing from
// it (it left between the two snapshots) is skipped.
func matchGroups(inv []fleet.Miner, conns []stratum.ConnInfo, groupOf map[string]string) fleetReport {
	r := fleetReport{InventoryMiners: len(inv), Mismatches: []groupMismatch{}, AmbiguousHosts: []string{}}
	// The inventory by host: which miners, and whether they agree on a
	// group.
	type hostInfo struct {
		miners    []fleet.Miner
		ambiguous bool
	}
	hosts := map[netip.Addr]*hostInfo{}
	for _, m := range inv {
		ip, ok := inventoryHost(m.Address)
		if !ok {
			r.MinersNotSeen++ // a host name: not compared
			continue
		}
		h := hosts[ip]
		if h == nil {
			h = &hostInfo{}
			hosts[ip] = h
		}
		if len(h.miners) > 0 && h.miners[0].Group != m.Group {
			h.ambiguous = true
		}
		h.miners = append(h.miners, m)
	}
	// The pool's workers by remote IP and group.
	seen := map[netip.Addr]map[string]map[string]bool{} // ip -> group -> worker set
	for _, c := range conns {
		ap, err := netip.ParseAddrPort(c.Remote)
		if err != nil {
			continue
		}
		ip := ap.Addr().Unmap()
		if hosts[ip] == nil {
			continue
		}
		for _, w := range c.Workers {
			key := workerKey(w)
			g, ok := groupOf[key]
			if !ok {
				continue
			}
			if seen[ip] == nil {
				seen[ip] = map[string]map[string]bool{}
			}
			if seen[ip][g] == nil {
				seen[ip][g] = map[string]bool{}
			}
			seen[ip][g][key] = true
		}
	}
	for ip, h := range hosts {
		if h.ambiguous {
			r.AmbiguousHosts = append(r.AmbiguousHosts, ip.String())
		}
		if len(seen[ip]) == 0 {
			r.MinersNotSeen += len(h.miners)
			continue
		}
		r.MinersSeen += len(h.miners)
		if h.ambiguous {
			continue
		}
		// One host, one group: every miner on it is reported with the
		// wrong groups its workers showed up in.
		for _, m := range h.miners {
			for g, ws := range seen[ip] {
				if g == m.Group {
					continue
				}
				names := make([]string, 0, len(ws))
				for w := range ws {
					names = append(names, w)
				}
				sort.Strings(names)
				r.Mismatches = append(r.Mismatches, groupMismatch{Address: m.Address, Host: ip.String(), Driver: m.Driver,
					InventoryGroup: m.Group, PoolGroup: g, Workers: names})
			}
		}
	}
	sort.Slice(r.Mismatches, func(i, j int) bool {
		a, b := r.Mismatches[i], r.Mismatches[j]
		if a.Address != b.Address {
			return a.Address < b.Address
		}
		return a.PoolGroup < b.PoolGroup
	})
	sort.Strings(r.AmbiguousHosts)
	return r
}

// fleetView is the serving pool's copy of the inventory (read once at
// start; SIGHUP does not reread it).
type fleetView struct {
	path   string
	miners []fleet.Miner
	err    error
}

// noPasswords lets the pool read an inventory whose password variables
// are not in its environment: the view never calls a miner, it only
// needs addresses and groups.
func noPasswords(string) (string, bool) { return "unused", true }

// loadFleetView reads the inventory at path ("" when the site has none:
// nil view). A broken inventory does not stop the pool: the view and the
// log say why.
func loadFleetView(path string) *fleetView {
	if path == "" {
		return nil
	}
	v := &fleetView{path: path}
	f, err := os.Open(path)
	if err != nil {
		v.err = fmt.Errorf("allocator.inventory: %w", err)
		return v
	}
	defer f.Close()
	if v.miners, err = fleet.ReadInventory(f, noPasswords); err != nil {
		v.err = fmt.Errorf("allocator.inventory %s: %w", path, err)
	}
	return v
}

// fleetReport compares the inventory with the server's connections now.
func (a *app) fleetReport() fleetReport {
	v := a.fleet
	if v.err != nil {
		return fleetReport{Inventory: v.path, InventoryError: v.err.Error(), Mismatches: []groupMismatch{}, AmbiguousHosts: []string{}}
	}
	groupOf := map[string]string{}
	conns := []stratum.ConnInfo(nil)
	if a.server != nil {
		// Connections first: a worker authorized in between is missing
		// from the connections, never from groupOf.
		conns = a.server.Connections()
		for _, w := range a.server.Workers() {
			groupOf[w.Account+"."+w.Worker] = w.Group
		}
	}
	r := matchGroups(v.miners, conns, groupOf)
	r.Inventory = v.path
	return r
}

// buildFleetView reads allocator.inventory for the wrong-group report and
// registers its gauge.
func (a *app) buildFleetView() {
	a.fleet = loadFleetView(a.cfg.Allocator.Inventory)
	if a.fleet == nil {
		return
	}
	if a.fleet.err != nil {
		a.log.Error("fleet inventory unreadable: no wrong-group report", zap.Error(a.fleet.err))
	}
	a.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "wattpool_fleet_group_mismatches",
		Help: "Inventory miners whose workers the pool sees in another group than the inventory names (GET /api/v1/fleet lists them).",
	}, func() float64 { return float64(len(a.fleetReport().Mismatches)) }))
}

// serveFleet answers GET /api/v1/fleet (404 without allocator.inventory).
func (a *app) serveFleet(w http.ResponseWriter, _ *http.Request) {
	if a.fleet == nil {
		http.Error(w, "allocator.inventory is not set", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(a.fleetReport())
}
