package payout

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/txscript/v2"
	"github.com/btcsuite/btcd/wire/v2"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/wattpool/wattpool/stratum/work"
)

// UTXO is an output the operator's wallet can spend, offered to pay a
// batch.
type UTXO struct {
	OutPoint  wire.OutPoint
	ValueSats int64
	PkScript  []byte
}

// ParseUTXOs reads the operator's UTXO file: one output per line as
// "txid:vout value_sats scriptPubKey_hex" (spaces, tabs or commas between
// the fields); blank lines and lines starting with # are skipped. Errors
// name the line and field.
func ParseUTXOs(r io.Reader) ([]UTXO, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	var out []UTXO
	seen := map[wire.OutPoint]int{}
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.FieldsFunc(text, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' })
		if len(fields) != 3 {
			return nil, fmt.Errorf("utxo line %d: want 3 fields (txid:vout value_sats scriptPubKey_hex), got %d", line, len(fields))
		}
		txid, vout, ok := strings.Cut(fields[0], ":")
		if !ok {
			return nil, fmt.Errorf("utxo line %d field 1: %q is not txid:vout", line, fields[0])
		}
		h, err := chainhash.NewHashFromStr(txid)
		if err != nil || len(txid) != 64 {
			return nil, fmt.Errorf("utxo line %d field 1: txid %q is not 64 hex digits", line, txid)
		}
		n, err := strconv.ParseUint(vout, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("utxo line %d field 1: vout %q is not a number 0..4294967295", line, vout)
		}
		v, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil || v <= 0 || v > 21_000_000*100_000_000 {
			return nil, fmt.Errorf("utxo line %d field 2: value %q is not a whole number of satoshis 1..2.1e15", line, fields[1])
		}
		script, err := hex.DecodeString(fields[2])
		if err != nil || len(script) == 0 {
			return nil, fmt.Errorf("utxo line %d field 3: scriptPubKey %q is not hex", line, fields[2])
		}
		if _, err := inputVBytes(script); err != nil {
			return nil, fmt.Errorf("utxo line %d field 3: %w", line, err)
		}
		op := wire.OutPoint{Hash: *h, Index: uint32(n)}
		if prev, dup := seen[op]; dup {
			return nil, fmt.Errorf("utxo line %d: %s is listed already on line %d", line, op, prev)
		}
		seen[op] = line
		out = append(out, UTXO{OutPoint: op, ValueSats: v, PkScript: script})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("utxo line %d: %w", line+1, err)
	}
	return out, nil
}

// Virtual sizes (vbytes, rounded up) by script type: an input spending it
// with one signature (P2SH is taken as P2SH-P2WPKH, the wrapped kind a
// wallet holds), an output paying it, and the transaction's fixed part.
const (
	txOverheadVB       = 10 // version, counts, locktime
	txSegwitOverheadVB = 11 // plus marker and flag (half a vbyte, rounded up)
)

func inputVBytes(script []byte) (int64, error) {
	switch txscript.GetScriptClass(script) {
	case txscript.PubKeyHashTy:
		return 148, nil
	case txscript.ScriptHashTy:
		return 91, nil
	case txscript.WitnessV0PubKeyHashTy:
		return 68, nil
	case txscript.WitnessV1TaprootTy:
		return 58, nil
	}
	return 0, fmt.Errorf("scriptPubKey %x is not P2PKH, P2SH(-P2WPKH), P2WPKH or P2TR: its input size cannot be estimated", script)
}

func segwitInput(script []byte) bool {
	c := txscript.GetScriptClass(script)
	return c != txscript.PubKeyHashTy
}

func outputVBytes(script []byte) int64 {
	return int64(8 + wire.VarIntSerializeSize(uint64(len(script))) + len(script))
}

// DustSats is the smallest payment made: anything smaller is not relayed
// for P2PKH outputs (546), the largest of the standard dust limits.
const DustSats = 546

// Payee is one account to be paid.
type Payee struct {
	Account   string
	Address   string
	AmountSat int64
}

// Batch is a payment batch as recorded.
type Batch struct {
	ID             int64
	CreatedAt      time.Time
	Status         string
	FeeRateSatVB   int64
	VSize          int64
	NetworkFeeSats int64
	ChangeAddress  string
	ChangeSats     int64
	InputsSats     int64
	Payees         []Payee
	Inputs         []UTXO
	PSBT           []byte
	TxID           string
	// Skipped are accounts over the threshold that could not be paid (no
	// address), with the reason.
	Skipped []string
}

