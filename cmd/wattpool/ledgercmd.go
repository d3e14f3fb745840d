package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/shares"
	"github.com/wattpool/wattpool/shares/payout"
)

// defaultHashrateWindow is the window `shares hashrate` reports when
// neither -from nor -to says otherwise.
const defaultHashrateWindow = time.Hour

// cmdSharesHashrate prints the hashrate per worker, group or account over a
// window, from the share ledger.
func cmdSharesHashrate(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("shares hashrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	var from, to timeFlag
	by := fs.String("by", "worker", "group shares per `key`: worker, group or account")
	fs.Var(&from, "from", "window start `time` (RFC 3339, or a duration ago such as 24h; default: an hour before -to)")
	fs.Var(&to, "to", "window end `time`, exclusive (RFC 3339, or a duration ago; default: now)")
	format := fs.String("format", "table", "output `format`: table, csv or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var grouping shares.By
	switch *by {
	case "worker":
		grouping = shares.ByWorker
	case "group":
		grouping = shares.ByGroup
	case "account":
		grouping = shares.ByAccount
	default:
		return usageError{fmt.Sprintf("shares hashrate: -by %q is not one of worker, group, account", *by)}
	}
	if err := checkFormat("shares hashrate", *format, "table", "csv", "json"); err != nil {
		return err
	}
	start, end := hashrateWindow(from.t, to.t, time.Now())
	if !start.Before(end) {
		return usageError{fmt.Sprintf("shares hashrate: -from %s is not before -to %s",
			start.UTC().Format(time.RFC3339Nano), end.UTC().Format(time.RFC3339Nano))}
	}
	conn, err := connectConfigured(ctx, path(), lookup)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := shares.NewLedger(conn).Hashrate(ctx, grouping, start, end)
	if err != nil {
		return err
	}
	rep := hashrateReport{By: *by, From: start.UTC(), To: end.UTC(), Seconds: end.Sub(start).Seconds(), Rows: rows}
	w := bufio.NewWriter(stdout)
	switch *format {
	case "csv":
		err = rep.writeCSV(w)
	case "json":
		err = rep.writeJSON(w)
	default:
		rep.writeTable(w)
	}
	if err != nil {
		return fmt.Errorf("shares hashrate: write output: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("shares hashrate: write output: %w", err)
	}
	return nil
}

// hashrateWindow fills in the window's missing ends: to defaults to now,
// from to an hour before to.
func hashrateWindow(from, to, now time.Time) (time.Time, time.Time) {
	if to.IsZero() {
		to = now
	}
	if from.IsZero() {
		from = to.Add(-defaultHashrateWindow)
	}
	return from, to
}

func checkFormat(cmd, format string, allowed ...string) error {
	if slices.Contains(allowed, format) {
		return nil
	}
	return usageError{fmt.Sprintf("%s: -format %q is not one of %s", cmd, format, strings.Join(allowed, ", "))}
}

type hashrateReport struct {
	By       string
	From, To time.Time
	Seconds  float64
	Rows     []shares.Hashrate
}

// jsonNumber prints a finite float as encoding/json does (shortest form
// that parses back to the same value).
func jsonNumber(v float64) string {
	b, err := json.Marshal(v)
	if err != nil { // NaN or ±Inf: the ledger's difficulties never are
		return "null"
	}
	return string(b)
}

// formatDiff prints a float so that it parses back to the same value.
func formatDiff(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func (r hashrateReport) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"key", "shares", "diff_sum", "hashes_per_second"})
	for _, h := range r.Rows {
		cw.Write([]string{h.Key, strconv.FormatInt(h.Shares, 10), formatDiff(h.DiffSum), formatDiff(h.HashesPerSecond)})
	}
	cw.Flush()
	return cw.Error()
}

type hashrateJSON struct {
	By      string        `json:"by"`
	From    string        `json:"from"`
	To      string        `json:"to"`
	Seconds float64       `json:"seconds"`
	Rows    []hashrateRow `json:"rows"`
}

type hashrateRow struct {
	Key             string  `json:"key"`
	Shares          int64   `json:"shares"`
	DiffSum         float64 `json:"diff_sum"`
	HashesPerSecond float64 `json:"hashes_per_second"`
}

func (r hashrateReport) writeJSON(w io.Writer) error {
	out := hashrateJSON{By: r.By, From: r.From.Format(time.RFC3339Nano), To: r.To.Format(time.RFC3339Nano),
		Seconds: r.Seconds, Rows: make([]hashrateRow, 0, len(r.Rows))}
	for _, h := range r.Rows {
		out.Rows = append(out.Rows, hashrateRow{Key: h.Key, Shares: h.Shares, DiffSum: h.DiffSum, HashesPerSecond: h.HashesPerSecond})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func (r hashrateReport) writeTable(w io.Writer) {
	fmt.Fprintf(w, "hashrate by %s over %s .. %s (%s s)\n", r.By, r.From.Format(time.RFC3339Nano),
		r.To.Format(time.RFC3339Nano), formatDiff(r.Seconds))
	if len(r.Rows) == 0 {
		fmt.Fprintln(w, "no shares in the window")
		return
	}
	table := [][]string{{strings.ToUpper(r.By), "SHARES", "DIFF SUM", "H/S", "HASHRATE"}}
	var total shares.Hashrate
	for _, h := range r.Rows {
		table = append(table, []string{h.Key, strconv.FormatInt(h.Shares, 10), strconv.FormatFloat(h.DiffSum, 'f', -1, 64),
			fmt.Sprintf("%.0f", h.HashesPerSecond), humanHashrate(h.HashesPerSecond)})
		total.Shares += h.Shares
		total.DiffSum += h.DiffSum
		total.HashesPerSecond += h.HashesPerSecond
	}
	if len(r.Rows) > 1 {
		table = append(table, []string{"(total)", strconv.FormatInt(total.Shares, 10), strconv.FormatFloat(total.DiffSum, 'f', -1, 64),
			fmt.Sprintf("%.0f", total.HashesPerSecond), humanHashrate(total.HashesPerSecond)})
	}
	writeAligned(w, table)
}

// writeAligned prints rows as columns two spaces apart, the first column
// left-aligned and the (numeric) others right-aligned.
func writeAligned(w io.Writer, rows [][]string) {
	var width []int
	for _, row := range rows {
		for i, cell := range row {
			if i == len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	for _, row := range rows {
		var line strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell))
			if i == 0 {
				line.WriteString(cell + pad)
			} else {
				line.WriteString("  " + pad + cell)
			}
		}
		fmt.Fprintln(w, line.String())
	}
}

// humanHashrate prints hashes per second with an SI prefix: 1.23 TH/s.
func humanHashrate(hps float64) string {
	units := []string{"H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s", "ZH/s", "YH/s"}
	i := 0
	for ; i < len(units)-1 && math.Abs(hps) >= 999.995; i++ {
		hps /= 1000
	}
	return fmt.Sprintf("%.2f %s", hps, units[i])
}

// cmdSharesWindow prints the PPLNS window ending at a found block: the
// difficulty credited to each account and, with -shares, every share, so
// that a payout can be reconciled against the ledger.
func cmdSharesWindow(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("shares window", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	blockHex := fs.String("block", "", "the found block's `hash` (64 hex digits, as block explorers show it)")
	nFlag := fs.String("n", "", "window `difficulty`: a number such as 5e12, or a multiple of the block's network difficulty such as 2x")
	format := fs.String("format", "csv", "output `format`: csv or json")
	withShares := fs.Bool("shares", false, "also print every share of the window, newest first")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	block, err := parseBlockHash(*blockHex)
	if err != nil {
		return usageError{"shares window: " + err.Error()}
	}
	n, times, err := parseWindowN(*nFlag)
	if err != nil {
		return usageError{"shares window: " + err.Error()}
	}
	if err := checkFormat("shares window", *format, "csv", "json"); err != nil {
		return err
	}
	conn, err := connectConfigured(ctx, path(), lookup)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	reader := payout.NewReader(conn)
	found, err := reader.Block(ctx, block)
	if err != nil {
		return windowError(block, err)
	}
	size := payout.WindowSize{Diff: n}
	var netDiff float64
	if times {
		size = payout.WindowSize{Times: n}
		if found.NetworkDiff == 0 {
			return windowError(block, payout.ErrNoNetworkDiff)
		}
		netDiff = found.NetworkDiff
	}
	exactN, err := size.N(found.NetworkDiff)
	if err != nil {
		return fmt.Errorf("shares window: %s x network difficulty %s: %w", *nFlag, formatDiff(found.NetworkDiff), err)
	}
	win, err := payout.NewWindow(exactN)
	if err != nil {
		return fmt.Errorf("shares window: %w", err)
	}
	w := bufio.NewWriter(stdout)
	out := newWindowWriter(w, *format, block, exactN, netDiff, *withShares)
	if err := out.begin(); err != nil {
		return fmt.Errorf("shares window: write output: %w", err)
	}
	err = reader.Source(ctx).Walk(found.FoundAt, time.Time{}, func(s payout.Share) (bool, error) {
		part, err := win.Add(s)
		if err != nil {
			return false, err
		}
		if *withShares {
			if err := out.share(s, part); err != nil {
				return false, err
			}
		}
		return !win.Complete(), nil
	})
	if err != nil {
		// Buffered output is dropped; a failure after 4 KiB leaves a
		// truncated document behind this error and exit status 1.
		return windowError(block, err)
	}
	res := win.Result()
	if err := out.end(found.FoundAt, res); err != nil {
		return fmt.Errorf("shares window: write output: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("shares window: write output: %w", err)
	}
	verdict := "complete"
	if !res.Complete {
		verdict = "INCOMPLETE: the ledger ran out of shares before the window's difficulty"
	}
	fmt.Fprintf(stderr, "window for block %s ending %s: %d shares, %d accounts, credited %s of %s (%s)\n",
		block, found.FoundAt.UTC().Format(time.RFC3339Nano), res.Shares, len(res.ByAccount), payout.Decimal(res.Difficulty), payout.Decimal(exactN), verdict)
	return nil
}

// windowError explains a failed window read, naming an unknown block
// plainly rather than as a database error.
func windowError(block chainhash.Hash, err error) error {
	switch {
	case errors.Is(err, payout.ErrUnknownBlock):
		return fmt.Errorf("shares window: block %s is not in the ledger (only blocks this pool found are; check the hash is in display byte order)", block)
	case errors.Is(err, payout.ErrNoNetworkDiff):
		return fmt.Errorf("shares window: -n as a multiple needs the network difficulty of block %s, but its job is not in the ledger; give -n as a number", block)
	default:
		return fmt.Errorf("shares window: %w", err)
	}
}

// parseBlockHash parses a block hash in display (byte-reversed) order.
func parseBlockHash(s string) (chainhash.Hash, error) {
	if s == "" {
		return chainhash.Hash{}, errors.New("-block is required (the found block's hash, 64 hex digits)")
	}
	if len(s) != 2*chainhash.HashSize {
		return chainhash.Hash{}, fmt.Errorf("-block %q is %d characters long, want 64 hex digits", s, len(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return chainhash.Hash{}, fmt.Errorf("-block %q is not 64 hex digits: %v", s, err)
	}
	h, err := chainhash.NewHashFromStr(s)
	if err != nil {
		return chainhash.Hash{}, fmt.Errorf("-block %q: %w", s, err)
	}
	return *h, nil
}

// parseWindowN parses -n: a positive finite difficulty, or a positive
// finite multiple of the block's network difficulty written "2x" (times
// is then true and n the multiplier).
func parseWindowN(s string) (n float64, times bool, err error) {
	if s == "" {
		return 0, false, errors.New("-n is required (the window's difficulty, e.g. 5e12, or 2x the block's network difficulty)")
	}
	num := s
	if rest, ok := strings.CutSuffix(s, "x"); ok {
		num, times = rest, true
	}
	n, err = strconv.ParseFloat(num, 64)
	if err != nil || math.IsInf(n, 0) || math.IsNaN(n) || strings.ContainsAny(num, "xXpP_") {
		return 0, false, fmt.Errorf("-n %q is not a finite decimal number (or a multiple such as 2x)", s)
	}
	if n <= 0 {
		return 0, false, fmt.Errorf("-n %q must be positive", s)
	}
	return n, times, nil
}

// windowWriter prints a window as it is walked: shares stream out, the
// per-account sums follow, so memory does not grow with the window.
// Credited difficulties are exact (payout.Decimal): the oldest share's part
// and the per-account sums are printed digit for digit, as a payout
// computes them.
type windowWriter struct {
	w          io.Writer
	csv        *csv.Writer // nil for JSON
	block      chainhash.Hash
	n          *big.Rat
	netDiff    float64
	withShares bool
	count      int64
}

func newWindowWriter(w io.Writer, format string, block chainhash.Hash, n *big.Rat, netDiff float64, withShares bool) *windowWriter {
	ww := &windowWriter{w: w, block: block, n: n, netDiff: netDiff, withShares: withShares}
	if format == "csv" {
		ww.csv = csv.NewWriter(w)
	}
	return ww
}

// windowCSVHeader is the one schema of `shares window` CSV: kind "share"
// rows (with -shares, newest first) then kind "account" rows (by account
// name), whose worker, time and share_diff are empty.
var windowCSVHeader = []string{"kind", "account", "worker", "time", "share_diff", "credited_diff"}

type windowShareJSON struct {
	Time         string      `json:"time"`
	Account      string      `json:"account"`
	Worker       string      `json:"worker"`
	ShareDiff    float64     `json:"share_diff"`
	CreditedDiff json.Number `json:"credited_diff"`
}

type windowAccountJSON struct {
	Account      string      `json:"account"`
	CreditedDiff json.Number `json:"credited_diff"`
}

func (ww *windowWriter) begin() error {
	if ww.csv != nil {
		return ww.csv.Write(windowCSVHeader)
	}
	head := fmt.Sprintf("{\n  \"block\": %q,\n  \"n\": %s,\n", ww.block.String(), payout.Decimal(ww.n))
	if ww.netDiff != 0 {
		head += fmt.Sprintf("  \"network_diff\": %s,\n", jsonNumber(ww.netDiff))
	}
	if ww.withShares {
		head += "  \"share_list\": ["
	}
	_, err := io.WriteString(ww.w, head)
	return err
}

// share prints one share; part is its credited part when only a part of
// it counts (nil: all of it).
func (ww *windowWriter) share(s payout.Share, part *big.Rat) error {
	ts := s.Time.UTC().Format(time.RFC3339Nano)
	credited := formatDiff(s.Diff)
	if part != nil {
		credited = payout.Decimal(part)
	}
	if ww.csv != nil {
		return ww.csv.Write([]string{"share", s.Account, s.Worker, ts, formatDiff(s.Diff), credited})
	}
	b, err := json.Marshal(windowShareJSON{Time: ts, Account: s.Account, Worker: s.Worker, ShareDiff: s.Diff, CreditedDiff: json.Number(credited)})
	if err != nil {
		return err
	}
	sep := ",\n    "
	if ww.count == 0 {
		sep = "\n    "
	}
	ww.count++
	_, err = io.WriteString(ww.w, sep+string(b))
	return err
}

func (ww *windowWriter) end(endTime time.Time, win payout.WindowResult) error {
	accounts := make([]string, 0, len(win.ByAccount))
	for a := range win.ByAccount {
		accounts = append(accounts, a)
	}
	slices.Sort(accounts)
	if ww.csv != nil {
		for _, a := range accounts {
			ww.csv.Write([]string{"account", a, "", "", "", payout.Decimal(win.ByAccount[a])})
		}
		ww.csv.Flush()
		return ww.csv.Error()
	}
	var tail strings.Builder
	if ww.withShares {
		if ww.count > 0 {
			tail.WriteString("\n  ")
		}
		tail.WriteString("],\n")
	}
	diffSum := "0"
	if win.Difficulty != nil {
		diffSum = payout.Decimal(win.Difficulty)
	}
	fmt.Fprintf(&tail, "  \"end\": %q,\n  \"shares\": %d,\n  \"diff_sum\": %s,\n  \"complete\": %t,\n  \"accounts\": [",
		endTime.UTC().Format(time.RFC3339Nano), win.Shares, diffSum, win.Complete)
	for i, a := range accounts {
		b, err := json.Marshal(windowAccountJSON{Account: a, CreditedDiff: json.Number(payout.Decimal(win.ByAccount[a]))})
		if err != nil {
			return err
		}
		if i > 0 {
			tail.WriteByte(',')
		}
		tail.WriteString("\n    ")
		tail.Write(b)
	}
	if len(accounts) > 0 {
		tail.WriteString("\n  ")
	}
	tail.WriteString("]\n}\n")
	_, err := io.WriteString(ww.w, tail.String())
	return err
}
