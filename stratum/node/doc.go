// Package node talks to Bitcoin nodes: it fetches block templates with
// getblocktemplate (BIP22/23, rules ["segwit"]), detects new blocks by longpoll
// or best-block polling, fails over between several nodes and submits blocks
// on a connection of its own so a slow template call never delays a block.
//
// # Pieces
//
//   - ParseTemplate validates one getblocktemplate result into a Template.
//   - Client is a small JSON-RPC 1.0 caller for one node. It keeps two HTTP
//     transports: one for templates and queries (a longpoll may hold a
//     connection for minutes), one reserved for submitblock, so a found block
//     never queues behind a slow or longpolling getblocktemplate.
//   - Pool (several nodes, failover) and FileSource (a template replayed from
//     a file) implement Source, which the stratum server consumes.
//
// # Speed
//
// A full block's template is 2-4 MB of JSON, mostly the hex of 3,000-4,000
// transactions, and the time to parse it is the time between a new block and
// the pool's first clean job. ParseTemplate therefore scans the text once in
// place (jsonScanner, as strict as encoding/json), decodes all transaction
// hex into one buffer, and hashes each transaction's bytes where they lie,
// the txid over the spans without marker, flag and witnesses. The
// encoding/json and wire.MsgTx implementation it replaced is kept in
// reference_test.go, and fuzz targets hold the two to the same verdict and
// the same Template on any input.
//
// # getblocktemplate dialects
//
// btcd and Bitcoin Core answer getblocktemplate differently. ParseTemplate
// accepts both and normalizes to one Template:
//
//	field                       Bitcoin Core                          btcd                                   Template
//	--------------------------  ------------------------------------  -------------------------------------  -------------------------------------------
//	default_witness_commitment  full script 6a24aa21a9ed||hash,       bare 32-byte hash, only when a         WitnessCommitment: always the full script,
//	                            whenever segwit is active             template tx has a witness              nil when absent
//	coinbasevalue               subsidy + fees (sats)                 same                                   CoinbaseValue; missing or negative = error
//	                                                                                                         (coinbasetxn-only templates unsupported)
//	longpollid                  prevhash + mempool update counter     "<prevhash>-<unix time generated>"     LongPollID, opaque, sent back unchanged
//	mintime                     median time past + 1                  same                                   MinTime; must be <= curtime
//	curtime                     now, at least mintime                 same                                   CurTime; required, > 0
//	maxtime                     not sent                              curtime + 2h                           MaxTime; 0 when absent, else >= curtime
//	rules                       e.g. ["csv","!segwit","taproot"]      not sent                               Rules without "!"; an unsupported "!" rule
//	                                                                                                         is an error naming it (supported: segwit,
//	                                                                                                         csv, taproot, testdummy, signet)
//	vbrequired                  0                                     not sent                               VBRequired, OR-ed into Version
//	coinbaseaux                 {} (empty since Core 0.17)            {"flags": "<hex>"}                     CoinbaseAux: hex values concatenated in key
//	                                                                                                         order, at most 100 bytes
//	target                      from bits                             from bits                              checked against bits when present
//	transactions[].data         hex, witness serialization            same                                   wire.MsgTx rules; trailing bytes = error
//	transactions[].txid         txid                                  txid                                   must equal sha256d of the non-witness
//	                                                                                                         serialization
//	transactions[].hash         wtxid                                 wtxid                                  must equal the computed wtxid (pre-segwit
//	                                                                                                         nodes sent the txid here without a txid field)
//	transactions[].fee          sats                                  sats                                   Fee (0 when absent), never negative
//	transactions[].sigops       sigop cost                            sigop cost                             SigOps as reported
//	transactions[].weight       weight units                          weight units                           Weight as reported
//
// Other btcd facts the client relies on: btcd answers an empty HTTP 200 when a
// request lacks "jsonrpc":"1.0" (the client always sends it); it answers
// error -10 "Bitcoin is downloading blocks..." while syncing (ErrNodeSyncing);
// submitblock returns null on acceptance (side-chain blocks included, hence
// the confirmation by header lookup), "rejected: <reason>" on consensus
// failure ("rejected: already have block ..." for a duplicate) and error -22
// when the block does not decode; getblockheader fails with error -32603
// "... is not in the main chain" for a known side-chain block, which the client
// reports like Core does, as confirmations -1.
package node
