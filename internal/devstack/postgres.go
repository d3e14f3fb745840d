package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrPostgresMissing is returned when PostgreSQL's server binaries cannot be
// found; its message says what to install.
var ErrPostgresMissing = errors.New("PostgreSQL server binaries (initdb, postgres) not found on PATH or in /usr/lib/postgresql/*/bin: " +
	"run .ci/ensure-postgres as root, or install Debian's postgresql package (apt-get install postgresql)")

// PostgresOptions configure a throw-away cluster.
type PostgresOptions struct {
	// Dir holds the cluster (Dir/data) and its socket; it is created if
	// missing. An existing initialized cluster in Dir is reused.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Durable keeps fsync on. Tests turn it off for speed; the demo keeps
	// it so its data survives a crash of the machine like a real server's.
	Durable bool
	// Log receives the server's output; nil discards it.
	Log *os.File
}

// Postgres is a running throw-away cluster. The superuser is "wattpool"
// with trust authentication on 127.0.0.1 only.
type Postgres struct {
	opts PostgresOptions
	bin  string
	cred *syscall.Credential

	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when the server process has exited.
	exited chan struct{}
}

// FindPostgresBin returns the folder holding initdb and postgres.
func FindPostgresBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrPostgresMissing
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// StartPostgres initializes (when needed) and starts a cluster, and waits
// until it accepts connections.
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	if opts.Dir == "" {
		return nil, errors.New("start postgres: no directory given")
	}
	bin, err := FindPostgresBin()
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	opts.Dir = dir
	p := &Postgres{opts: opts, bin: bin}
	if os.Geteuid() == 0 {
		cred, err := postgresUser()
		if err != nil {
			return nil, err
		}
		p.cred = cred
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("start postgres: create %s: %w", dir, err)
	}
	if p.cred != nil {
		if err := makeReachable(dir, p.cred); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(p.dataDir(), "PG_VERSION")); err != nil {
		if err := p.initdb(ctx); err != nil {
			return nil, err
		}
	}
	// A port picked here can be taken by another process before the
	// server binds it: the server then exits, and gets a new port.
	pickPort := p.opts.Port == 0
	var errs []error
	for attempt := 1; ; attempt++ {
		if pickPort {
			if p.opts.Port, err = freePort(); err != nil {
				return nil, err
			}
		}
		err := p.Start(ctx)
		if err == nil {
			return p, nil
		}
		errs = append(errs, err)
		if !pickPort || attempt == startAttempts || !errors.Is(err, errExitedDuringStartup) {
			return nil, errors.Join(errs...)
		}
	}
}

// postgresUser looks up the unprivileged account PostgreSQL runs as when we
// are root (Debian's package creates it).
func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL must run as the 'postgres' system user, which does not exist "+
			"(install Debian's postgresql package, or: useradd --system postgres): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// makeReachable gives dir to the postgres user and checks that every parent
// folder lets that user through, naming the one that does not.
func makeReachable(dir string, cred *syscall.Credential) error {
	if err := filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(cred.Uid), int(cred.Gid))
	}); err != nil {
		return fmt.Errorf("start postgres: hand %s to the postgres user: %w", dir, err)
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("start postgres: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("start postgres: the postgres user cannot enter %s (mode %v); "+
				"put the cluster under a folder others may traverse", p, fi.Mode().Perm())
		}
		if p == "/" || p == "." {
			return nil
		}
	}
}

func (p *Postgres) dataDir() string { return filepath.Join(p.opts.Dir, "data") }

func (p *Postgres) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(p.bin, name), args...)
	cmd.Dir = p.opts.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Setpgid: true}
	return cmd
}

func (p *Postgres) initdb(ctx context.Context) error {
	args := []string{"-D", p.dataDir(), "-U", "wattpool", "--auth=trust", "-E", "UTF8", "--locale=C"}
	if !p.opts.Durable {
		args = append(args, "--no-sync")
	}
	out, err := p.command(ctx, "initdb", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb %s: %w: %s", p.dataDir(), err, lastLines(out, 5))
	}
	return nil
}

// Start starts the server (again, after Stop) and waits until it accepts
// connections.
func (p *Postgres) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return nil
	}
	args := []string{"-D", p.dataDir(), "-p", strconv.Itoa(p.opts.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + p.opts.Dir,
		"-c", "max_connections=200", "-c", "shared_buffers=128MB"}
	if !p.opts.Durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	// Not CommandContext: the server outlives the start-up context.
	cmd := p.command(context.Background(), "postgres", args...)
	// Kill the server if this process dies without stopping it, so tests
	// never leave clusters behind.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if p.opts.Log != nil {
		cmd.Stdout, cmd.Stderr = p.opts.Log, p.opts.Log
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p.cmd, p.exited = cmd, exited
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := p.ping(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			p.cmd = nil
			return fmt.Errorf("postgres (port %d, dir %s) %w; see its log: %v", p.opts.Port, p.opts.Dir, errExitedDuringStartup, err)
		case <-ctx.Done():
			p.stopLocked()
			return fmt.Errorf("start postgres: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stopLocked()
			return fmt.Errorf("postgres did not accept connections within 60 s: %w", err)
		}
	}
}

// ping connects to the port and checks that the server there is this
// cluster: clusters of parallel test processes share the superuser and
// trust authentication, so one that took this cluster's port would
// otherwise be taken for it while this one exits.
func (p *Postgres) ping(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, p.AdminURL())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var dataDir string
	if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&dataDir); err != nil {
		return fmt.Errorf("ask the server on port %d for its data directory: %w", p.opts.Port, err)
	}
	if filepath.Clean(dataDir) != p.dataDir() {
		return fmt.Errorf("port %d is served by another cluster (data directory %s, not %s)", p.opts.Port, dataDir, p.dataDir())
	}
	return nil
}

// Stop shuts the server down (fast mode) and waits for it to exit.
func (p *Postgres) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked()
}

func (p *Postgres) stopLocked() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

// Port is the server's TCP port.
func (p *Postgres) Port() int { return p.opts.Port }

// AdminURL is a connection URL for the "postgres" database as superuser.
func (p *Postgres) AdminURL() string { return p.URL("postgres") }

// URL is a connection URL for the named database as superuser.
func (p *Postgres) URL(database string) string {
	return fmt.Sprintf("postgres://wattpool@127.0.0.1:%d/%s?sslmode=disable", p.opts.Port, database)
}

// CreateDatabase creates a database (if it does not exist) and returns its URL.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) (string, error) {
	return CreateDatabase(ctx, p.AdminURL(), name)
}

// CreateDatabase creates database name on the server adminURL points at,
// unless it exists, and returns a URL for it.
func CreateDatabase(ctx context.Context, adminURL, name string) (string, error) {
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return "", fmt.Errorf("parse admin database URL: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", fmt.Errorf("connect to %s:%d as %s: %w", cfg.Host, cfg.Port, cfg.User, err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("look up database %s: %w", name, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", fmt.Errorf("create database %s: %w", name, err)
		}
	}
	return replaceDatabase(adminURL, name), nil
}

// replaceDatabase swaps the path of a postgres:// URL for /name.
func replaceDatabase(url, name string) string {
	q := ""
	if i := strings.IndexByte(url, '?'); i >= 0 {
		url, q = url[:i], url[i:]
	}
	scheme := strings.Index(url, "://")
	if scheme < 0 {
		return url + q
	}
	rest := url[scheme+3:]
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	return url[:scheme+3] + rest + "/" + name + q
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
