package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/jackc/pgx/v5"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/shares/audit"
	"github.com/wattpool/wattpool/shares/payout"
)

// payoutsCommands are the `wattpool payouts` subcommands.
var payoutsCommands = []subcommand{
	{"explain", "one found block's split recomputed from the share log", cmdPayoutsExplain},
	{"run", "credit matured blocks and closed pps/fpps hours (idempotent)", cmdPayoutsRun},
	{"address", "map an account to its payout address", cmdPayoutsAddress},
	{"pay", "a payment batch as CSV and an unsigned PSBT", cmdPayoutsPay},
	{"paid", "record the txid of a paid batch", cmdPayoutsPaid},
	{"statement", "an account's statement for a period", cmdPayoutsStatement},
	{"reconcile", "per block and period: coinbase = credits + fee + remainder", cmdPayoutsReconcile},
	{"backfill-sums", "sum the hours stored before the writer kept hourly sums", cmdPayoutsBackfillSums},
}

// cmdPayouts dispatches the payouts subcommands.
func cmdPayouts(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	return dispatch(ctx, "payouts", payoutsCommands, args, stdout, stderr, lookup)
}

// cmdPayoutsExplain recomputes one found block's split from the raw share
// log for the configured [payouts] scheme: the fee, each account's
// difficulty and satoshis, the remainder, and the window they came from.
func cmdPayoutsExplain(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("payouts explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	blockHex := fs.String("block", "", "the found block's `hash` (64 hex digits, display order, as block explorers and shares window show it)")
	format := fs.String("format", "table", "output `format`: table or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	block, err := parseBlockHash(*blockHex)
	if err != nil {
		return usageError{"payouts explain: " + err.Error()}
	}
	if err := checkFormat("payouts explain", *format, "table", "json"); err != nil {
		return err
	}
	params, err := config.LoadPayouts(path(), lookup)
	if err != nil {
		return fmt.Errorf("payouts explain: configuration %s is not valid:\n%w", describePath(path()), err)
	}
	conn, err := connectConfigured(ctx, path(), lookup)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// One read-only repeatable-read snapshot for the whole explanation:
	// the window's hourly sums and its end hours' rows must agree (the
	// reader walks rows alone under read committed), and both computes
	// below see the same shares.
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("payouts explain: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// Retention archives answer for the days whose partitions were dropped.
	r, ledger := payout.NewReader(tx).WithArchive(audit.NewArchiveReader(conn)), payout.NewLedger(conn, "cli", params.Network)
	found, res, err := r.Explain(ctx, params.Params, block, nil)
	if err != nil {
		return explainError(block, params.Params, err)
	}
	history, err := ledger.History(ctx)
	if err != nil {
		return fmt.Errorf("payouts explain: %w", err)
	}
	if p, ok := history.At(found.FoundAt); ok && p.Params.Equal(params.Params) && !p.From.Equal(payout.Epoch) {
		// As the ledger computes it: the window starts no earlier than
		// these parameters did.
		found.NotBefore = p.From
		if res, err = payout.Compute(params.Params, found.Block, r.Source(ctx), nil); err != nil {
			return explainError(block, params.Params, fmt.Errorf("block %s: %w", block, err))
		}
	}
	doc := newExplainJSON(found, res)
	entries, credited, err := ledger.BlockEntries(ctx, block)
	if err != nil {
		return fmt.Errorf("payouts explain: %w", err)
	}
	doc.compareLedger(entries, credited, res.Split)
	w := bufio.NewWriter(stdout)
	if *format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(doc)
	} else {
		doc.writeTable(w)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return fmt.Errorf("payouts explain: write output: %w", err)
	}
	return nil
}

// explainError names the usual failures plainly.
func explainError(block chainhash.Hash, p payout.Params, err error) error {
	switch {
	case errors.Is(err, payout.ErrUnknownBlock):
		return fmt.Errorf("payouts explain: block %s is not in the ledger (only blocks this pool found are; check the hash is in display byte order)", block)
	case errors.Is(err, payout.ErrNoNetworkDiff):
		size, _ := p.WindowFor()
		return fmt.Errorf("payouts explain: the %s window %s needs the network difficulty of block %s, but its job is not in the ledger; set payouts.pplns_window to a difficulty", p.Scheme, size, block)
	case errors.Is(err, payout.ErrEmptyWindow):
		return fmt.Errorf("payouts explain: block %s: the %s window holds no shares to split the reward by: %w", block, p.Scheme, err)
	default:
		return fmt.Errorf("payouts explain: %w", err)
	}
}

// explainJSON is the pinned JSON of `payouts explain`.
type explainJSON struct {
	Block       string       `json:"block"`
	Height      int64        `json:"height"`
	Status      string       `json:"status"`
	FoundAt     string       `json:"found_at"`
	Scheme      string       `json:"scheme"`
	FeeBps      int64        `json:"fee_bps"`
	NetworkDiff *float64     `json:"network_diff"`
	Coinbase    int64        `json:"coinbase_sats"`
	Fee         int64        `json:"fee_sats"`
	Remainder   int64        `json:"remainder_sats"`
	Credits     []creditJSON `json:"credits"`
	Window      windowJSON   `json:"window"`
	// MatchesLedger compares the recomputed split with what the ledger
	// credited for the block, satoshi for satoshi; null while the block
	// is not credited (LedgerNote says why).
	MatchesLedger *bool  `json:"matches_ledger"`
	LedgerNote    string `json:"ledger_note"`
}

// compareLedger fills matches_ledger and its note.
func (d *explainJSON) compareLedger(e payout.Entries, credited bool, s payout.Split) {
	if !credited {
		d.LedgerNote = fmt.Sprintf("not credited yet (the block is %s; blocks are credited when mature)", d.Status)
		return
	}
	m := e.Matches(s)
	d.MatchesLedger = &m
	switch {
	case m:
		d.LedgerNote = "the ledger credited exactly this split"
	case string(e.Params.Scheme) != d.Scheme || e.Params.FeeBps != d.FeeBps ||
		(e.Params.Scheme == payout.PPLNS && d.Window.Size != nil && e.Params.Window.String() != *d.Window.Size):
		d.LedgerNote = fmt.Sprintf("the ledger credited it under scheme %s, fee_bps %d, pplns_window %s (in force from %s), not the configured parameters",
			e.Params.Scheme, e.Params.FeeBps, e.Params.Window, e.Params.From.UTC().Format(time.RFC3339))
	default:
		d.LedgerNote = "the ledger's entries differ from this split: run wattpool payouts reconcile"
	}
	if e.Reversed {
		d.LedgerNote += "; its credits were reversed (orphaned after maturity)"
	}
}

type creditJSON struct {
	Account    string      `json:"account"`
	Difficulty json.Number `json:"difficulty"`
	Sats       int64       `json:"sats"`
}

type windowJSON struct {
	// Size is pplns_window as configured ("2x"), or null for prop.
	Size *string `json:"size"`
	// N is the window's difficulty, exactly (null for prop).
	N *json.Number `json:"n"`
	// Since is where a prop round starts (the previous block's found
	// time; null for the pool's first block and for pplns and tides).
	Since      *string     `json:"since"`
	Shares     int64       `json:"shares"`
	Complete   bool        `json:"complete"`
	Difficulty json.Number `json:"difficulty"`
}

func newExplainJSON(b payout.StoredBlock, res payout.Result) explainJSON {
	doc := explainJSON{Block: b.Hash.String(), Height: b.Height, Status: b.Status, FoundAt: b.FoundAt.UTC().Format(time.RFC3339Nano),
		Scheme: string(res.Params.Scheme), FeeBps: res.Split.FeeBps, Coinbase: res.Split.CoinbaseSats, Fee: res.Split.FeeSats,
		Remainder: res.Split.RemainderSats, Credits: make([]creditJSON, 0, len(res.Split.Credits))}
	if b.NetworkDiff != 0 {
		d := b.NetworkDiff
		doc.NetworkDiff = &d
	}
	for _, c := range res.Split.Credits {
		doc.Credits = append(doc.Credits, creditJSON{Account: c.Account, Difficulty: json.Number(payout.Decimal(c.Difficulty)), Sats: c.Sats})
	}
	w := res.Window
	doc.Window = windowJSON{Shares: w.Shares, Complete: w.Complete, Difficulty: json.Number(payout.Decimal(w.Difficulty))}
	if w.N != nil {
		size, n := res.WindowSize.String(), json.Number(payout.Decimal(w.N))
		doc.Window.Size, doc.Window.N = &size, &n
	}
	if res.Params.Scheme == payout.PROP && !b.PrevFoundAt.IsZero() {
		since := b.PrevFoundAt.UTC().Format(time.RFC3339Nano)
		doc.Window.Since = &since
	}
	return doc
}

func (d explainJSON) writeTable(w io.Writer) {
	fmt.Fprintf(w, "block %s at height %d (%s), found %s\n", d.Block, d.Height, d.Status, d.FoundAt)
	win := d.Window
	switch {
	case win.N != nil:
		nd := ""
		if d.NetworkDiff != nil {
			nd = fmt.Sprintf(", network difficulty %s", formatDiff(*d.NetworkDiff))
		}
		verdict := "complete"
		if !win.Complete {
			verdict = "INCOMPLETE: fewer shares than N, all of them count"
		}
		fmt.Fprintf(w, "scheme %s, fee %d bps; window %s = N %s%s: %d shares, difficulty %s (%s)\n",
			d.Scheme, d.FeeBps, *win.Size, *win.N, nd, win.Shares, win.Difficulty, verdict)
	case win.Since != nil:
		fmt.Fprintf(w, "scheme %s, fee %d bps; round since the previous block at %s: %d shares, difficulty %s\n",
			d.Scheme, d.FeeBps, *win.Since, win.Shares, win.Difficulty)
	default:
		fmt.Fprintf(w, "scheme %s, fee %d bps; round since the pool's first share: %d shares, difficulty %s\n",
			d.Scheme, d.FeeBps, win.Shares, win.Difficulty)
	}
	rows := [][]string{{"ACCOUNT", "DIFFICULTY", "SATS"}}
	for _, c := range d.Credits {
		rows = append(rows, []string{c.Account, string(c.Difficulty), strconv.FormatInt(c.Sats, 10)})
	}
	rows = append(rows,
		[]string{"(pool fee)", "", strconv.FormatInt(d.Fee, 10)},
		[]string{"(remainder to the pool)", "", strconv.FormatInt(d.Remainder, 10)},
		[]string{"(coinbase)", "", strconv.FormatInt(d.Coinbase, 10)})
	writeAligned(w, rows)
	verdict := "unknown"
	if d.MatchesLedger != nil {
		verdict = strconv.FormatBool(*d.MatchesLedger)
	}
	fmt.Fprintf(w, "matches ledger: %s (%s)\n", verdict, d.LedgerNote)
}
