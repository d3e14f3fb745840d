package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/wattpool/wattpool/internal/testenv"
)

// TestServeRefusesUnmigratedDatabase: serve on an empty database without
// database.migrate stops at once naming `wattpool migrate` (it used to
// start and log `relation "spool_segments" does not exist` in a loop);
// after `wattpool migrate` it starts.
func TestServeRefusesUnmigratedDatabase(t *testing.T) {
	dbURL := testenv.Postgres(t)
	vars := loadVars(t, dbURL, t.TempDir())
	delete(vars, "WATTPOOL_DATABASE_MIGRATE")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var logs syncBuffer
	err := run(ctx, []string{"serve"}, io.Discard, &logs, mapEnv(vars))
	if !errors.Is(err, ErrSchemaBehind) || !strings.Contains(err.Error(), "run `wattpool migrate`") ||
		!strings.Contains(err.Error(), "version 0 of") {
		t.Fatalf("serve on an unmigrated database: %v\n%s", err, tail(logs.String(), 4<<10))
	}
	if err := run(ctx, []string{"migrate"}, io.Discard, io.Discard, mapEnv(vars)); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	pool := serveInProcess(t, vars)
	if err := pool.shutdown(); err != nil {
		t.Fatalf("serve after migrate: %v", err)
	}
}
