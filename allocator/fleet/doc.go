// Package fleet reaches the machines: a miner inventory (a CSV file naming
// each miner's firmware API address, driver and worker group), one driver
// per firmware control API (LuxOS, stock Antminer CGI, Whatsminer API v3,
// read-only cgminer), and Act, which curtails or resumes many miners at once
// with bounded parallelism, per-miner retries and batched restore.
//
// Refusing stratum work does not cut power (firmware fails over to its
// backup pools), so curtailment goes through each miner's own API. Every
// driver call is bounded by its context; replies are size-limited and
// validated, and failures are typed (ErrUnreachable, ErrAuth, ErrRefused,
// ErrCannotCurtail, ErrBadReply) so the allocator's closed loop can list
// failed miners with a reason.
//
// Passwords never live in the inventory file: a line names the environment
// variable that holds one (password_env). A Miner keeps the value out of
// every String, GoString, fmt verb and JSON encoding, and no error or log
// line of this package contains it.
package fleet
