// Package devstack starts the throw-away services that `make demo` and the
// test suite run against: a PostgreSQL cluster in a private folder and a
// btcd node on regtest. It finds and runs real binaries (PostgreSQL's from
// PATH or Debian's /usr/lib/postgresql/N/bin, btcd from `go tool btcd`) and
// never installs anything itself: .ci/ensure-postgres installs PostgreSQL.
//
// PostgreSQL refuses to run as root, so when this process is root the
// cluster's folder is handed to the unprivileged `postgres` system user and
// initdb and postgres run as that user.
package devstack
