package devstack

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// scratch makes a folder the postgres system user can enter (t.TempDir is
// 0700), removed at cleanup.
func scratch(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "wattpool-devstack-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// takenPortFirst makes the next FreePort pick return port, as if another
// process had bound it between the pick and the server's bind; later picks
// are real.
func takenPortFirst(t *testing.T, port int) {
	handed := false
	freePort = func() (int, error) {
		if !handed {
			handed = true
			return port, nil
		}
		return FreePort()
	}
	t.Cleanup(func() { freePort = FreePort })
}

func startTestPostgres(t *testing.T, opts PostgresOptions) (*Postgres, error) {
	t.Helper()
	if _, err := FindPostgresBin(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts.Dir = scratch(t)
	pg, err := StartPostgres(ctx, opts)
	if err == nil {
		t.Cleanup(pg.Stop)
	}
	return pg, err
}

// TestPostgresPortTaken: a cluster whose port another cluster holds must
// not take that one for itself (both have the same superuser and trust
// authentication); on a port it picked, it starts again on a new one.
func TestPostgresPortTaken(t *testing.T) {
	first, err := startTestPostgres(t, PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := startTestPostgres(t, PostgresOptions{Port: first.Port()}); !errors.Is(err, errExitedDuringStartup) {
		t.Fatalf("second cluster on the first one's port: %v, want it to fail as exited during start-up", err)
	}

	takenPortFirst(t, first.Port())
	second, err := startTestPostgres(t, PostgresOptions{})
	if err != nil {
		t.Fatalf("second cluster after losing its picked port: %v", err)
	}
	if second.Port() == first.Port() {
		t.Fatalf("second cluster reports the first one's port %d", first.Port())
	}
	if err := second.ping(context.Background()); err != nil {
		t.Fatalf("second cluster: %v", err)
	}
}

func startTestBtcd(t *testing.T, opts BtcdOptions) (*Btcd, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := BtcdBinary(ctx); err != nil {
		t.Skip(err)
	}
	opts.Dir = t.TempDir()
	b, err := StartBtcd(ctx, opts)
	if err == nil {
		t.Cleanup(b.Stop)
	}
	return b, err
}

// TestBtcdPortTaken: a node whose RPC port another node holds must not
// take that node's answers for its own; on ports it picked, it starts
// again on new ones.
func TestBtcdPortTaken(t *testing.T) {
	first, err := startTestBtcd(t, BtcdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := startTestBtcd(t, BtcdOptions{RPCPort: first.opts.RPCPort}); !errors.Is(err, errExitedDuringStartup) {
		t.Fatalf("second node on the first one's RPC port: %v, want it to fail as exited during start-up", err)
	}

	takenPortFirst(t, first.opts.RPCPort)
	second, err := startTestBtcd(t, BtcdOptions{})
	if err != nil {
		t.Fatalf("second node after losing its picked port: %v", err)
	}
	if second.RPCHost() == first.RPCHost() || second.RPCPass() == first.RPCPass() {
		t.Fatalf("second node shares the first one's address %s or password", first.RPCHost())
	}
	if _, err := second.Call(context.Background(), "getblockcount"); err != nil {
		t.Fatalf("second node: %v", err)
	}
}