// PayRequest is what a batch is built from.
type PayRequest struct {
	UTXOs         []UTXO
	FeeRateSatVB  int64
	ChangeAddress string
	ThresholdSats int64
}

// Errors of a payment batch: nothing is debited when one is returned.
var (
	ErrNothingToPay = errors.New("no account's balance reaches the payout threshold")
	ErrTooFewUTXOs  = errors.New("the UTXOs given do not cover the batch")
	ErrUnknownAcct  = errors.New("account is not in the ledger")
)

// ResolveAddress checks an address for the ledger's network (the payout
// address rules: P2PKH, P2SH, P2WPKH, P2WSH, P2TR) and returns its script.
func (l *Ledger) ResolveAddress(addr string) ([]byte, error) {
	return work.PayoutScript(addr, l.net)
}

// SetAddress maps an account of the ledger to the address it is paid to.
func (l *Ledger) SetAddress(ctx context.Context, account, addr string) error {
	if _, err := l.ResolveAddress(addr); err != nil {
		return err
	}
	var known bool
	if err := l.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE name = $1)
		OR EXISTS (SELECT 1 FROM payout_entries WHERE account = $1)`, account).Scan(&known); err != nil {
		return fmt.Errorf("look up account %q: %w", account, err)
	}
	if !known || strings.HasPrefix(account, "pool:") {
		return fmt.Errorf("account %q: %w (it has no shares and no entries)", account, ErrUnknownAcct)
	}
	_, err := l.db.Exec(ctx, `INSERT INTO payout_addresses (account, address, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (account) DO UPDATE SET address = EXCLUDED.address, updated_at = EXCLUDED.updated_at`, account, addr, l.now())
	if err != nil {
		return fmt.Errorf("store the address of %q: %w", account, err)
	}
	return nil
}

// Balances returns every miner account's balance (the sum of its
// entries).
func (l *Ledger) Balances(ctx context.Context) (map[string]int64, error) {
	return balances(ctx, l.db)
}

func balances(ctx context.Context, db DB) (map[string]int64, error) {
	rows, err := db.Query(ctx, `SELECT account, sum(amount_sats)::bigint FROM payout_entries WHERE account NOT LIKE 'pool:%' GROUP BY account`)
	if err != nil {
		return nil, fmt.Errorf("read balances: %w", err)
	}
	m := map[string]int64{}
	var a string
	var s int64
	if _, err := pgx.ForEachRow(rows, []any{&a, &s}, func() error { m[a] = s; return nil }); err != nil {
		return nil, fmt.Errorf("read balances: %w", err)
	}
	return m, nil
}

// Pay builds and records a payment batch: every account whose balance is
// at least the threshold (and DustSats) is paid its whole balance to its
// address (the mapped one, else its name when that is an address of the
// network), from the UTXOs in the order given until they cover the
// payments and the network fee at the fee rate; the change goes to the
// change address (dropped into the fee when below DustSats). The balances
// are debited in the same transaction as the batch is recorded (status
// pending). On any error nothing is recorded.
func (l *Ledger) Pay(ctx context.Context, req PayRequest) (Batch, error) {
	var b Batch
	if req.FeeRateSatVB < 1 || req.FeeRateSatVB > 10_000 {
		return b, fmt.Errorf("fee rate %d sat/vB is not within 1..10000", req.FeeRateSatVB)
	}
	if req.ThresholdSats < DustSats {
		return b, fmt.Errorf("payout threshold %d sats is below the dust limit %d", req.ThresholdSats, DustSats)
	}
	changeScript, err := l.ResolveAddress(req.ChangeAddress)
	if err != nil {
		return b, fmt.Errorf("change address: %w", err)
	}
	if len(req.UTXOs) == 0 {
		return b, fmt.Errorf("%w: no UTXOs given", ErrTooFewUTXOs)
	}
	err = l.inTx(ctx, func(tx pgx.Tx) error {
		bal, err := balances(ctx, tx)
		if err != nil {
			return err
		}
		mapped := map[string]string{}
		rows, err := tx.Query(ctx, `SELECT account, address FROM payout_addresses`)
		if err != nil {
			return fmt.Errorf("read payout addresses: %w", err)
		}
		var a, addr string
		if _, err := pgx.ForEachRow(rows, []any{&a, &addr}, func() error { mapped[a] = addr; return nil }); err != nil {
			return fmt.Errorf("read payout addresses: %w", err)
		}
		accounts := make([]string, 0, len(bal))
		for a := range bal {
			accounts = append(accounts, a)
		}
		slices.Sort(accounts)
		msg := &wire.MsgTx{Version: 2}
		var payScripts [][]byte
		for _, a := range accounts {
			if bal[a] < req.ThresholdSats {
				continue
			}
			addr, ok := mapped[a]
			if !ok {
				addr = a
			}
			script, err := l.ResolveAddress(addr)
			if err != nil {
				if ok {
					b.Skipped = append(b.Skipped, fmt.Sprintf("%s: mapped address: %v", a, err))
				} else {
					b.Skipped = append(b.Skipped, fmt.Sprintf("%s: the account name is no address of %s and no address is mapped (wattpool payouts address)", a, l.net.Name))
				}
				continue
			}
			b.Payees = append(b.Payees, Payee{Account: a, Address: addr, AmountSat: bal[a]})
			payScripts = append(payScripts, script)
			msg.AddTxOut(wire.NewTxOut(bal[a], script))
		}
		if len(b.Payees) == 0 {
			if len(b.Skipped) > 0 {
				return fmt.Errorf("%w with an address (%s)", ErrNothingToPay, strings.Join(b.Skipped, "; "))
			}
			return fmt.Errorf("%w (%d sats)", ErrNothingToPay, req.ThresholdSats)
		}
		var paying int64
		for _, p := range b.Payees {
			paying += p.AmountSat
		}
		var spent []*wire.TxOut
		vsize := int64(txOverheadVB) + int64(wire.VarIntSerializeSize(uint64(len(b.Payees)+1))) - 1
		for _, s := range payScripts {
			vsize += outputVBytes(s)
		}
		changeVB := outputVBytes(changeScript)
		segwit := false
		var fee int64
		covered := false
		for _, u := range req.UTXOs {
			in, _ := inputVBytes(u.PkScript)
			vsize += in
			if segwitInput(u.PkScript) && !segwit {
				segwit = true
				vsize += txSegwitOverheadVB - txOverheadVB
			}
			msg.AddTxIn(wire.NewTxIn(&u.OutPoint, nil, nil))
			spent = append(spent, wire.NewTxOut(u.ValueSats, u.PkScript))
			b.Inputs = append(b.Inputs, u)
			b.InputsSats += u.ValueSats
			fee = (vsize + changeVB) * req.FeeRateSatVB
			if b.InputsSats >= paying+fee {
				covered = true
				break
			}
		}
		if !covered {
			return fmt.Errorf("%w: %d UTXOs hold %d sats; the batch pays %d sats to %d accounts plus a network fee of %d sats at %d sat/vB",
				ErrTooFewUTXOs, len(req.UTXOs), b.InputsSats, paying, len(b.Payees), fee, req.FeeRateSatVB)
		}
		b.ChangeSats = b.InputsSats - paying - fee
		if b.ChangeSats < DustSats {
			// Too small to be worth an output: it goes to the miners of
			// the network, and the transaction is one output smaller.
			fee += b.ChangeSats
			b.ChangeSats = 0
			b.VSize = vsize
		} else {
			msg.AddTxOut(wire.NewTxOut(b.ChangeSats, changeScript))
			b.VSize = vsize + changeVB
		}
		b.NetworkFeeSats = fee
		b.FeeRateSatVB = req.FeeRateSatVB
		b.ChangeAddress = req.ChangeAddress
		if b.PSBT, err = EncodePSBT(msg, spent); err != nil {
			return err
		}
		b.CreatedAt = l.now()
		b.Status = "pending"
		if err := tx.QueryRow(ctx, `INSERT INTO payout_batches (created_at, status, fee_rate_sat_vb, vsize, network_fee_sats,
			change_address, change_sats, inputs_sats, psbt) VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
			b.CreatedAt, b.FeeRateSatVB, b.VSize, b.NetworkFeeSats, b.ChangeAddress, b.ChangeSats, b.InputsSats, b.PSBT).Scan(&b.ID); err != nil {
			return fmt.Errorf("record the batch: %w", err)
		}
		j := journal{kind: JournalPayment, batch: b.ID, hasBatch: true, bookedAt: b.CreatedAt}
		outs := make([][]any, 0, len(b.Payees))
		for _, p := range b.Payees {
			j.entries = append(j.entries, entry{p.Account, KindPayment, -p.AmountSat})
			outs = append(outs, []any{b.ID, p.Account, p.Address, p.AmountSat})
		}
		j.entries = append(j.entries, entry{AccountPayouts, KindPaymentFunding, paying})
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"payout_batch_outputs"}, []string{"batch_id", "account", "address", "amount_sats"},
			pgx.CopyFromRows(outs)); err != nil {
			return fmt.Errorf("record the batch's outputs: %w", err)
		}
		id, err := l.writeJournal(ctx, tx, j)
		if err == nil && id == 0 {
			err = fmt.Errorf("batch %d has a payment journal already", b.ID)
		}
		return err
	})
	if err != nil {
		return Batch{Skipped: b.Skipped}, err
	}
	l.log.Info("payment batch recorded", zap.Int64("batch", b.ID), zap.Int("payees", len(b.Payees)),
		zap.Int64("network_fee_sats", b.NetworkFeeSats), zap.Int64("vsize", b.VSize))
	return b, nil
}

