package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/wattpool/wattpool/shares"
)

// cmdSharesVerify recomputes stored shares from their stored jobs and
// prints every mismatch; it exits 1 when there is any.
func cmdSharesVerify(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("shares verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	var f shares.VerifyFilter
	var from, to timeFlag
	fs.Var(&from, "from", "verify shares from this `time` on (RFC 3339, or a duration ago such as 24h)")
	fs.Var(&to, "to", "verify shares before this `time` (RFC 3339, or a duration ago)")
	fs.StringVar(&f.Instance, "instance", "", "only shares of this pool `instance`")
	fs.StringVar(&f.Account, "account", "", "only shares of this `account`")
	fs.Int64Var(&f.Limit, "limit", 0, "stop after this many shares (0: all)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if f.Limit < 0 {
		return usageError{fmt.Sprintf("shares verify: -limit %d must not be negative", f.Limit)}
	}
	f.From, f.To = from.t, to.t
	conn, err := connectConfigured(ctx, path(), lookup)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rep, err := shares.NewLedger(conn).Verify(ctx, f)
	if err != nil {
		return err
	}
	printVerifyReport(stdout, rep)
	if !rep.OK() {
		return silentError{1}
	}
	return nil
}

func printVerifyReport(w io.Writer, rep shares.Report) {
	for _, m := range rep.Details {
		fmt.Fprintf(w, "MISMATCH share %s %s instance=%s worker=%s.%s job=%s: %s (stored %s, computed %s; achieved stored %g, computed %g)\n",
			m.ShareID, m.Time.UTC().Format(time.RFC3339Nano), m.Instance, m.Account, m.Worker, m.JobID, m.Problem,
			m.Stored, m.Computed, m.StoredAchieved, m.Correct)
	}
	if n := rep.Mismatches - int64(len(rep.Details)); n > 0 {
		fmt.Fprintf(w, "... and %d more mismatches\n", n)
	}
	verdict := "OK"
	if !rep.OK() {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "%s: %d shares checked, %d mismatches (%d with their job missing)\n",
		verdict, rep.Checked, rep.Mismatches, rep.MissingJobs)
}

// timeFlag parses an RFC 3339 time or a duration before now.
type timeFlag struct{ t time.Time }

func (f *timeFlag) String() string {
	if f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f *timeFlag) Set(s string) error {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		f.t = t
		return nil
	}
	d, err := time.ParseDuration(strings.TrimPrefix(s, "-"))
	if err != nil || d < 0 {
		return fmt.Errorf("%q is neither an RFC 3339 time nor a duration such as 24h", s)
	}
	f.t = time.Now().Add(-d)
	return nil
}
