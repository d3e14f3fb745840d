package payout_test

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/txscript/v2"
	"github.com/btcsuite/btcd/wire/v2"

	"github.com/wattpool/wattpool/shares/payout"
)

// p2wpkh returns a regtest (or other) P2WPKH address and its script.
func p2wpkh(t *testing.T, tag byte, net *chaincfg.Params) (string, []byte) {
	t.Helper()
	a, err := address.NewAddressWitnessPubKeyHash(append([]byte{tag}, make([]byte, 19)...), net)
	if err != nil {
		t.Fatal(err)
	}
	s, err := txscript.PayToAddrScript(a)
	if err != nil {
		t.Fatal(err)
	}
	return a.String(), s
}

func utxo(t *testing.T, tag byte, vout uint32, sats int64, script []byte) payout.UTXO {
	t.Helper()
	return payout.UTXO{OutPoint: *wireOutPoint(tag, vout), ValueSats: sats, PkScript: script}
}

func wireOutPoint(tag byte, vout uint32) *wire.OutPoint {
	return wire.NewOutPoint(&chainhash.Hash{0xee, tag}, vout)
}

// p2wpkhF is p2wpkh for a fuzz target's seed.
func p2wpkhF(f *testing.F) (string, []byte) {
	a, err := address.NewAddressWitnessPubKeyHash(make([]byte, 20), &chaincfg.RegressionNetParams)
	if err != nil {
		f.Fatal(err)
	}
	s, err := txscript.PayToAddrScript(a)
	if err != nil {
		f.Fatal(err)
	}
	return a.String(), s
}

// wireTx is an unsigned one-in, one-out transaction paying script.
func wireTx(script []byte) *wire.MsgTx {
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(wire.NewTxIn(wireOutPoint(7, 3), nil, nil))
	tx.AddTxOut(wire.NewTxOut(6000, script))
	return tx
}

func spentOf(tx *wire.MsgTx, script []byte) []*wire.TxOut {
	out := make([]*wire.TxOut, len(tx.TxIn))
	for i := range out {
		out[i] = wire.NewTxOut(7000, script)
	}
	return out
}

// payBook: one block of 1e9 sats split by pplns over every share: alice
// 1, the account named by its own regtest address 1, dave 2 of 4:
// 250,000,000, 250,000,000 and 500,000,000.
func payBook(t *testing.T) (*book, *payout.Ledger, string) {
	t.Helper()
	b := newBook(t)
	named, _ := p2wpkh(t, 9, &chaincfg.RegressionNetParams)
	b.job("j1", 100, 1, 1_000_000_000)
	b.share(time.Second, "alice", "j1", 1, 1)
	b.share(2*time.Second, named, "j1", 1, 2)
	b.share(3*time.Second, "dave", "j1", 2, 3)
	b.block(1, 4*time.Second, "j1", 1_000_000_000, "mature")
	l := payout.NewLedger(b.db, "pool-a", &chaincfg.RegressionNetParams, payout.WithClock(func() time.Time { return b.now }))
	b.record(l, payout.Params{Scheme: payout.PPLNS, Window: payout.WindowSize{Diff: 1e6}, FPPSFeeBlocks: 1}, time.Time{})
	if _, err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b, l, named
}

