package work

import (
	"errors"
	"fmt"
	"strings"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/txscript/v2"
)

// PayoutScript turns a payout address of the configured network into the
// output script the coinbase pays. It accepts the standard single-key and
// script address types a pool operator would use: P2PKH, P2SH, P2WPKH,
// P2WSH and P2TR. Raw public keys (P2PK), pay-to-anchor and unknown witness
// versions are refused, as is an address of another network (regtest and
// testnet share base58 prefixes, so a base58 testnet address is accepted on
// regtest and vice versa; bech32 ones are told apart by their prefix).
func PayoutScript(addr string, params *chaincfg.Params) ([]byte, error) {
	if params == nil {
		return nil, errors.New("payout address: no network parameters")
	}
	trimmed := strings.TrimSpace(addr)
	if trimmed == "" {
		return nil, fmt.Errorf("payout address: empty address for network %s", params.Name)
	}
	if trimmed != addr {
		return nil, fmt.Errorf("payout address %q: surrounding white space", addr)
	}
	decoded, err := address.DecodeAddress(addr, params)
	if err != nil {
		if nets := otherNetworks(addr, params); nets != "" {
			return nil, fmt.Errorf("payout address %q is a %s address; the pool runs on %s", addr, nets, params.Name)
		}
		return nil, fmt.Errorf("payout address %q is not a valid %s address: %w", addr, params.Name, err)
	}
	switch decoded.(type) {
	case *address.AddressPubKeyHash, *address.AddressScriptHash,
		*address.AddressWitnessPubKeyHash, *address.AddressWitnessScriptHash,
		*address.AddressTaproot:
	default:
		return nil, fmt.Errorf("payout address %q: unsupported address type %T (want P2PKH, P2SH, P2WPKH, P2WSH or P2TR)", addr, decoded)
	}
	if !decoded.IsForNet(params) {
		if nets := otherNetworks(addr, params); nets != "" {
			return nil, fmt.Errorf("payout address %q is a %s address; the pool runs on %s", addr, nets, params.Name)
		}
		return nil, fmt.Errorf("payout address %q does not belong to network %s", addr, params.Name)
	}
	script, err := txscript.PayToAddrScript(decoded)
	if err != nil {
		return nil, fmt.Errorf("payout address %q: build output script: %w", addr, err)
	}
	return script, nil
}

// knownNetworks are the networks an address of the wrong one is looked up
// in, so that the error names where it belongs.
var knownNetworks = []*chaincfg.Params{&chaincfg.MainNetParams, &chaincfg.TestNet3Params,
	&chaincfg.TestNet4Params, &chaincfg.SigNetParams, &chaincfg.RegressionNetParams, &chaincfg.SimNetParams}

// otherNetworks names the networks other than params that addr is a valid
// address of ("mainnet", "testnet3 or signet"), or "" when none. An
// operator who pasted a mainnet address into a regtest pool is told that,
// rather than "invalid checksum".
func otherNetworks(addr string, params *chaincfg.Params) string {
	var names []string
	for _, p := range knownNetworks {
		if p.Name == params.Name {
			continue
		}
		if d, err := address.DecodeAddress(addr, p); err == nil && d.IsForNet(p) {
			name := p.Name
			if p == &chaincfg.MainNetParams {
				name = "mainnet"
			}
			names = append(names, name)
		}
	}
	return strings.Join(names, " or ")
}

// checkPayoutScript accepts exactly the script classes PayoutScript
// produces, so a hand-written Config cannot pay to a script nobody can
// spend by mistake.
func checkPayoutScript(script []byte) error {
	if len(script) == 0 {
		return errors.New("payout script is empty")
	}
	switch class := txscript.GetScriptClass(script); class {
	case txscript.PubKeyHashTy, txscript.ScriptHashTy, txscript.WitnessV0PubKeyHashTy,
		txscript.WitnessV0ScriptHashTy, txscript.WitnessV1TaprootTy:
		return nil
	default:
		return fmt.Errorf("payout script %x has class %v (want P2PKH, P2SH, P2WPKH, P2WSH or P2TR)", script, class)
	}
}
