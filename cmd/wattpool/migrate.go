package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/migrations"
)

// cmdMigrate applies the embedded migrations to the configured database.
func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	url, err := databaseURL(path(), lookup)
	if err != nil {
		return err
	}
	conn, err := connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	before, latest, err := migrations.Version(ctx, conn)
	if err != nil {
		return err
	}
	if err := migrations.Apply(ctx, conn); err != nil {
		return err
	}
	after, _, err := migrations.Version(ctx, conn)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: schema version %d -> %d (latest %d)\n", config.Redact(url), before, after, latest)
	return nil
}

// databaseURL returns the configured database URL. Only the database
// settings need to be valid: migrating or verifying needs no node or
// payout address, so the other errors are not reported.
func databaseURL(path string, lookup env) (string, error) {
	cfg, err := config.Load(path, lookup)
	if err == nil {
		if cfg.DatabaseURL == "" {
			return "", errors.New("no database configured: set database.url or WATTPOOL_DATABASE_URL")
		}
		return cfg.DatabaseURL, nil
	}
	var dbErrs config.Errors
	for _, e := range config.List(err) {
		var fe *config.FieldError
		if !errors.As(e, &fe) || fe.Field == "" || fe.Field == "database.url" {
			dbErrs = append(dbErrs, e)
		}
	}
	if len(dbErrs) > 0 {
		return "", fmt.Errorf("configuration %s is not valid:\n%w", describePath(path), dbErrs)
	}
	// Other fields are wrong; read the URL without validating them.
	f, derr := config.DecodeFileAt(path, lookup)
	if derr != nil {
		return "", derr
	}
	if f.Database.URL == "" {
		return "", errors.New("no database configured: set database.url or WATTPOOL_DATABASE_URL")
	}
	return f.Database.URL, nil
}

// connectConfigured connects to the database the configuration at path
// (and the environment) names: the opening of every command that reads or
// migrates the ledger.
func connectConfigured(ctx context.Context, path string, lookup env) (*pgx.Conn, error) {
	url, err := databaseURL(path, lookup)
	if err != nil {
		return nil, err
	}
	return connect(ctx, url)
}

func connect(ctx context.Context, url string) (*pgx.Conn, error) {
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, errors.New("database.url does not parse as a PostgreSQL URL")
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", config.Redact(url), err)
	}
	return conn, nil
}
