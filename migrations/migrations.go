// Package migrations owns the PostgreSQL schema of wattpool: numbered SQL
// files embedded in the binary and applied with tern, plus the upkeep of
// the time partitions of the shares table.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

// VersionTable records the applied schema version (tern's bookkeeping).
const VersionTable = "public.schema_version"

//go:embed *.sql
var files embed.FS

// FS returns the embedded migration files (NNN_name.sql), for tools that
// want to list or print them.
func FS() fs.FS { return files }

// Apply brings the database to the newest schema version. It is safe to
// call from several processes at once and repeatedly: tern holds a
// session-level advisory lock (pg_advisory_lock) on conn while it checks
// the current version and runs each pending migration in its own
// transaction, so concurrent callers serialize and a second call is a
// no-op. Migration files are Go templates to tern; none of ours use that.
func Apply(ctx context.Context, conn *pgx.Conn) error {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return fmt.Errorf("apply migrations: create migrator: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return fmt.Errorf("apply migrations: load embedded files: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// Version returns the schema version the database is at (0 when none has
// been applied) and the newest version this binary carries.
func Version(ctx context.Context, conn *pgx.Conn) (current, latest int32, err error) {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return 0, 0, fmt.Errorf("schema version: create migrator: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return 0, 0, fmt.Errorf("schema version: load embedded files: %w", err)
	}
	current, err = m.GetCurrentVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("schema version: %w", err)
	}
	return current, int32(len(m.Migrations)), nil
}
