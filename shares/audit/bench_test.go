package audit_test

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wattpool/wattpool/migrations"
	"github.com/wattpool/wattpool/shares/audit"
)

// benchShares is how many shares BenchmarkAuditPostgres seals:
// WATTPOOL_AUDIT_BENCH_SHARES, default one million.
func benchShares(b *testing.B) int {
	n := 1_000_000
	if s := os.Getenv("WATTPOOL_AUDIT_BENCH_SHARES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			b.Fatalf("WATTPOOL_AUDIT_BENCH_SHARES=%q", s)
		}
	}
	return n
}

// benchDays is how many daily partitions the benchmark's shares fill.
const benchDays = 4

// seal stores n shares spread over benchDays days in batches of 20,000,
// each COPYed and sealed in one transaction as the ledger's writer does.
func seal(b *testing.B, db *pgxpool.Pool, n int) {
	ctx := context.Background()
	if _, err := migrations.EnsurePartitions(ctx, db, day, benchDays); err != nil {
		b.Fatal(err)
	}
	const batch = 20_000
	step := benchDays * 24 * time.Hour / time.Duration(n)
	rows := make([][]any, 0, batch)
	sealed := make([]audit.Sealed, 0, batch)
	var buf []byte
	for start := 0; start < n; start += batch {
		rows, sealed = rows[:0], sealed[:0]
		for i := start; i < min(n, start+batch); i++ {
			var id [16]byte
			binary.BigEndian.PutUint64(id[:8], 0x5eed)
			binary.BigEndian.PutUint64(id[8:], uint64(16+100*i))
			r := audit.Row{Time: day.Truncate(24 * time.Hour).Add(time.Duration(i) * step), ID: id, Instance: "pool-a",
				AccountID: int64(i % 1000), WorkerID: int64(i % 5000), Group: "g1", JobID: strconv.Itoa(i / 1000),
				Extranonce1: []byte{0, 0, byte(i >> 8), byte(i)}, Extranonce2: []byte{0, 0, 0, 0, byte(i >> 16), byte(i >> 8), byte(i), 1},
				NTime: 1700000000, Nonce: int64(uint32(i) * 2654435761), VersionBits: 0x2000, Version: 0x20002000,
				ShareDiff: 65536, AchievedDiff: 70000 + float64(i%1000), Hash: id[:], IsBlock: false}
			var d [32]byte
			d, buf = audit.DigestRow(buf, &r)
			sealed = append(sealed, audit.Sealed{ID: id, Digest: d, Time: r.Time})
			rows = append(rows, []any{r.Time, r.ID, r.Instance, r.AccountID, r.WorkerID, r.Group, r.JobID, r.Extranonce1,
				r.Extranonce2, r.NTime, r.Nonce, r.VersionBits, r.Version, r.ShareDiff, r.AchievedDiff, r.Hash, r.IsBlock})
		}
		err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"shares"}, audit.Columns, pgx.CopyFromRows(rows)); err != nil {
				return err
			}
			_, err := audit.Seal(ctx, tx, "pool-a", sealed, day)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuditPostgres seals WATTPOOL_AUDIT_BENCH_SHARES shares of one
// day on the test PostgreSQL, then reports verify's rows/s, the archive
// time of that day, and verify's rows/s reading the archive. Run with
// -benchtime=1x; WATTPOOL_AUDIT_BENCH_STREAMS sets verify's streams.
func BenchmarkAuditPostgres(b *testing.B) {
	ctx := context.Background()
	n := benchShares(b)
	db := newDB(b)
	start := time.Now()
	seal(b, db, n)
	sealRate := float64(n) / time.Since(start).Seconds()
	c, err := db.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Release()
	if _, err := c.Exec(ctx, "VACUUM ANALYZE shares"); err != nil {
		b.Fatal(err)
	}
	streams, _ := strconv.Atoi(os.Getenv("WATTPOOL_AUDIT_BENCH_STREAMS")) // 0: the default
	b.ResetTimer()
	var rate float64
	for range b.N {
		rep, err := audit.Verify(ctx, c.Conn(), audit.VerifyOptions{Streams: streams})
		if err != nil || !rep.OK || rep.Rows != int64(n) {
			b.Fatalf("verify: %+v, %v", rep, err)
		}
		rate = float64(rep.Rows) / rep.Seconds
	}
	b.StopTimer()
	b.ReportMetric(sealRate, "sealed_shares/s")
	b.ReportMetric(rate, "verified_rows/s")
	// The ceiling: PostgreSQL's own COPY of the rows, thrown away.
	start = time.Now()
	if _, err := c.Conn().PgConn().CopyTo(ctx, io.Discard, "COPY (SELECT "+strings.Join(audit.Columns, ", ")+
		" FROM shares) TO STDOUT (FORMAT binary)"); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "raw_copy_rows/s")
	start = time.Now()
	done, err := audit.Archive(ctx, c.Conn(), audit.ArchiveOptions{Dir: b.TempDir(), Retention: 400 * 24 * time.Hour,
		Now: day.AddDate(0, 0, 400+benchDays)})
	var archived, bytes int64
	for _, a := range done {
		archived += a.Shares
		bytes += a.Bytes
	}
	if err != nil || len(done) != benchDays || archived != int64(n) {
		b.Fatalf("archive: %+v, %v", done, err)
	}
	b.ReportMetric(time.Since(start).Seconds(), "archive_s")
	b.ReportMetric(float64(bytes)/float64(n), "archive_bytes/share")
	rep, err := audit.Verify(ctx, c.Conn(), audit.VerifyOptions{})
	if err != nil || !rep.OK || rep.Rows != int64(n) || rep.Archives != benchDays {
		b.Fatalf("verify from the archive: %+v, %v", rep, err)
	}
	b.ReportMetric(float64(rep.Rows)/rep.Seconds, "archived_rows/s")
}
