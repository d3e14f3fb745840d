package minersim

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestFirmwareMinersDialFromTheirAddress: a miner whose firmware API
// listens on an address of its own opens its pool connection from that
// address (the pool's wrong-group report ties the two by it); with a port
// per miner on one address (samePortStep) the system picks the source.
func TestFirmwareMinersDialFromTheirAddress(t *testing.T) {
	pool, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	remotes := make(chan netip.Addr, 8)
	go func() {
		for {
			c, err := pool.Accept()
			if err != nil {
				return
			}
			remotes <- netip.MustParseAddrPort(c.RemoteAddr().String()).Addr()
			c.Close()
		}
	}()
	for _, tc := range []struct {
		name     string
		base     string
		portStep bool
		want     func(fw string) netip.Addr
	}{
		{"own address", "127.0.42.7:0", false, func(fw string) netip.Addr { return netip.MustParseAddrPort(fw).Addr() }},
		{"port per miner", "127.0.0.1:0", true, func(string) netip.Addr { return netip.MustParseAddr("127.0.0.1") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := NewGrinder(1, 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			m, err := NewMiner(MinerConfig{Addr: pool.Addr().String(), User: "acct.rig0", Password: "x", Model: AntminerS19,
				ReconnectDelay: time.Hour}, g, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			set, err := ListenFirmware([]*Miner{m}, tc.base, tc.portStep, FirmwareConfig{Kind: FirmwareLuxOS})
			if err != nil {
				t.Fatal(err)
			}
			defer set.Close()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = m.Run(ctx) }()
			defer func() { cancel(); <-done }()
			select {
			case got := <-remotes:
				if want := tc.want(set.Addrs()[0]); got != want {
					t.Errorf("pool connection from %v, want %v (firmware on %s)", got, want, set.Addrs()[0])
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the miner never dialed the pool")
			}
		})
	}
}
