// Package haproxy runs the real HAProxy for tests, on the configuration
// the project ships (deploy/haproxy.cfg): Render rewrites only the
// frontend's bind address and the backend's server addresses and check
// ports, so every other setting the test exercises (send-proxy-v2, the
// /readyz check, retries and redispatch, timeouts) is the shipped one.
package haproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is one wattpool instance behind the balancer.
type Server struct {
	// Name is the server's name in HAProxy (logs, the stats socket).
	Name string
	// Addr is the instance's PROXY-protocol stratum listener, host:port.
	Addr string
	// CheckPort is the port of the instance's HTTP server (/readyz).
	CheckPort int
}

// Params are what Render puts into the shipped configuration.
type Params struct {
	// Bind is the frontend's address, host:port.
	Bind string
	// Servers replace the shipped server lines; each takes the options of
	// the first shipped one.
	Servers []Server
	// StatsSocket, when set, adds an admin socket at this path to the
	// global section (tests read server states through it); the shipped
	// file has none.
	StatsSocket string
}

// ShippedPath returns the path of deploy/haproxy.cfg in this source tree.
func ShippedPath() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("haproxy: cannot locate the source tree")
	}
	p := filepath.Join(filepath.Dir(file), "..", "..", "deploy", "haproxy.cfg")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("haproxy: shipped configuration: %w", err)
	}
	return p, nil
}

// Render returns src with the frontend "stratum" bound to p.Bind and
// the server lines of backend "wattpool" replaced by p.Servers. It fails
// when the file no longer has the sections and lines it rewrites, so a
// reshaped deploy/haproxy.cfg cannot silently go untested.
func Render(src []byte, p Params) ([]byte, error) {
	if p.Bind == "" || len(p.Servers) == 0 {
		return nil, errors.New("haproxy: Render needs a bind address and at least one server")
	}
	var out bytes.Buffer
	section := ""
	binds, servers := 0, 0
	sc := bufio.NewScanner(bytes.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		fields := strings.Fields(trimmed)
		if len(fields) > 0 && line[0] != ' ' && line[0] != '\t' && !strings.HasPrefix(trimmed, "#") {
			section = strings.Join(fields, " ")
			out.WriteString(line + "\n")
			if fields[0] == "global" && p.StatsSocket != "" {
				fmt.Fprintf(&out, "    stats socket %s mode 600 level admin\n", p.StatsSocket)
			}
			continue
		}
		switch {
		case section == "frontend stratum" && len(fields) >= 2 && fields[0] == "bind":
			binds++
			out.WriteString(strings.TrimRight("    bind "+p.Bind+" "+strings.Join(fields[2:], " "), " ") + "\n")
		case section == "backend wattpool" && len(fields) >= 3 && fields[0] == "server":
			servers++
			if servers > 1 {
				continue // the first shipped server line stands for all
			}
			opts, err := serverOptions(fields[3:])
			if err != nil {
				return nil, fmt.Errorf("haproxy: line %d: %w", n, err)
			}
			for _, s := range p.Servers {
				fmt.Fprintf(&out, "    server %s %s %s port %d\n", s.Name, s.Addr, strings.Join(opts, " "), s.CheckPort)
			}
		default:
			out.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("haproxy: read configuration: %w", err)
	}
	if binds != 1 || servers == 0 {
		return nil, fmt.Errorf("haproxy: configuration has %d bind lines in frontend stratum (want 1) and %d server lines in backend wattpool (want at least 1)", binds, servers)
	}
	return out.Bytes(), nil
}

// serverOptions returns a server line's options without its "port N"
// (Render sets each server's own check port); the line must check.
func serverOptions(opts []string) ([]string, error) {
	var out []string
	check := false
	for i := 0; i < len(opts); i++ {
		switch opts[i] {
		case "port":
			i++ // its value
			continue
		case "check":
			check = true
		}
		out = append(out, opts[i])
	}
	if !check {
		return nil, errors.New("server line without check: the balancer would never see /readyz")
	}
	return out, nil
}

// Binary returns the haproxy executable (PATH, then /usr/sbin).
func Binary() (string, error) {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/haproxy", "/usr/local/sbin/haproxy"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("haproxy not found (run .ci/ensure-haproxy as root, or apt-get install haproxy)")
}

// Check runs haproxy -c on a configuration and returns its complaint.
func Check(ctx context.Context, bin string, cfg []byte) error {
	dir, err := os.MkdirTemp("", "haproxy-check-")
	if err != nil {
		return fmt.Errorf("haproxy check: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		return fmt.Errorf("haproxy check: %w", err)
	}
	out, err := exec.CommandContext(ctx, bin, "-c", "-f", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("haproxy -c: %w\n%s", err, out)
	}
	return nil
}

// Proc is a running haproxy.
type Proc struct {
	cmd    *exec.Cmd
	socket string
	done   chan struct{}
	err    error
	logMu  sync.Mutex
	log    bytes.Buffer
}

// Start writes cfg into dir and runs haproxy on it in the foreground
// (-db) until Stop. Its log is kept for Log.
func Start(bin, dir string, cfg []byte, statsSocket string) (*Proc, error) {
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		return nil, fmt.Errorf("haproxy: %w", err)
	}
	p := &Proc{socket: statsSocket, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "-db", "-f", path)
	w := &lockedWriter{mu: &p.logMu, b: &p.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("haproxy: start: %w", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

// Stop ends haproxy (SIGTERM, then SIGKILL after 5s).
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Exited reports whether haproxy stopped, with its error.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Log returns what haproxy wrote so far.
func (p *Proc) Log() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// ServerStat is one server's line of "show stat".
type ServerStat struct {
	// Status is "UP", "DOWN", "MAINT", "UP 1/2" while going down, ...
	Status string
	// Sessions is the server's open sessions (scur).
	Sessions int
}

// Stats asks the stats socket for the servers of backend.
func (p *Proc) Stats(backend string) (map[string]ServerStat, error) {
	if p.socket == "" {
		return nil, errors.New("haproxy: no stats socket configured")
	}
	out, err := socketCommand(p.socket, "show stat\n")
	if err != nil {
		return nil, err
	}
	return parseStats(out, backend)
}

// parseStats reads the CSV of "show stat" (a "# " header line naming
// the columns, then one line per proxy and server).
func parseStats(out, backend string) (map[string]ServerStat, error) {
	stats := map[string]ServerStat{}
	status, scur := -1, -1
	for _, line := range strings.Split(out, "\n") {
		if h, ok := strings.CutPrefix(line, "# "); ok {
			for i, c := range strings.Split(h, ",") {
				switch c {
				case "status":
					status = i
				case "scur":
					scur = i
				}
			}
			continue
		}
		f := strings.Split(line, ",")
		if status < 0 || scur < 0 || len(f) <= max(status, scur) || f[0] != backend || f[1] == "BACKEND" || f[1] == "FRONTEND" {
			continue
		}
		n, err := strconv.Atoi(f[scur])
		if err != nil {
			return nil, fmt.Errorf("haproxy stats: server %s scur %q: %w", f[1], f[scur], err)
		}
		stats[f[1]] = ServerStat{Status: f[status], Sessions: n}
	}
	if status < 0 || scur < 0 {
		return nil, fmt.Errorf("haproxy stats: no header with status and scur in %q", out)
	}
	return stats, nil
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(b)
}
