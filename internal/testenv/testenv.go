// Package testenv gives integration tests the real services they run
// against: a throw-away PostgreSQL cluster (one per test process, a fresh
// database per test) and btcd regtest nodes (one per test). A test that
// needs a service that cannot be started fails with a message naming what
// is missing; nothing skips.
//
// WATTPOOL_TEST_DATABASE_URL points tests at an existing server instead:
// it must allow CREATE DATABASE, and each test gets its own database there.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wattpool/wattpool/internal/devstack"
)

// Main runs the tests of a package and then stops the services testenv
// started for them. Use it as: func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	shared.stop()
	os.Exit(code)
}

// sharedCluster is the one PostgreSQL cluster of this test process.
type sharedCluster struct {
	once sync.Once
	pg   *devstack.Postgres
	dir  string
	url  string
	err  error
}

var shared sharedCluster

func (s *sharedCluster) adminURL() (string, error) {
	s.once.Do(func() {
		if u := os.Getenv("WATTPOOL_TEST_DATABASE_URL"); u != "" {
			s.url = u
			return
		}
		s.dir, s.err = scratchDir("pg")
		if s.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		s.pg, s.err = devstack.StartPostgres(ctx, devstack.PostgresOptions{Dir: s.dir, Log: logFile(s.dir)})
		if s.err == nil {
			s.url = s.pg.AdminURL()
		}
	})
	return s.url, s.err
}

func (s *sharedCluster) stop() {
	if s.pg != nil {
		s.pg.Stop()
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// Postgres returns the URL of a new, empty database for this test, dropped
// when the test ends.
func Postgres(t testing.TB) string {
	t.Helper()
	admin, err := shared.adminURL()
	if err != nil {
		t.Fatalf("testenv: cannot start PostgreSQL for this test: %v", err)
	}
	name := "t_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, err := devstack.CreateDatabase(ctx, admin, name)
	if err != nil {
		t.Fatalf("testenv: create test database: %v", err)
	}
	t.Cleanup(func() { dropDatabase(admin, name) })
	return url
}

func dropDatabase(adminURL, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// Cluster is a PostgreSQL cluster of one test's own, which the test may stop
// and start (to prove behaviour while the database is down).
type Cluster struct {
	// URL is the connection URL of the cluster's "wattpool" database.
	URL string
	pg  *devstack.Postgres
}

// Stop shuts the cluster down and waits until it has exited.
func (c *Cluster) Stop() { c.pg.Stop() }

// Start starts the cluster again on the same port and data.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.pg.Start(ctx); err != nil {
		t.Fatalf("testenv: restart PostgreSQL: %v", err)
	}
}

// PrivatePostgres starts a cluster for this test alone, stopped and removed
// when the test ends.
func PrivatePostgres(t testing.TB) *Cluster {
	t.Helper()
	dir, err := scratchDir("pgpriv")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{Dir: dir, Log: logFile(dir)})
	if err != nil {
		t.Fatalf("testenv: cannot start PostgreSQL for this test: %v", err)
	}
	t.Cleanup(pg.Stop)
	url, err := pg.CreateDatabase(ctx, "wattpool")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return &Cluster{URL: url, pg: pg}
}

// scratchDir makes a folder under the system temp dir that the unprivileged
// postgres user can reach (t.TempDir's folders are private to root).
func scratchDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", "wattpool-"+prefix+"-")
	if err != nil {
		return "", fmt.Errorf("make scratch folder: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("make scratch folder: %w", err)
	}
	return dir, nil
}

// logFile opens dir/server.log for a service's output; on failure output is
// discarded, which only costs diagnostics.
func logFile(dir string) *os.File {
	f, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil
	}
	return f
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
