package fleet

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// Miner is one machine of the inventory.
type Miner struct {
	// Address is the firmware API's host:port (4028 for LuxOS and cgminer,
	// the HTTP port for Antminer CGI, 4433 for Whatsminer API v3).
	Address string `json:"address"`
	// Driver names the firmware driver ("luxos", "antminer", "whatsminer",
	// "cgminer").
	Driver string `json:"driver"`
	// Group is the [[allocator.group]] (and stratum.group) the miner
	// belongs to.
	Group string `json:"group"`
	// User is the firmware account (Antminer "root", Whatsminer "super"
	// when empty).
	User string `json:"user,omitempty"`
	// PasswordEnv names the environment variable the password was read
	// from; it is safe to show, the password is not.
	PasswordEnv string `json:"password_env,omitempty"`
	// Line is the inventory line the miner came from (0 when built in code).
	Line int `json:"line,omitempty"`

	// pw holds the password behind a pointer: fmt prints nested pointers as
	// addresses, so even a %+v of a struct holding a Miner cannot show it.
	pw *secret
}

// secret is a password that refuses to be printed.
type secret struct{ v string }

// Format prints a placeholder for every verb.
func (s *secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "[redacted]") }

// String keeps the password out of logs and records.
func (s *secret) String() string { return "[redacted]" }

// GoString keeps it out of %#v.
func (s *secret) GoString() string { return "[redacted]" }

// MarshalJSON keeps it out of JSON.
func (s *secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// WithPassword returns a copy of m carrying password (for callers that
// build miners in code rather than from an inventory).
func (m Miner) WithPassword(password string) Miner {
	m.pw = &secret{v: password}
	return m
}

// Password returns the miner's password ("" when none): drivers need it
// to authenticate, nothing else should ask.
func (m Miner) Password() string {
	if m.pw == nil {
		return ""
	}
	return m.pw.v
}

// String names the miner without its password.
func (m Miner) String() string {
	return fmt.Sprintf("%s (%s, group %s)", m.Address, m.Driver, m.Group)
}

// GoString is String: %#v must not reveal the password either.
func (m Miner) GoString() string { return "fleet.Miner{" + m.String() + "}" }

// Format routes every verb through String, so %v, %+v and %#v of a Miner
// (or a slice of them) never print the password field.
func (m Miner) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = io.WriteString(f, strconv.Quote(m.String()))
		return
	}
	_, _ = io.WriteString(f, m.String())
}

// MarshalJSON writes the exported fields only.
func (m Miner) MarshalJSON() ([]byte, error) {
	type plain Miner // no methods: the default encoding of exported fields
	p := plain(m)
	p.pw = nil
	return json.Marshal(p)
}

// Inventory columns.
const (
	colAddress     = "address"
	colDriver      = "driver"
	colGroup       = "group"
	colUser        = "user"
	colPasswordEnv = "password_env"
)

// maxInventoryMiners bounds an inventory: more lines than any site has is
// a wrong file, not a fleet.
const maxInventoryMiners = 1_000_000

// ReadInventory reads the miner inventory: CSV with a header naming the
// columns (any order) address, driver, group and optionally user and
// password_env. Lines starting with # are comments. lookup resolves
// password_env names (os.LookupEnv in production). Errors name the line
// and column: a malformed line, an unknown driver, an unset password
// variable, a bad host:port, a duplicate address.
func ReadInventory(r io.Reader, lookup func(string) (string, bool)) ([]Miner, error) {
	if lookup == nil {
		return nil, errors.New("inventory: nil environment lookup")
	}
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("inventory: empty file (want a header: address,driver,group[,user,password_env])")
	}
	if err != nil {
		return nil, fmt.Errorf("inventory header: %w", err)
	}
	hline, _ := cr.FieldPos(0)
	cols := map[string]int{}
	for i, name := range header {
		name = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(name, "\ufeff")))
		switch name {
		case colAddress, colDriver, colGroup, colUser, colPasswordEnv:
		default:
			return nil, fmt.Errorf("inventory line %d, column %d: unknown column %q (want address, driver, group, user, password_env)", hline, i+1, name)
		}
		if _, dup := cols[name]; dup {
			return nil, fmt.Errorf("inventory line %d, column %d: column %q given twice", hline, i+1, name)
		}
		cols[name] = i
	}
	for _, need := range []string{colAddress, colDriver, colGroup} {
		if _, ok := cols[need]; !ok {
			return nil, fmt.Errorf("inventory line %d: missing column %q", hline, need)
		}
	}
	var out []Miner
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// FieldPos is only valid after a successful Read; the csv
			// error carries the line and column itself.
			return nil, fmt.Errorf("inventory: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			return nil, fmt.Errorf("inventory line %d: %d fields, the header has %d", line, len(rec), len(header))
		}
		if len(out) >= maxInventoryMiners {
			return nil, fmt.Errorf("inventory line %d: more than %d miners", line, maxInventoryMiners)
		}
		field := func(name string) (string, int) {
			i, ok := cols[name]
			if !ok {
				return "", 0
			}
			return strings.TrimSpace(rec[i]), i + 1
		}
		bad := func(name string, format string, args ...any) error {
			_, col := field(name)
			if col == 0 {
				return fmt.Errorf("inventory line %d (no %s column): %s", line, name, fmt.Sprintf(format, args...))
			}
			return fmt.Errorf("inventory line %d, column %d (%s): %s", line, col, name, fmt.Sprintf(format, args...))
		}
		m := Miner{Line: line}
		m.Address, _ = field(colAddress)
		if err := checkAddress(m.Address); err != nil {
			return nil, bad(colAddress, "%v", err)
		}
		key := strings.ToLower(m.Address)
		if first, dup := seen[key]; dup {
			return nil, bad(colAddress, "address %s already listed on line %d", m.Address, first)
		}
		seen[key] = line
		m.Driver, _ = field(colDriver)
		spec, ok := driverSpecs[m.Driver]
		if !ok {
			return nil, bad(colDriver, "unknown driver %q (known: %s)", m.Driver, strings.Join(DriverNames(), ", "))
		}
		m.Group, _ = field(colGroup)
		if m.Group == "" {
			return nil, bad(colGroup, "empty group")
		}
		m.User, _ = field(colUser)
		m.PasswordEnv, _ = field(colPasswordEnv)
		if m.PasswordEnv != "" {
			if !validEnvName(m.PasswordEnv) {
				return nil, bad(colPasswordEnv, "%q is not an environment variable name (letters, digits, _; not starting with a digit)", m.PasswordEnv)
			}
			pw, set := lookup(m.PasswordEnv)
			if !set {
				return nil, bad(colPasswordEnv, "environment variable %s is not set", m.PasswordEnv)
			}
			if pw == "" {
				return nil, bad(colPasswordEnv, "environment variable %s is empty", m.PasswordEnv)
			}
			m.pw = &secret{v: pw}
		} else if spec.needsPassword {
			return nil, bad(colPasswordEnv, "driver %s authenticates: name the variable holding its password", m.Driver)
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, errors.New("inventory: no miners after the header")
	}
	return out, nil
}

// checkAddress accepts host:port with a non-empty host and a port 1..65535.
func checkAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "" || strings.ContainsAny(host, " \t/") {
		return fmt.Errorf("address %q: bad host", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("address %q: port %q: want 1..65535", addr, port)
	}
	return nil
}

func validEnvName(s string) bool {
	for i, c := range s {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// Groups returns the miners of group g, in inventory order.
func Groups(miners []Miner) map[string][]Miner {
	out := map[string][]Miner{}
	for _, m := range miners {
		out[m.Group] = append(out[m.Group], m)
	}
	return out
}
