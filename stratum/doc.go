// Package stratum is the Stratum v1 server: listeners, sessions, the
// newline-delimited JSON-RPC codec, vardiff, share validation, job broadcast
// and the session registry. It knows nothing of PostgreSQL or prices: share
// events leave through the Sink interface and the allocator reaches worker
// groups through the gate the server exposes.
package stratum
