package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/shares/payout"
)

// openPayoutLedger loads [payouts] and bitcoin.network and connects to the
// configured database.
func openPayoutLedger(ctx context.Context, cmd, path string, lookup env) (*payout.Ledger, *config.PayoutsConfig, *pgx.Conn, error) {
	params, err := config.LoadPayouts(path, lookup)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: configuration %s is not valid:\n%w", cmd, describePath(path), err)
	}
	conn, err := connectConfigured(ctx, path, lookup)
	if err != nil {
		return nil, nil, nil, err
	}
	return payout.NewLedger(conn, "cli", params.Network), params, conn, nil
}

// cmdPayoutsRun credits what is due (mature blocks, reversals of orphaned
// credited blocks, ended pps hours), as serve does, once: idempotent.
func cmdPayoutsRun(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("payouts run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	l, params, conn, err := openPayoutLedger(ctx, "payouts run", path(), lookup)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if rec, err := l.RecordParams(ctx, params.Params, params.EffectiveFrom); err != nil {
		return fmt.Errorf("payouts run: %w", err)
	} else if rec != nil {
		fmt.Fprintf(stdout, "recorded [payouts] %s, in force from %s\n", rec.Params, rec.From.Format(time.RFC3339))
	}
	rep, err := l.Run(ctx)
	for _, h := range rep.Credited {
		fmt.Fprintf(stdout, "credited block %s\n", h)
	}
	for _, h := range rep.Reversed {
		fmt.Fprintf(stdout, "reversed block %s (orphaned)\n", h)
	}
	for _, h := range rep.Hours {
		fmt.Fprintf(stdout, "credited pps hour %s\n", h.Format(time.RFC3339))
	}
	fmt.Fprintf(stdout, "%d blocks credited, %d reversed, %d pps hours\n", len(rep.Credited), len(rep.Reversed), len(rep.Hours))
	if err != nil {
		return fmt.Errorf("payouts run: %w", err)
	}
	if len(rep.Skipped) > 0 {
		for _, s := range rep.Skipped {
			fmt.Fprintf(stderr, "not credited: %s\n", s)
		}
		return silentError{1}
	}
	return nil
}