// ErrUnknownBatch is returned for a batch id the ledger does not have.
var ErrUnknownBatch = errors.New("payment batch not in the ledger")

// Paid records the txid a pending batch was broadcast as. Recording the
// same txid again is a no-op; another txid for a paid batch is refused.
func (l *Ledger) Paid(ctx context.Context, batch int64, txid string) error {
	h, err := chainhash.NewHashFromStr(txid)
	if err != nil || len(txid) != 64 {
		return fmt.Errorf("txid %q is not 64 hex digits", txid)
	}
	txid = h.String()
	return l.inTx(ctx, func(tx pgx.Tx) error {
		var status string
		var old *string
		err := tx.QueryRow(ctx, `SELECT status, txid FROM payout_batches WHERE id = $1`, batch).Scan(&status, &old)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("batch %d: %w", batch, ErrUnknownBatch)
		}
		if err != nil {
			return fmt.Errorf("batch %d: %w", batch, err)
		}
		if status == "paid" {
			if old != nil && *old == txid {
				return nil
			}
			return fmt.Errorf("batch %d was recorded as paid by %s already", batch, *old)
		}
		var raw []byte
		if err := tx.QueryRow(ctx, `SELECT psbt FROM payout_batches WHERE id = $1`, batch).Scan(&raw); err != nil {
			return fmt.Errorf("batch %d: read its PSBT: %w", batch, err)
		}
		p, err := DecodePSBT(raw)
		if err != nil {
			return fmt.Errorf("batch %d: its stored PSBT: %w", batch, err)
		}
		if want, ok := fixedTxID(p); ok && want != txid {
			// Native segwit inputs: signing does not change the txid.
			return fmt.Errorf("batch %d is transaction %s (its inputs are all native segwit, so signing keeps the txid), not %s", batch, want, txid)
		}
		if _, err := tx.Exec(ctx, `UPDATE payout_batches SET status = 'paid', txid = $2, paid_at = $3 WHERE id = $1`, batch, txid, l.now()); err != nil {
			return fmt.Errorf("batch %d: record txid: %w", batch, err)
		}
		return nil
	})
}

// DecodeAddressScript returns the address a script pays on net ("" when
// it is not a standard single-address script): what a PSBT's outputs are
// checked against.
func DecodeAddressScript(script []byte, net *chaincfg.Params) string {
	_, addrs, _, err := txscript.ExtractPkScriptAddrs(script, net)
	if err != nil || len(addrs) != 1 {
		return ""
	}
	return addrs[0].String()
}

// fixedTxID returns the txid a PSBT's transaction will have once signed
// when every input is native segwit (P2WPKH, P2TR): their signatures live
// in the witness, outside the txid. Otherwise false.
func fixedTxID(p *PSBT) (string, bool) {
	for _, s := range p.Spent {
		if s == nil {
			return "", false
		}
		switch txscript.GetScriptClass(s.PkScript) {
		case txscript.WitnessV0PubKeyHashTy, txscript.WitnessV1TaprootTy:
		default:
			return "", false
		}
	}
	return p.Tx.TxHash().String(), true
}
