package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/shares/audit"
)

// auditCommands are the `wattpool audit` subcommands: the tamper-evident
// share log.
var auditCommands = []subcommand{
	{"head", "the chain's newest segment and its hash", cmdAuditHead},
	{"verify", "re-read every share row and archive and name what was inserted, changed or deleted", cmdAuditVerify},
	{"archive", "archive, verify and drop the partitions older than audit.retention", cmdAuditArchive},
	{"adopt", "seal the rows stored before the audit chain existed", cmdAuditAdopt},
}

// cmdAudit dispatches the audit subcommands.
func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	return dispatch(ctx, "audit", auditCommands, args, stdout, stderr, lookup)
}

// writeOut writes a report as JSON or with table, buffered.
func writeOut(stdout io.Writer, cmd, format string, doc any, table func(w *bufio.Writer)) error {
	w := bufio.NewWriter(stdout)
	var err error
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(doc)
	} else {
		table(w)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return fmt.Errorf("%s: write output: %w", cmd, err)
	}
	return nil
}

// cmdAuditHead prints the chain's head: keep it outside the database, and
// a later rewrite of the whole log cannot hide.
func cmdAuditHead(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("audit head", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	format := fs.String("format", "table", "output `format`: table or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkFormat("audit head", *format, "table", "json"); err != nil {
		return err
	}
	conn, err := connectConfigured(ctx, path(), lookup)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	h, err := audit.ReadHead(ctx, conn)
	if err != nil {
		return fmt.Errorf("audit head: %w", err)
	}
	return writeOut(stdout, "audit head", *format, h, func(w *bufio.Writer) {
		fmt.Fprintf(w, "segment %d  hash %s  shares %d  sealed %s\n", h.Seq, h.Hash, h.Shares, h.UpdatedAt.Format(time.RFC3339Nano))
	})
}

// cmdAuditVerify re-reads every share row and archive and recomputes the
// chain; it exits 1 when anything was inserted, changed or deleted.
func cmdAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	var from, to timeFlag
	fs.Var(&from, "from", "check the segments with shares from this `time` on (RFC 3339, or a duration ago such as 24h)")
	fs.Var(&to, "to", "check the segments with shares before this `time` (RFC 3339, or a duration ago)")
	format := fs.String("format", "table", "output `format`: table or json")
	streams := fs.Int("streams", audit.DefaultStreams, "how many partitions and archives are read at once (`n`): a connection and a database core each")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkFormat("audit verify", *format, "table", "json"); err != nil {
		return err
	}
	if *streams < 1 || *streams > 64 {
		return usageError{fmt.Sprintf("audit verify: -streams %d is not in 1..64", *streams)}
	}
	if !from.t.IsZero() && !to.t.IsZero() && !from.t.Before(to.t) {
		return usageError{fmt.Sprintf("audit verify: -from %s is not before -to %s", from.t.Format(time.RFC3339), to.t.Format(time.RFC3339))}
	}
	conn, err := connectConfigured(ctx, path(), lookup)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rep, err := audit.Verify(ctx, conn, audit.VerifyOptions{From: from.t, To: to.t, Streams: *streams})
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	if err := writeOut(stdout, "audit verify", *format, rep, func(w *bufio.Writer) { printAuditReport(w, rep) }); err != nil {
		return err
	}
	if !rep.OK {
		return silentError{1}
	}
	return nil
}

func printAuditReport(w io.Writer, rep audit.Report) {
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "%-8s", p.Kind)
		if p.ShareID != "" {
			fmt.Fprintf(w, " share %s", p.ShareID)
		}
		if p.Segment != 0 {
			fmt.Fprintf(w, " segment %d", p.Segment)
		}
		if p.Time != nil {
			fmt.Fprintf(w, " time %s", p.Time.Format(time.RFC3339Nano))
		}
		if p.Source != "" {
			fmt.Fprintf(w, " in %s", p.Source)
		}
		fmt.Fprintf(w, ": %s\n", p.Detail)
	}
	verdict := "OK"
	if !rep.OK {
		verdict = fmt.Sprintf("TAMPERED (%d problems)", len(rep.Problems))
	}
	rate := 0.0
	if rep.Seconds > 0 {
		rate = float64(rep.Rows) / rep.Seconds
	}
	fmt.Fprintf(w, "%s: %d rows (%d archives) in %d of %d segments, head segment %d %s; %.2f s, %.0f rows/s\n",
		verdict, rep.Rows, rep.Archives, rep.Segments, rep.Chain, rep.Head.Seq, rep.Head.Hash, rep.Seconds, rate)
}

// cmdAuditArchive applies [audit] retention now: the partitions past it
// are archived, checked and dropped (serve does the same once a day).
func cmdAuditArchive(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("audit archive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	format := fs.String("format", "table", "output `format`: table or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkFormat("audit archive", *format, "table", "json"); err != nil {
		return err
	}
	cfg, err := config.LoadAudit(path())
	if err != nil {
		return fmt.Errorf("audit archive: configuration %s is not valid:\n%w", describePath(path()), err)
	}
	if cfg.Retention == 0 {
		return fmt.Errorf("audit archive: audit.retention is unset or 0 in %s: every partition is kept, nothing to archive", describePath(path()))
	}
	conn, err := connectConfigured(ctx, path(), lookup)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	done, err := audit.Archive(ctx, conn, audit.ArchiveOptions{Dir: cfg.ArchiveDir, Retention: cfg.Retention,
		Now: time.Now(), Log: zap.NewNop()})
	if done == nil {
		done = []audit.Archived{}
	}
	if werr := writeOut(stdout, "audit archive", *format, done, func(w *bufio.Writer) {
		for _, a := range done {
			fmt.Fprintf(w, "%s: %d shares of %d segments -> %s (%d bytes) in %.2f s\n", a.Partition, a.Shares, a.Segments, a.Path, a.Bytes, a.Seconds)
		}
		fmt.Fprintf(w, "%d partitions archived and dropped (retention %s)\n", len(done), cfg.Retention)
	}); werr != nil {
		return werr
	}
	if err != nil {
		return fmt.Errorf("audit archive: %w", err)
	}
	return nil
}

// cmdAuditAdopt seals the rows a database held before the audit schema:
// once, at the upgrade, since it seals whatever is unsealed.
func cmdAuditAdopt(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("audit adopt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	var before timeFlag
	fs.Var(&before, "before", "seal the unsealed shares older than this `time` (RFC 3339): when the database was migrated to the audit schema (required)")
	format := fs.String("format", "table", "output `format`: table or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkFormat("audit adopt", *format, "table", "json"); err != nil {
		return err
	}
	if before.t.IsZero() {
		return usageError{"audit adopt: -before is required: the time the database was migrated to the audit schema (migration 006)"}
	}
	conn, err := connectConfigured(ctx, path(), lookup)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	res, err := audit.Adopt(ctx, conn, before.t, time.Now())
	if err != nil {
		return fmt.Errorf("audit adopt: %w", err)
	}
	return writeOut(stdout, "audit adopt", *format, res, func(w *bufio.Writer) {
		fmt.Fprintf(w, "%d shares from before %s sealed in %d segments (%d-%d)\n", res.Shares,
			before.t.UTC().Format(time.RFC3339), res.Segments, res.FirstSeq, res.LastSeq)
	})
}