func TestPayBatch(t *testing.T) {
	ctx := context.Background()
	b, l, named := payBook(t)
	aliceAddr, aliceScript := p2wpkh(t, 1, &chaincfg.RegressionNetParams)
	changeAddr, changeScript := p2wpkh(t, 2, &chaincfg.RegressionNetParams)
	_, namedScript := p2wpkh(t, 9, &chaincfg.RegressionNetParams)
	mainnetAddr, _ := p2wpkh(t, 3, &chaincfg.MainNetParams)
	_, walletScript := p2wpkh(t, 4, &chaincfg.RegressionNetParams)
	u1 := payout.UTXO{OutPoint: *wireOutPoint(1, 0), ValueSats: 200_000_000, PkScript: walletScript}
	u2 := payout.UTXO{OutPoint: *wireOutPoint(2, 1), ValueSats: 400_000_000, PkScript: walletScript}
	before := b.balances(l)

	// Bad input: clear errors, nothing debited.
	if err := l.SetAddress(ctx, "nobody", aliceAddr); !errors.Is(err, payout.ErrUnknownAcct) {
		t.Errorf("unknown account: %v", err)
	}
	if err := l.SetAddress(ctx, "alice", mainnetAddr); err == nil || !strings.Contains(err.Error(), "is a mainnet address; the pool runs on regtest") {
		t.Errorf("wrong-network address: %v", err)
	}
	if err := l.SetAddress(ctx, "alice", "bcrt1qnotanaddress"); err == nil || !strings.Contains(err.Error(), "not a valid regtest address") {
		t.Errorf("invalid address: %v", err)
	}
	if err := l.SetAddress(ctx, "alice", aliceAddr); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  payout.PayRequest
		want string
	}{
		{"too few UTXOs", payout.PayRequest{UTXOs: []payout.UTXO{u1}, FeeRateSatVB: 2, ChangeAddress: changeAddr, ThresholdSats: 100_000_000},
			"do not cover the batch: 1 UTXOs hold 200000000 sats; the batch pays 500000000 sats to 2 accounts"},
		{"wrong-network change", payout.PayRequest{UTXOs: []payout.UTXO{u1, u2}, FeeRateSatVB: 2, ChangeAddress: mainnetAddr, ThresholdSats: 100_000_000},
			"change address: payout address"},
		{"threshold above every balance", payout.PayRequest{UTXOs: []payout.UTXO{u1, u2}, FeeRateSatVB: 2, ChangeAddress: changeAddr, ThresholdSats: 600_000_000},
			"no account's balance reaches the payout threshold"},
		{"fee rate 0", payout.PayRequest{UTXOs: []payout.UTXO{u1, u2}, FeeRateSatVB: 0, ChangeAddress: changeAddr, ThresholdSats: 100_000_000},
			"fee rate 0 sat/vB"},
	} {
		_, err := l.Pay(ctx, tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if got := b.balances(l); !equalMap(got, before) || b.count("SELECT count(*) FROM payout_batches") != 0 {
		t.Fatalf("a refused batch changed balances %v (was %v) or recorded a batch", got, before)
	}

	// vsize: 10 + 2 outputs x 31 = 72; input 1 (P2WPKH) 68 + 1 for
	// segwit = 141 with a 31-vbyte change: (141 + 31) x 2 = 344 sats, 200M
	// short of 500M; input 2: 209 + 31 = 240 vB, fee 480; change
	// 600,000,000 - 500,000,000 - 480 = 99,999,520. dave has no address.
	batch, err := l.Pay(ctx, payout.PayRequest{UTXOs: []payout.UTXO{u1, u2, utxo(t, 3, 0, 1e9, walletScript)}, FeeRateSatVB: 2,
		ChangeAddress: changeAddr, ThresholdSats: 100_000_000})
	if err != nil {
		t.Fatal(err)
	}
	if batch.VSize != 240 || batch.NetworkFeeSats != 480 || batch.ChangeSats != 99_999_520 || batch.InputsSats != 600_000_000 ||
		len(batch.Inputs) != 2 || len(batch.Payees) != 2 || len(batch.Skipped) != 1 || !strings.HasPrefix(batch.Skipped[0], "dave:") {
		t.Fatalf("batch %+v", batch)
	}
	p, err := payout.DecodePSBT(batch.PSBT)
	if err != nil {
		t.Fatal(err)
	}
	type out struct {
		script string
		sats   int64
	}
	want := []out{{hex.EncodeToString(aliceScript), 250_000_000}, {hex.EncodeToString(namedScript), 250_000_000}, {hex.EncodeToString(changeScript), 99_999_520}}
	if len(p.Tx.TxOut) != len(want) || len(p.Tx.TxIn) != 2 {
		t.Fatalf("psbt: %d inputs, %d outputs", len(p.Tx.TxIn), len(p.Tx.TxOut))
	}
	for i, w := range want {
		if got := (out{hex.EncodeToString(p.Tx.TxOut[i].PkScript), p.Tx.TxOut[i].Value}); got != w {
			t.Errorf("output %d: %+v, want %+v", i, got, w)
		}
	}
	if p.Tx.TxIn[1].PreviousOutPoint != u2.OutPoint || p.Spent[1].Value != 400_000_000 {
		t.Errorf("input 2: %v spends %d", p.Tx.TxIn[1].PreviousOutPoint, p.Spent[1].Value)
	}
	if got, want := b.balances(l), map[string]int64{"alice": 0, named: 0, "dave": 500_000_000}; !equalMap(got, want) {
		t.Fatalf("balances after the batch %v, want %v", got, want)
	}
	// The txid, once paid; again the same is a no-op, another refused.
	// The inputs are P2WPKH: the txid is the unsigned transaction's.
	txid := p.Tx.TxHash().String()
	if err := l.Paid(ctx, batch.ID, strings.Repeat("ab", 32)); err == nil || !strings.Contains(err.Error(), "is transaction "+txid) {
		t.Errorf("a txid that is not the batch's: %v", err)
	}
	if err := l.Paid(ctx, batch.ID, txid); err != nil {
		t.Fatal(err)
	}
	if err := l.Paid(ctx, batch.ID, txid); err != nil {
		t.Fatal(err)
	}
	if err := l.Paid(ctx, batch.ID, strings.Repeat("cd", 32)); err == nil || !strings.Contains(err.Error(), "paid by "+txid) {
		t.Errorf("second txid: %v", err)
	}
	if err := l.Paid(ctx, 99, txid); !errors.Is(err, payout.ErrUnknownBatch) {
		t.Errorf("unknown batch: %v", err)
	}

	st, err := l.Statement(ctx, "alice", t0, b.now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if st.OpeningSats != 0 || st.ClosingSats != 0 || st.CreditsSats != 250_000_000 || st.PaymentsSats != 250_000_000 ||
		st.Shares != 1 || st.AcceptedDifficulty.RatString() != "1" || len(st.Lines) != 2 || st.Lines[1].TxID != txid {
		t.Fatalf("statement %+v", st)
	}
	// A period before the credit: the opening balance of the next one.
	st, err = l.Statement(ctx, "dave", t0, t0.Add(time.Hour))
	if err != nil || st.ClosingSats != 0 || st.Shares != 1 || st.AcceptedDifficulty.RatString() != "2" {
		t.Fatalf("dave's first hour: %+v, %v", st, err)
	}
	if _, err := l.Statement(ctx, "nobody", t0, b.now); !errors.Is(err, payout.ErrUnknownAcct) {
		t.Errorf("statement of an unknown account: %v", err)
	}
	rec, err := l.Reconcile(ctx, t0, b.now.Add(time.Hour))
	if err != nil || rec.Mismatches != 0 {
		t.Fatalf("reconcile %+v, %v", rec, err)
	}
}

func TestParseUTXOs(t *testing.T) {
	txid := strings.Repeat("0a", 32)
	for _, tc := range []struct {
		name, in, err string
		n             int
	}{
		{"two lines, comment, commas", "# wallet\n" + txid + ":0 1000 0014" + strings.Repeat("11", 20) + "\n\n" + txid + ":1,2000,0014" + strings.Repeat("22", 20) + "\n", "", 2},
		{"missing field", txid + ":0 1000\n", "utxo line 1: want 3 fields", 0},
		{"no vout", txid + " 1000 0014" + strings.Repeat("11", 20), "utxo line 1 field 1", 0},
		{"bad value", txid + ":0 -5 0014" + strings.Repeat("11", 20), "utxo line 1 field 2", 0},
		{"bad script", txid + ":0 5 zz", "utxo line 1 field 3", 0},
		{"unknown script type", txid + ":0 5 6a", "cannot be estimated", 0},
		{"duplicate", txid + ":0 5 0014" + strings.Repeat("11", 20) + "\n" + txid + ":0 6 0014" + strings.Repeat("11", 20), "utxo line 2: " + txid + ":0 is listed already on line 1", 0},
	} {
		got, err := payout.ParseUTXOs(strings.NewReader(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || len(got) != tc.n {
			t.Errorf("%s: %d, %v", tc.name, len(got), err)
		}
	}
}

func FuzzParseUTXOs(f *testing.F) {
	f.Add(strings.Repeat("0a", 32) + ":0 1000 0014" + strings.Repeat("11", 20) + "\n")
	f.Add("# nothing\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		us, err := payout.ParseUTXOs(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, u := range us {
			if u.ValueSats <= 0 || len(u.PkScript) == 0 {
				t.Fatalf("accepted %+v", u)
			}
		}
	})
}

func FuzzDecodePSBT(f *testing.F) {
	_, s := p2wpkhF(f)
	tx := wireTx(s)
	raw, err := payout.EncodePSBT(tx, spentOf(tx, s))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte("psbt\xff\x00"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := payout.DecodePSBT(raw)
		if err != nil {
			return
		}
		if len(p.Spent) != len(p.Tx.TxIn) {
			t.Fatalf("%d spent for %d inputs", len(p.Spent), len(p.Tx.TxIn))
		}
	})
}

func TestPSBTRoundTrip(t *testing.T) {
	_, s := p2wpkh(t, 5, &chaincfg.RegressionNetParams)
	tx := wireTx(s)
	raw, err := payout.EncodePSBT(tx, spentOf(tx, s))
	if err != nil {
		t.Fatal(err)
	}
	p, err := payout.DecodePSBT(raw)
	if err != nil {
		t.Fatal(err)
	}
	if p.Tx.TxHash() != tx.TxHash() || p.Spent[0].Value != 7000 {
		t.Fatalf("round trip: %v, %v", p.Tx.TxHash(), p.Spent[0])
	}
	for i, bad := range [][]byte{raw[:len(raw)-1], append(append([]byte{}, raw...), 0), []byte("psbt")} {
		if _, err := payout.DecodePSBT(bad); err == nil {
			t.Errorf("truncated/extended %d decoded", i)
		}
	}
}
