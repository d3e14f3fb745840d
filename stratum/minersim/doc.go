// Package minersim is a Stratum v1 client that behaves like ASIC firmware
// (cgminer/bmminer on Antminers, Whatsminer, ESP-Miner on Bitaxe): it
// negotiates version rolling with mining.configure (BIP310), subscribes,
// authorizes, suggests a difficulty, grinds real sha256d headers with
// work.Hasher and submits the shares that meet its target.
//
// A Miner is one stratum connection. A Fleet runs thousands of them from one
// process and reports accepted shares per second, rejects by reason, submit
// latency percentiles and found blocks. Hashing is done by a small shared
// Grinder (a fixed number of worker goroutines, rate limited per miner), so
// an idle miner costs one reader goroutine and a few small buffers.
//
// Every miner carries a power model (nominal TH/s and J/TH of an ASIC class)
// and a mining/curtailed state that a firmware-style HTTP control API exposes
// to the allocator.
package minersim