// cmdPayoutsAddress maps an account to the address it is paid to.
func cmdPayoutsAddress(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("payouts address", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	account := fs.String("account", "", "the `account` (the user name's part before the dot)")
	addr := fs.String("address", "", "the `address` of the pool's network it is paid to")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *account == "" || *addr == "" {
		return usageError{"payouts address: --account and --address are required"}
	}
	l, params, conn, err := openPayoutLedger(ctx, "payouts address", path(), lookup)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := l.SetAddress(ctx, *account, *addr); err != nil {
		return fmt.Errorf("payouts address: %w", err)
	}
	fmt.Fprintf(stdout, "account %s is paid to %s (%s)\n", *account, *addr, params.Network.Name)
	return nil
}

// cmdPayoutsPay builds a payment batch from the operator's UTXOs: the
// balances are debited and the batch recorded (pending); the unsigned PSBT
// goes to --out and the payments as CSV to stdout.
func cmdPayoutsPay(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("payouts pay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	utxoFile := fs.String("utxos", "", "`file` of spendable outputs, one per line: txid:vout value_sats scriptPubKey_hex")
	feeRate := fs.Int64("fee-rate", 0, "network fee rate in `sat/vB`")
	change := fs.String("change", "", "change `address` of the pool's wallet")
	out := fs.String("out", "", "write the unsigned PSBT to this `file` (default batch-<id>.psbt)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *utxoFile == "" || *feeRate == 0 || *change == "" {
		return usageError{"payouts pay: --utxos, --fee-rate and --change are required"}
	}
	f, err := os.Open(*utxoFile)
	if err != nil {
		return fmt.Errorf("payouts pay: %w", err)
	}
	utxos, err := payout.ParseUTXOs(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("payouts pay: %s: %w", *utxoFile, err)
	}
	l, params, conn, err := openPayoutLedger(ctx, "payouts pay", path(), lookup)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	b, err := l.Pay(ctx, payout.PayRequest{UTXOs: utxos, FeeRateSatVB: *feeRate, ChangeAddress: *change, ThresholdSats: params.ThresholdSats})
	for _, s := range b.Skipped {
		fmt.Fprintf(stderr, "not paid: %s\n", s)
	}
	if err != nil {
		if errors.Is(err, payout.ErrNothingToPay) {
			return fmt.Errorf("payouts pay: %w; nothing recorded", err)
		}
		return fmt.Errorf("payouts pay: %w; nothing debited", err)
	}
	name := *out
	if name == "" {
		name = fmt.Sprintf("batch-%d.psbt", b.ID)
	}
	if err := os.WriteFile(name, b.PSBT, 0o644); err != nil {
		return fmt.Errorf("payouts pay: batch %d is recorded, but its PSBT could not be written (re-export it from payout_batches.psbt): %w", b.ID, err)
	}
	w := csv.NewWriter(stdout)
	_ = w.Write([]string{"batch", "account", "address", "amount_sats"})
	for _, p := range b.Payees {
		_ = w.Write([]string{strconv.FormatInt(b.ID, 10), p.Account, p.Address, strconv.FormatInt(p.AmountSat, 10)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("payouts pay: write output: %w", err)
	}
	abs, _ := filepath.Abs(name)
	fmt.Fprintf(stderr, "batch %d pending: %d payments, inputs %d sats, network fee %d sats (%d vB at %d sat/vB), change %d sats to %s; unsigned PSBT in %s\n",
		b.ID, len(b.Payees), b.InputsSats, b.NetworkFeeSats, b.VSize, b.FeeRateSatVB, b.ChangeSats, b.ChangeAddress, abs)
	fmt.Fprintf(stderr, "sign and broadcast it with the pool's wallet, then: wattpool payouts paid --batch %d --txid TXID\n", b.ID)
	return nil
}

// cmdPayoutsPaid records the txid a batch was broadcast as.
func cmdPayoutsPaid(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("payouts paid", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	batch := fs.Int64("batch", 0, "the batch `id` payouts pay printed")
	txid := fs.String("txid", "", "the broadcast transaction's `txid`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *batch <= 0 || *txid == "" {
		return usageError{"payouts paid: --batch and --txid are required"}
	}
	l, _, conn, err := openPayoutLedger(ctx, "payouts paid", path(), lookup)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := l.Paid(ctx, *batch, *txid); err != nil {
		return fmt.Errorf("payouts paid: %w", err)
	}
	fmt.Fprintf(stdout, "batch %d paid by %s\n", *batch, strings.ToLower(*txid))
	return nil
}

// parsePeriod reads --from and --to (RFC 3339, or a date: midnight UTC).
func parsePeriod(cmd, from, to string) (time.Time, time.Time, error) {
	parse := func(name, s string) (time.Time, error) {
		if s == "" {
			return time.Time{}, usageError{fmt.Sprintf("%s: --%s is required (RFC 3339 or a date such as 2031-04-01)", cmd, name)}
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t.UTC(), nil
		}
		if t, err := time.Parse(time.DateOnly, s); err == nil {
			return t, nil
		}
		return time.Time{}, usageError{fmt.Sprintf("%s: --%s %q is not RFC 3339 or a date such as 2031-04-01", cmd, name, s)}
	}
	f, err := parse("from", from)
	if err != nil {
		return f, f, err
	}
	t, err := parse("to", to)
	if err != nil {
		return f, t, err
	}
	if !f.Before(t) {
		return f, t, usageError{fmt.Sprintf("%s: --from %s is not before --to %s", cmd, f.Format(time.RFC3339), t.Format(time.RFC3339))}
	}
	return f, t, nil
}

// statementJSON is the pinned JSON of `payouts statement`.
type statementJSON struct {
	Account            string          `json:"account"`
	From               string          `json:"from"`
	To                 string          `json:"to"`
	Shares             int64           `json:"shares"`
	AcceptedDifficulty json.Number     `json:"accepted_difficulty"`
	OpeningSats        int64           `json:"opening_sats"`
	CreditsSats        int64           `json:"credits_sats"`
	ReversalsSats      int64           `json:"reversals_sats"`
	FeesSats           int64           `json:"fees_sats"`
	PaymentsSats       int64           `json:"payments_sats"`
	ClosingSats        int64           `json:"closing_sats"`
	Lines              []statementLine `json:"lines"`
}

type statementLine struct {
	BookedAt   string  `json:"booked_at"`
	Kind       string  `json:"kind"`
	Block      *string `json:"block,omitempty"`
	Height     *int64  `json:"height,omitempty"`
	Period     *string `json:"period,omitempty"`
	Batch      *int64  `json:"batch,omitempty"`
	TxID       string  `json:"txid,omitempty"`
	Difficulty string  `json:"difficulty,omitempty"`
	Sats       int64   `json:"sats"`
	FeeSats    int64   `json:"fee_sats"`
}

func newStatementJSON(st payout.Statement) statementJSON {
	doc := statementJSON{Account: st.Account, From: st.From.Format(time.RFC3339Nano), To: st.To.Format(time.RFC3339Nano), Shares: st.Shares,
		AcceptedDifficulty: json.Number(payout.Decimal(st.AcceptedDifficulty)), OpeningSats: st.OpeningSats, CreditsSats: st.CreditsSats,
		ReversalsSats: st.ReversalsSats, FeesSats: st.FeesSats, PaymentsSats: st.PaymentsSats, ClosingSats: st.ClosingSats,
		Lines: make([]statementLine, 0, len(st.Lines))}
	for _, l := range st.Lines {
		sl := statementLine{BookedAt: l.BookedAt.Format(time.RFC3339Nano), Kind: l.Kind, Batch: l.Batch, TxID: l.TxID,
			Difficulty: l.Difficulty, Sats: l.Sats, FeeSats: l.FeeSats}
		if l.Block != nil {
			h, height := l.Block.String(), l.Height
			sl.Block, sl.Height = &h, &height
		}
		if l.Period != nil {
			p := l.Period.Format(time.RFC3339)
			sl.Period = &p
		}
		doc.Lines = append(doc.Lines, sl)
	}
	return doc
}

// writeCSV prints the statement's lines and, last, its summary rows, so a
// spreadsheet sums the lines and checks them against the summary.
func (d statementJSON) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"booked_at", "kind", "reference", "difficulty", "sats", "fee_sats"})
	for _, l := range d.Lines {
		ref := ""
		switch {
		case l.Block != nil:
			ref = fmt.Sprintf("block %s height %d", *l.Block, *l.Height)
		case l.Period != nil:
			ref = "hour " + *l.Period
		case l.Batch != nil:
			ref = fmt.Sprintf("batch %d", *l.Batch)
			if l.TxID != "" {
				ref += " txid " + l.TxID
			}
		}
		_ = cw.Write([]string{l.BookedAt, l.Kind, ref, l.Difficulty, strconv.FormatInt(l.Sats, 10), strconv.FormatInt(l.FeeSats, 10)})
	}
	for _, r := range [][2]string{{"account", d.Account}, {"from", d.From}, {"to", d.To}, {"shares", strconv.FormatInt(d.Shares, 10)},
		{"accepted_difficulty", string(d.AcceptedDifficulty)}, {"opening_sats", strconv.FormatInt(d.OpeningSats, 10)},
		{"credits_sats", strconv.FormatInt(d.CreditsSats, 10)}, {"reversals_sats", strconv.FormatInt(d.ReversalsSats, 10)},
		{"fees_sats", strconv.FormatInt(d.FeesSats, 10)}, {"payments_sats", strconv.FormatInt(d.PaymentsSats, 10)},
		{"closing_sats", strconv.FormatInt(d.ClosingSats, 10)}} {
		_ = cw.Write([]string{"", "summary", r[0], "", r[1], ""})
	}
	cw.Flush()
	return cw.Error()
}

// cmdPayoutsStatement prints one account's statement over a UTC period.
func cmdPayoutsStatement(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("payouts statement", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	account := fs.String("account", "", "the `account`")
	fromS := fs.String("from", "", "start of the period (RFC 3339 or a UTC date), inclusive")
	toS := fs.String("to", "", "end of the period (RFC 3339 or a UTC date), exclusive")
	format := fs.String("format", "csv", "output `format`: csv or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *account == "" {
		return usageError{"payouts statement: --account is required"}
	}
	if err := checkFormat("payouts statement", *format, "csv", "json"); err != nil {
		return err
	}
	from, to, err := parsePeriod("payouts statement", *fromS, *toS)
	if err != nil {
		return err
	}
	l, _, conn, err := openPayoutLedger(ctx, "payouts statement", path(), lookup)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	st, err := l.Statement(ctx, *account, from, to)
	if err != nil {
		return fmt.Errorf("payouts statement: %w", err)
	}
	doc := newStatementJSON(st)
	w := bufio.NewWriter(stdout)
	if *format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(doc)
	} else {
		err = doc.writeCSV(w)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return fmt.Errorf("payouts statement: write output: %w", err)
	}
	return nil
}

// reconcileJSON is the pinned JSON of `payouts reconcile`.
type reconcileJSON struct {
	From       string            `json:"from"`
	To         string            `json:"to"`
	OK         bool              `json:"ok"`
	Mismatches int               `json:"mismatches"`
	Blocks     []reconcileBlock  `json:"blocks"`
	Periods    []reconcilePeriod `json:"periods"`
	Unbalanced []string          `json:"unbalanced_journals"`
}

type reconcileBlock struct {
	Block         string `json:"block"`
	Height        int64  `json:"height"`
	Kind          string `json:"kind"`
	BookedAt      string `json:"booked_at"`
	CoinbaseSats  int64  `json:"coinbase_sats"`
	CreditsSats   int64  `json:"credits_sats"`
	FeeSats       int64  `json:"fee_sats"`
	RemainderSats int64  `json:"remainder_sats"`
	OK            bool   `json:"ok"`
	Problem       string `json:"problem,omitempty"`
}

type reconcilePeriod struct {
	Day    string           `json:"day"`
	ByKind map[string]int64 `json:"by_kind"`
	Total  int64            `json:"total_sats"`
	OK     bool             `json:"ok"`
}

// cmdPayoutsReconcile checks the ledger over a period and exits 1 on any
// mismatch.
func cmdPayoutsReconcile(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("payouts reconcile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	fromS := fs.String("from", "", "start of the period (RFC 3339 or a UTC date), inclusive")
	toS := fs.String("to", "", "end of the period (RFC 3339 or a UTC date), exclusive")
	format := fs.String("format", "table", "output `format`: table, csv or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkFormat("payouts reconcile", *format, "table", "csv", "json"); err != nil {
		return err
	}
	from, to, err := parsePeriod("payouts reconcile", *fromS, *toS)
	if err != nil {
		return err
	}
	l, _, conn, err := openPayoutLedger(ctx, "payouts reconcile", path(), lookup)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rec, err := l.Reconcile(ctx, from, to)
	if err != nil {
		return fmt.Errorf("payouts reconcile: %w", err)
	}
	doc := reconcileJSON{From: rec.From.Format(time.RFC3339Nano), To: rec.To.Format(time.RFC3339Nano), OK: rec.Mismatches == 0,
		Mismatches: rec.Mismatches, Blocks: []reconcileBlock{}, Periods: []reconcilePeriod{}, Unbalanced: rec.Unbalanced}
	if doc.Unbalanced == nil {
		doc.Unbalanced = []string{}
	}
	for _, b := range rec.Blocks {
		doc.Blocks = append(doc.Blocks, reconcileBlock{Block: b.Hash.String(), Height: b.Height, Kind: b.Kind, BookedAt: b.BookedAt.Format(time.RFC3339Nano),
			CoinbaseSats: b.CoinbaseSats, CreditsSats: b.CreditsSats, FeeSats: b.FeeSats, RemainderSats: b.RemainderSats, OK: b.OK, Problem: b.Problem})
	}
	for _, p := range rec.Periods {
		doc.Periods = append(doc.Periods, reconcilePeriod{Day: p.Day.Format(time.DateOnly), ByKind: p.ByKind, Total: p.Total, OK: p.OK})
	}
	w := bufio.NewWriter(stdout)
	switch *format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(doc)
	case "csv":
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"block", "height", "kind", "booked_at", "coinbase_sats", "credits_sats", "fee_sats", "remainder_sats", "ok", "problem"})
		for _, b := range doc.Blocks {
			_ = cw.Write([]string{b.Block, strconv.FormatInt(b.Height, 10), b.Kind, b.BookedAt, strconv.FormatInt(b.CoinbaseSats, 10),
				strconv.FormatInt(b.CreditsSats, 10), strconv.FormatInt(b.FeeSats, 10), strconv.FormatInt(b.RemainderSats, 10), strconv.FormatBool(b.OK), b.Problem})
		}
		cw.Flush()
		err = cw.Error()
	default:
		rows := [][]string{{"BLOCK", "HEIGHT", "KIND", "COINBASE", "CREDITS", "FEE", "REMAINDER", "OK"}}
		for _, b := range doc.Blocks {
			rows = append(rows, []string{b.Block, strconv.FormatInt(b.Height, 10), b.Kind, strconv.FormatInt(b.CoinbaseSats, 10),
				strconv.FormatInt(b.CreditsSats, 10), strconv.FormatInt(b.FeeSats, 10), strconv.FormatInt(b.RemainderSats, 10), okWord(b.OK, b.Problem)})
		}
		writeAligned(w, rows)
		for _, p := range doc.Periods {
			kinds := make([]string, 0, len(p.ByKind))
			for k := range p.ByKind {
				kinds = append(kinds, k)
			}
			sort.Strings(kinds)
			parts := make([]string, 0, len(kinds))
			for _, k := range kinds {
				parts = append(parts, fmt.Sprintf("%s %d", k, p.ByKind[k]))
			}
			fmt.Fprintf(w, "day %s: %s; total %d (%s)\n", p.Day, strings.Join(parts, ", "), p.Total, okWord(p.OK, "does not balance"))
		}
		for _, u := range doc.Unbalanced {
			fmt.Fprintf(w, "UNBALANCED: %s\n", u)
		}
		fmt.Fprintf(w, "%d blocks, %d mismatches\n", len(doc.Blocks), doc.Mismatches)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return fmt.Errorf("payouts reconcile: write output: %w", err)
	}
	if doc.Mismatches > 0 {
		fmt.Fprintf(stderr, "payouts reconcile: %d mismatches\n", doc.Mismatches)
		return silentError{1}
	}
	return nil
}

func okWord(ok bool, problem string) string {
	if ok {
		return "ok"
	}
	return "MISMATCH: " + problem
}
