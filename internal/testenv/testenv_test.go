package testenv

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func TestPostgresGivesEachTestItsOwnDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b := Postgres(t), Postgres(t)
	if a == b {
		t.Fatalf("two calls returned the same database %s", a)
	}
	conn, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatalf("connect %s: %v", a, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE probe (x int)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	connB, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatalf("connect %s: %v", b, err)
	}
	defer connB.Close(ctx)
	var n int
	if err := connB.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'probe'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("second database sees the first one's table: n=%d err=%v", n, err)
	}
}

func TestPrivatePostgresStopsAndStarts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := PrivatePostgres(t)
	c.Stop()
	if conn, err := pgx.Connect(ctx, c.URL); err == nil {
		conn.Close(ctx)
		t.Fatal("connected to a stopped cluster")
	}
	c.Start(t)
	conn, err := pgx.Connect(ctx, c.URL)
	if err != nil {
		t.Fatalf("connect after restart: %v", err)
	}
	conn.Close(ctx)
}

func TestBtcdGeneratesToTheMiningKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []BtcdOption
	}{{"http", nil}, {"tls", []BtcdOption{WithTLS()}}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			node := StartBtcd(t, tc.opts...)
			if (node.CAFile != "") != (len(tc.opts) > 0) {
				t.Fatalf("CAFile %q does not match TLS option", node.CAFile)
			}
			hashes := node.Generate(t, 3)
			if len(hashes) != 3 {
				t.Fatalf("generated %d blocks, want 3", len(hashes))
			}
			raw, err := node.Call(ctx, "getblock", hashes[2].String(), 2)
			if err != nil {
				t.Fatalf("getblock: %v", err)
			}
			var block struct {
				Height int64      `json:"height"`
				RawTx  []struct { // btcd names the verbose transactions "rawtx"
					Vout []struct {
						ScriptPubKey struct {
							Addresses []string `json:"addresses"`
							Address   string   `json:"address"`
						} `json:"scriptPubKey"`
					} `json:"vout"`
				} `json:"rawtx"`
			}
			if err := json.Unmarshal(raw, &block); err != nil {
				t.Fatalf("decode block: %v", err)
			}
			if block.Height != 3 {
				t.Fatalf("height %d, want 3", block.Height)
			}
			spk := block.RawTx[0].Vout[0].ScriptPubKey
			got := spk.Address
			if got == "" && len(spk.Addresses) > 0 {
				got = spk.Addresses[0]
			}
			if got != node.MiningAddress.EncodeAddress() {
				t.Fatalf("coinbase pays %q, want %s", got, node.MiningAddress.EncodeAddress())
			}
		})
	}
}
