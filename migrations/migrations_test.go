package migrations

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wattpool/wattpool/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func connect(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestApplyTwiceIsIdempotent(t *testing.T) {
	ctx := context.Background()
	conn := connect(t)
	for i := range 2 {
		if err := Apply(ctx, conn); err != nil {
			t.Fatalf("apply #%d: %v", i+1, err)
		}
	}
	cur, latest, err := Version(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if cur != latest || latest < 1 {
		t.Fatalf("version = %d, latest = %d; want equal and >= 1", cur, latest)
	}
	for _, table := range []string{"accounts", "workers", "jobs", "shares", "shares_default", "rejects", "blocks", "block_status_history", "spool_segments", "reject_flushes"} {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", "public."+table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing after apply (err %v)", table, err)
		}
	}
}

func TestApplyConcurrentCallersSerialize(t *testing.T) {
	ctx := context.Background()
	url := testenv.Postgres(t)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(ctx)
			errs <- Apply(ctx, conn)
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent apply: %v", err)
		}
	}
}

func partitions(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(),
		`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		 WHERE i.inhparent = 'shares'::regclass ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestEnsurePartitionsCreatesDaysAheadAndMovesDefaultRows(t *testing.T) {
	ctx := context.Background()
	conn := connect(t)
	if err := Apply(ctx, conn); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2031, 3, 30, 22, 15, 0, 0, time.UTC)
	// A share that arrived before its partition existed lands in the
	// default partition and must move into the partition created later.
	if _, err := conn.Exec(ctx, `INSERT INTO shares VALUES ($1, gen_random_uuid(), 'i', 1, 1, '', 'j', '\x00', '\x00', 0, 0, 0, 0, 1, 1, '\x00', false)`,
		now.AddDate(0, 0, 2)); err != nil {
		t.Fatal(err)
	}
	created, err := EnsurePartitions(ctx, conn, now, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"shares_p20310330", "shares_p20310331", "shares_p20310401", "shares_p20310402"}
	if !slices.Equal(created, want) {
		t.Fatalf("created %v, want %v", created, want)
	}
	if got := partitions(t, conn); !slices.Equal(got, append([]string{"shares_default"}, want...)) {
		t.Fatalf("partitions %v", got)
	}
	var inDefault, inDay int
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM shares_default), (SELECT count(*) FROM shares_p20310401)").Scan(&inDefault, &inDay); err != nil {
		t.Fatal(err)
	}
	if inDefault != 0 || inDay != 1 {
		t.Fatalf("default has %d rows, shares_p20310401 has %d; want 0 and 1", inDefault, inDay)
	}
	again, err := EnsurePartitions(ctx, conn, now.Add(time.Hour), 3)
	if err != nil || len(again) != 0 {
		t.Fatalf("second run created %v (err %v), want nothing", again, err)
	}
}
