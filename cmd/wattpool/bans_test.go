package main

import (
	"testing"
	"time"

	"github.com/wattpool/wattpool/stratum/minersim"
)

// Both tests run a real `serve` and real minersim fleets on 127.0.0.1: one
// address, as a farm behind NAT looks to the pool. They use the default
// [stratum.ban] policy (windows of 100 shares, 50% invalid; an address
// banned once 10 distinct miners, half of its connections, flood).

// TestBadRigsCostOnlyTheirConnections: 3 machines sending mostly bad
// shares next to 200 honest ones on the same address are closed alone,
// again after each reconnect; no honest miner is disconnected and the
// address is never banned. (Before, the first flood banned 127.0.0.1 and
// all 200 honest miners were disconnected.)
func TestBadRigsCostOnlyTheirConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("runs fleets for several seconds")
	}
	vars := loadVars(t, "", t.TempDir())
	delete(vars, "WATTPOOL_DATABASE_MIGRATE")
	pool := serveInProcess(t, vars)
	addr := vars["WATTPOOL_STRATUM_ADDR"]
	honest := startFleet(t, minersim.FleetConfig{
		Miner:    minersim.MinerConfig{Addr: addr, User: "farm.good", Password: "x", HashesPerSecond: 0.5},
		Miners:   200,
		Duration: 5 * time.Minute, // a bound; the test stops it
	})
	waitFor(t, time.Minute, "200 honest miners connected", func() (bool, error) {
		n, err := pool.http.metric(`wattpool_stratum_connections{listener="default"}`)
		return n == 200, err
	})
	bad := startFleet(t, minersim.FleetConfig{
		Miner: minersim.MinerConfig{Addr: addr, User: "farm.bad", Password: "x", HashesPerSecond: 50, BadFraction: 0.9,
			ReconnectDelay: 50 * time.Millisecond, MaxReconnectDelay: 200 * time.Millisecond},
		Miners:   3,
		Duration: 5 * time.Minute,
	})
	// Three rounds of the 3 bad machines flooding and reconnecting.
	waitFor(t, 2*time.Minute, "9 connections closed for invalid shares", func() (bool, error) {
		n, err := pool.http.metric(`wattpool_stratum_connections_closed_total{reason="invalid_shares"}`)
		return n >= 9, err
	})
	// Read before stopping: stopping disconnects every miner.
	honestReport := honest.fleet.Stats().Snapshot(time.Second)
	badReport := bad.stop(t)
	honest.stop(t)
	if bans, err := pool.http.metric("wattpool_stratum_bans_total"); err != nil || bans != 0 {
		t.Fatalf("%v address bans (%v), want 0", bans, err)
	}
	if honestReport.Disconnects != 0 || honestReport.Connects != 200 || honestReport.Accepted == 0 {
		t.Fatalf("honest miners: %d connects, %d disconnects, %d accepted; want 200, 0 and some",
			honestReport.Connects, honestReport.Disconnects, honestReport.Accepted)
	}
	if badReport.Connects < 9 {
		t.Fatalf("bad miners connected %d times, want at least 9 (closed and back)", badReport.Connects)
	}
	t.Logf("honest: %d accepted; bad: %d connects, %d rejected %v", honestReport.Accepted, badReport.Connects,
		badReport.Rejected, badReport.RejectsByReason)
	if err := pool.shutdown(); err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// TestFloodingFarmBannedOnce: a whole farm of 40 machines flooding from
// one address gets it banned, once and for the first period (10 minutes):
// the other machines' floods neither extend nor escalate it. (Before,
// every flooding connection doubled the ban: 24 hours within 20 ms.)
func TestFloodingFarmBannedOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a fleet for several seconds")
	}
	vars := loadVars(t, "", t.TempDir())
	delete(vars, "WATTPOOL_DATABASE_MIGRATE")
	pool := serveInProcess(t, vars)
	farm := startFleet(t, minersim.FleetConfig{
		Miner: minersim.MinerConfig{Addr: vars["WATTPOOL_STRATUM_ADDR"], User: "farm.rig", Password: "x",
			HashesPerSecond: 50, BadFraction: 0.9, ReconnectDelay: 50 * time.Millisecond, MaxReconnectDelay: 200 * time.Millisecond},
		Miners:   40,
		Duration: 5 * time.Minute,
	})
	waitFor(t, 2*time.Minute, "the address banned", func() (bool, error) {
		st, err := pool.http.status()
		return err == nil && st.BannedIPs == 1, err
	})
	// Every connection of the farm is closed, and its reconnects refused.
	waitFor(t, time.Minute, "the farm's connections closed", func() (bool, error) {
		n, err := pool.http.metric(`wattpool_stratum_connections{listener="default"}`)
		return n == 0, err
	})
	refusedBefore, err := pool.http.metric(`wattpool_stratum_connections_closed_total{reason="banned"}`)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "reconnects refused while banned", func() (bool, error) {
		n, err := pool.http.metric(`wattpool_stratum_connections_closed_total{reason="banned"}`)
		return n > refusedBefore, err
	})
	farm.stop(t)
	if bans, err := pool.http.metric("wattpool_stratum_bans_total"); err != nil || bans != 1 {
		t.Fatalf("%v address bans (%v), want exactly 1", bans, err)
	}
	if err := pool.shutdown(); err != nil {
		t.Fatalf("serve: %v", err)
	}
}
