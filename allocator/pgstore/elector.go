package pgstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wattpool/wattpool/allocator"
)

// LeaderLockKey is the session advisory lock the allocator leader holds:
// the first 8 bytes of "wattpool" read as a big-endian int64 plus 1, so it
// cannot meet tern's migration lock or another tool's small numbers.
const LeaderLockKey int64 = 0x77617474706f6f6c + 1

// Elector elects one allocator leader among the instances sharing a
// database: the one whose dedicated connection holds the session advisory
// lock LeaderLockKey. PostgreSQL drops the lock with the session, so a
// leader that dies or loses its connection frees the leadership at once;
// the leader itself notices on its next check (a failed ping) and stops
// acting before another instance can have taken over.
type Elector struct {
	cfg     *pgx.ConnConfig
	timeout time.Duration

	mu   sync.Mutex
	conn *pgx.Conn // nil until connected, and after a failure
	held bool
}

var _ allocator.Elector = (*Elector)(nil)

// NewElector elects over its own connections made from cfg (a copy of the
// pool's); each check is bounded by timeout.
func NewElector(cfg *pgx.ConnConfig, timeout time.Duration) *Elector {
	return &Elector{cfg: cfg, timeout: timeout}
}

// Lead takes the lock when it is free and checks the connection holding
// it when this instance already leads. Any failure drops the connection
// (and so the lock) and reports false with the error.
func (e *Elector) Lead(ctx context.Context) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	if e.conn == nil {
		conn, err := pgx.ConnectConfig(ctx, e.cfg)
		if err != nil {
			return false, fmt.Errorf("allocator leader election: connect: %w", err)
		}
		e.conn = conn
	}
	if e.held {
		if err := e.conn.Ping(ctx); err != nil {
			e.dropLocked()
			return false, fmt.Errorf("allocator leader election: the connection holding the lock failed: %w", err)
		}
		return true, nil
	}
	var got bool
	if err := e.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", LeaderLockKey).Scan(&got); err != nil {
		e.dropLocked()
		return false, fmt.Errorf("allocator leader election: try the lock: %w", err)
	}
	e.held = got
	return got, nil
}

// dropLocked closes the connection, which releases the lock if the
// server still has the session.
func (e *Elector) dropLocked() {
	if e.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = e.conn.Close(ctx)
		cancel()
	}
	e.conn, e.held = nil, false
}

// Close gives the leadership up (closing the session releases the lock).
func (e *Elector) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dropLocked()
}
