package work

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/v2"
)

// Vectors from BIP173, BIP350 and btcd's address tests.
func TestPayoutScript(t *testing.T) {
	main, test, reg := &chaincfg.MainNetParams, &chaincfg.TestNet3Params, &chaincfg.RegressionNetParams
	tests := []struct {
		name    string
		addr    string
		params  *chaincfg.Params
		want    string
		wantErr string
	}{
		{"mainnet p2pkh (genesis key)", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", main, "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac", ""},
		{"mainnet p2sh", "3QJmV3qfvL9SuYo34YihAf3sRCW3qSinyC", main, "a914f815b036d9bbbce5e9f2a00abd1bf3dc91e9551087", ""},
		{"mainnet p2wpkh", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", main, "0014751e76e8199196d454941c45d1b3a323f1433bd6", ""},
		{"mainnet p2wpkh upper case", "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", main, "0014751e76e8199196d454941c45d1b3a323f1433bd6", ""},
		{"mainnet p2wsh", "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3", main, "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262", ""},
		{"mainnet p2tr", "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0", main, "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", ""},
		{"testnet p2sh", "2NBFNJTktNa7GZusGbDbGKRZTxdK9VVez3n", test, "a914c579342c2c4c9220205e2cdc285617040c924a0a87", ""},
		{"testnet p2wsh", "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", test, "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262", ""},
		{"testnet p2pkh", "mrX9vMRYLfVy1BnZbc5gZjuyaqH3ZW2ZHz", test, "76a91478b316a08647d5b77283e512d3603f1f1c8de68f88ac", ""},
		// Regtest shares base58 prefixes with testnet.
		{"testnet p2pkh on regtest", "mrX9vMRYLfVy1BnZbc5gZjuyaqH3ZW2ZHz", reg, "76a91478b316a08647d5b77283e512d3603f1f1c8de68f88ac", ""},

		// An address of another network is named as such, not as a
		// checksum failure.
		{"mainnet p2wpkh on testnet", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", test, "", "is a mainnet address; the pool runs on testnet3"},
		{"testnet p2wpkh on regtest", "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx", reg, "", "is a testnet3 or testnet4 or signet address; the pool runs on regtest"},
		{"mainnet p2pkh on regtest", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", reg, "", "is a mainnet address; the pool runs on regtest"},
		{"mainnet p2wpkh on regtest", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", reg, "", "is a mainnet address; the pool runs on regtest"},
		{"regtest p2wpkh on mainnet", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", main, "", "is a regtest address; the pool runs on mainnet"},
		{"testnet p2sh on mainnet", "2NBFNJTktNa7GZusGbDbGKRZTxdK9VVez3n", main, "", "the pool runs on mainnet"},
		{"bad checksum", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb", main, "", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb"},
		{"bech32 for v1", "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd", main, "", "not a valid"},
		{"raw public key", "02192d74d0cb94344c9569c2e77901573d8d7903c3ebec3a957724895dca52c6b4", main, "", "unsupported address type"},
		{"pay to anchor", "bc1pfeessrawgf", main, "", "unsupported address type"},
		{"empty", "", main, "", "empty"},
		{"white space", " bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", main, "", "white space"},
		{"garbage", "hello", main, "", "not a valid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PayoutScript(tc.addr, tc.params)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("PayoutScript succeeded: %x", got)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got) != tc.want {
				t.Errorf("script %x, want %s", got, tc.want)
			}
			if err := checkPayoutScript(got); err != nil {
				t.Errorf("checkPayoutScript rejects PayoutScript's output: %v", err)
			}
		})
	}
	if _, err := PayoutScript("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", nil); err == nil {
		t.Error("nil params accepted")
	}
}
