package allocator

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Price sources ([allocator.prices.<name>]):
//
//	source = "static"    value = 100000
//	source = "schedule"  default = 40, plus [[allocator.prices.<name>.schedule]]
//	                     from = "17:00", to = "21:00", price = 150 (UTC time of day)
//	source = "csv"       file = "prices.csv", column = "energy_usd_per_mwh"
//	source = "http"      url = "https://…", path = "data.price", timeout = "5s", refresh = "1m"
//
// Every value a source produces passes CheckPrice; a source never returns
// a value outside its input's bounds.

// Source kinds (SourceSpec.Source).
const (
	SourceStatic   = "static"
	SourceSchedule = "schedule"
	SourceCSV      = "csv"
	SourceHTTP     = "http"
)

// priceBounds are the sane ranges of each price input, both ends inclusive
// unless positive is set (then the minimum is excluded). They are wide on
// purpose: they catch garbage (a price in cents, an index instead of a
// price, a parse gone wrong), not market moves.
var priceBounds = map[string]struct {
	max      float64
	positive bool // 0 is meaningless: a zero BTC price makes mining worthless by accident
}{
	// A BTC price above $100M is a unit error (satoshis, cents), not a market.
	PriceBTCUSD: {max: 1e8, positive: true},
	// Energy and lease prices: a wholesale market's cap is a few thousand
	// $/MWh (ERCOT: $5,000); above $100,000/MWh the feed is wrong. Zero is a
	// real price. Negative wholesale prices exist, but the allocator does
	// not model being paid to burn power: a negative price is rejected, the
	// source's last good quote is kept and the stale guard holds the state
	// once it ages (feed such a market floored at 0 to keep deciding).
	PriceEnergy: {max: 1e5},
	PriceLease:  {max: 1e5},
}

// CheckPrice returns an error naming what is wrong with v as the price
// input name: NaN, infinite, negative, zero where zero is meaningless
// (btc_usd), or beyond the input's bound (btc_usd ≤ 1e8 USD, energy and
// lease ≤ 1e5 USD/MWh). An unknown input name is an error too.
func CheckPrice(name string, v float64) error {
	b, ok := priceBounds[name]
	if !ok {
		return fmt.Errorf("unknown price input %q (want %s, %s or %s)", name, PriceBTCUSD, PriceEnergy, PriceLease)
	}
	switch {
	case math.IsNaN(v):
		return fmt.Errorf("%s is NaN", name)
	case math.IsInf(v, 0):
		return fmt.Errorf("%s is infinite", name)
	case v < 0:
		return fmt.Errorf("%s %v is negative", name, v)
	case v == 0 && b.positive:
		return fmt.Errorf("%s is 0, want > 0", name)
	case v > b.max:
		return fmt.Errorf("%s %v is absurd: above %g", name, v, b.max)
	}
	return nil
}

// NewPriceSource builds the source spec describes for the price input name
// (PriceBTCUSD, PriceEnergy or PriceLease). Everything that can be checked
// before the first quote is checked here (a static value, the schedule's
// bands, the CSV file's rows, the HTTP URL), so a bad table fails at
// start-up, not an hour later. client is used by http sources (a default
// client when nil; each request is bounded by spec.Timeout either way).
func NewPriceSource(name string, spec SourceSpec, client *http.Client, log *zap.Logger) (PriceSource, error) {
	if _, ok := priceBounds[name]; !ok {
		return nil, fmt.Errorf("allocator.prices.%s: unknown price input (want %s, %s or %s)", name, PriceBTCUSD, PriceEnergy, PriceLease)
	}
	if log == nil {
		log = zap.NewNop()
	}
	where := "allocator.prices." + name
	switch spec.Source {
	case SourceStatic:
		if err := CheckPrice(name, spec.Value); err != nil {
			return nil, fmt.Errorf("%s.value: %w", where, err)
		}
		return staticSource{value: spec.Value}, nil
	case SourceSchedule:
		return newScheduleSource(name, spec)
	case SourceCSV:
		return newCSVSource(name, spec, log)
	case SourceHTTP:
		return newHTTPSource(name, spec, client, log)
	}
	return nil, fmt.Errorf("%s.source %q: want %s, %s, %s or %s", where, spec.Source, SourceStatic, SourceSchedule, SourceCSV, SourceHTTP)
}

// staticSource is a fixed price: always fresh, it never goes stale.
type staticSource struct{ value float64 }

func (s staticSource) Name() string { return "static " + strconv.FormatFloat(s.value, 'g', -1, 64) }

func (s staticSource) Quote(_ context.Context, now time.Time) (Quote, error) {
	return Quote{Value: s.value, At: now}, nil
}

// scheduleSource is a time-of-use tariff: bands of UTC time of day, Default
// outside them. Like a static price it is always fresh.
type scheduleSource struct {
	bands []ScheduleEntry // sorted by From, not overlapping
	def   float64
}

const day = 24 * time.Hour

func newScheduleSource(name string, spec SourceSpec) (PriceSource, error) {
	where := "allocator.prices." + name
	if err := CheckPrice(name, spec.Default); err != nil {
		return nil, fmt.Errorf("%s.default: %w", where, err)
	}
	bands := slices.Clone(spec.Schedule)
	for i, b := range bands {
		at := fmt.Sprintf("%s.schedule[%d]", where, i)
		if b.From < 0 || b.From >= day || b.To <= 0 || b.To > day {
			return nil, fmt.Errorf("%s: from %v to %v: want times of day within 00:00..24:00", at, b.From, b.To)
		}
		if b.From >= b.To {
			return nil, fmt.Errorf("%s: from %s is not before to %s (a band across midnight is two bands)", at, clock(b.From), clock(b.To))
		}
		if err := CheckPrice(name, b.Price); err != nil {
			return nil, fmt.Errorf("%s.price: %w", at, err)
		}
	}
	slices.SortFunc(bands, func(a, b ScheduleEntry) int { return cmp.Compare(a.From, b.From) })
	for i := 1; i < len(bands); i++ {
		if bands[i].From < bands[i-1].To {
			return nil, fmt.Errorf("%s.schedule: band %s-%s overlaps band %s-%s", where,
				clock(bands[i].From), clock(bands[i].To), clock(bands[i-1].From), clock(bands[i-1].To))
		}
	}
	return scheduleSource{bands: bands, def: spec.Default}, nil
}

// clock formats a time of day as HH:MM.
func clock(d time.Duration) string {
	return fmt.Sprintf("%02d:%02d", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

func (s scheduleSource) Name() string {
	return fmt.Sprintf("schedule (%d bands, default %g)", len(s.bands), s.def)
}

func (s scheduleSource) Quote(_ context.Context, now time.Time) (Quote, error) {
	u := now.UTC()
	tod := time.Duration(u.Hour())*time.Hour + time.Duration(u.Minute())*time.Minute +
		time.Duration(u.Second())*time.Second + time.Duration(u.Nanosecond())
	for _, b := range s.bands {
		if b.From <= tod && tod < b.To {
			return Quote{Value: b.Price, At: now}, nil
		}
	}
	return Quote{Value: s.def, At: now}, nil
}

// csvRow is one row of a CSV price file: the price in force from At until
// the next row's At.
type csvRow struct {
	At    time.Time
	Value float64
}

// maxCSVBytes bounds a CSV price file: a year of minute prices is ~20 MB.
const maxCSVBytes = 64 << 20

// parsePriceCSV reads a CSV price file: a header naming a "time" column
// (RFC 3339) and column (the price), in any order among other columns,
// then rows in strictly increasing time. Errors name the line and column.
func parsePriceCSV(r io.Reader, name, column string) ([]csvRow, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("empty file: want a header with time and " + column)
	}
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	timeCol, priceCol := -1, -1
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		switch h {
		case "time":
			if timeCol >= 0 {
				return nil, errors.New(`line 1: column "time" appears twice`)
			}
			timeCol = i
		case column:
			if priceCol >= 0 {
				return nil, fmt.Errorf("line 1: column %q appears twice", column)
			}
			priceCol = i
		}
	}
	if timeCol < 0 {
		return nil, errors.New(`line 1: no "time" column`)
	}
	if priceCol < 0 {
		return nil, fmt.Errorf("line 1: no %q column", column)
	}
	var rows []csvRow
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			// A *csv.ParseError names its line (and column) itself;
			// FieldPos is only valid after a successful Read.
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(rec[timeCol]))
		if err != nil {
			return nil, fmt.Errorf("line %d, column time: %q is not an RFC 3339 time", line, clipText(rec[timeCol]))
		}
		raw := strings.TrimSpace(rec[priceCol])
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d, column %s: %q is not a number", line, column, clipText(raw))
		}
		if err := CheckPrice(name, v); err != nil {
			return nil, fmt.Errorf("line %d, column %s: %w", line, column, err)
		}
		if n := len(rows); n > 0 && !t.After(rows[n-1].At) {
			return nil, fmt.Errorf("line %d, column time: %s is not after the previous row's %s", line,
				t.Format(time.RFC3339), rows[n-1].At.Format(time.RFC3339))
		}
		rows = append(rows, csvRow{At: t, Value: v})
	}
	if len(rows) == 0 {
		return nil, errors.New("no rows after the header")
	}
	return rows, nil
}

// clipText bounds what an error quotes of a file or a reply.
func clipText(s string) string {
	const n = 60
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// csvSource serves prices from a CSV file, each row in force until the
// next. The file is read again when its size or modification time changes,
// so an operator (or a cron job) can append tomorrow's prices while serve
// runs; a file that no longer parses is an error and the rows read before
// stay in use only through the caller's last good quote.
//
// Freshness (Quote.At): while a later row exists the price in force is
// planned, not aging, and At is now. The last row has no successor: it
// stays in force but counts as observed at its own time, so once it is
// older than stale_after the stale guard holds the state. A file whose
// newest row is hours old is therefore stale, however long it is.
type csvSource struct {
	name, path, column string
	log                *zap.Logger

	mu      sync.Mutex
	rows    []csvRow
	size    int64
	modTime time.Time
}

func newCSVSource(name string, spec SourceSpec, log *zap.Logger) (PriceSource, error) {
	where := "allocator.prices." + name
	if spec.File == "" {
		return nil, fmt.Errorf("%s.file: empty", where)
	}
	if spec.Column == "" {
		return nil, fmt.Errorf("%s.column: empty", where)
	}
	if spec.Column == "time" {
		return nil, fmt.Errorf(`%s.column: "time" is the time column, not a price`, where)
	}
	s := &csvSource{name: name, path: spec.File, column: spec.Column, log: log}
	if err := s.reload(); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return s, nil
}

func (s *csvSource) Name() string { return "csv " + s.path + ":" + s.column }

// reload reads the file again if it changed; s.mu is held or s is new.
func (s *csvSource) reload() error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("csv: %w", err)
	}
	if s.rows != nil && fi.Size() == s.size && fi.ModTime().Equal(s.modTime) {
		return nil
	}
	if fi.Size() > maxCSVBytes {
		return fmt.Errorf("csv %s: %d bytes, more than %d", s.path, fi.Size(), maxCSVBytes)
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("csv: %w", err)
	}
	rows, err := parsePriceCSV(bytes.NewReader(b), s.name, s.column)
	if err != nil {
		return fmt.Errorf("csv %s: %w", s.path, err)
	}
	if s.rows != nil {
		s.log.Info("allocator: price file reloaded", zap.String("price", s.name),
			zap.String("file", s.path), zap.Int("rows", len(rows)))
	}
	s.rows, s.size, s.modTime = rows, fi.Size(), fi.ModTime()
	return nil
}

func (s *csvSource) Quote(_ context.Context, now time.Time) (Quote, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(); err != nil {
		return Quote{}, fmt.Errorf("%s (%s): %w", s.name, s.Name(), err)
	}
	return quoteRows(s.rows, now, s.name, s.Name())
}

// quoteRows is the price rows hold at now (see csvSource for At).
func quoteRows(rows []csvRow, now time.Time, name, source string) (Quote, error) {
	// i is the first row after now; row i-1 is in force.
	i, _ := slices.BinarySearchFunc(rows, now, func(r csvRow, t time.Time) int {
		if r.At.After(t) {
			return 1
		}
		return -1
	})
	if i == 0 {
		return Quote{}, fmt.Errorf("%s (%s): no price before the first row at %s (now %s)", name, source,
			rows[0].At.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	r := rows[i-1]
	if i == len(rows) {
		return Quote{Value: r.Value, At: r.At}, nil
	}
	return Quote{Value: r.Value, At: now}, nil
}

// maxReplyBytes bounds an HTTP price reply.
const maxReplyBytes = 1 << 20

// httpSource polls a JSON endpoint. It asks at most once per Refresh
// (whatever the outcome, so a failing feed is not hammered) and serves the
// last good quote in between, with At the moment that reply arrived: the
// stale guard then sees a feed that stopped answering age.
type httpSource struct {
	name    string
	url     string // as requested
	display string // scheme://host/path: the query may hold an API key and is never logged
	path    []string
	timeout time.Duration
	refresh time.Duration
	client  *http.Client
	log     *zap.Logger

	mu      sync.Mutex
	asked   time.Time // when the last request was made (zero: never)
	good    Quote     // the last good quote (At zero: none)
	lastErr error     // the last request's error, served until the next
}

func newHTTPSource(name string, spec SourceSpec, client *http.Client, log *zap.Logger) (PriceSource, error) {
	where := "allocator.prices." + name
	if spec.URL == nil || (spec.URL.Scheme != "http" && spec.URL.Scheme != "https") || spec.URL.Host == "" {
		return nil, fmt.Errorf("%s.url: want an http:// or https:// URL", where)
	}
	if spec.Timeout <= 0 {
		return nil, fmt.Errorf("%s.timeout %v: want > 0", where, spec.Timeout)
	}
	if spec.Refresh < 0 {
		return nil, fmt.Errorf("%s.refresh %v: want >= 0", where, spec.Refresh)
	}
	path, err := splitJSONPath(spec.Path)
	if err != nil {
		return nil, fmt.Errorf("%s.path: %w", where, err)
	}
	if client == nil {
		client = &http.Client{}
	}
	d := url.URL{Scheme: spec.URL.Scheme, Host: spec.URL.Host, Path: spec.URL.Path}
	return &httpSource{
		name: name, url: spec.URL.String(), display: d.String(), path: path,
		timeout: spec.Timeout, refresh: spec.Refresh, client: client, log: log,
	}, nil
}

func (s *httpSource) Name() string { return "http " + s.display }

func (s *httpSource) Quote(ctx context.Context, now time.Time) (Quote, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.asked.IsZero() && now.Sub(s.asked) < s.refresh && now.Sub(s.asked) >= 0 {
		if s.lastErr != nil {
			return Quote{}, s.lastErr
		}
		return s.good, nil
	}
	s.asked = now
	v, err := s.fetch(ctx)
	if err != nil {
		s.lastErr = fmt.Errorf("%s (%s): %w", s.name, s.Name(), err)
		return Quote{}, s.lastErr
	}
	s.lastErr = nil
	s.good = Quote{Value: v, At: now}
	s.log.Debug("allocator: price fetched", zap.String("price", s.name),
		zap.String("source", s.Name()), zap.Float64("value", v))
	return s.good, nil
}

// fetch makes one request and extracts the price.
func (s *httpSource) fetch(ctx context.Context) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return 0, fmt.Errorf("request: %w", scrubURL(err))
	}
	req.Header.Set("Accept", "application/json")
	res, err := s.client.Do(req)
	if err != nil {
		return 0, requestError(ctx, err, s.timeout)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxReplyBytes+1))
	if err != nil {
		return 0, requestError(ctx, err, s.timeout)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return 0, fmt.Errorf("status %d: %q", res.StatusCode, clipText(strings.TrimSpace(string(body))))
	}
	if len(body) > maxReplyBytes {
		return 0, fmt.Errorf("reply larger than %d bytes", maxReplyBytes)
	}
	return extractPrice(body, s.path, s.name)
}

// requestError says why a request failed, naming a timeout as such. The
// URL is left out: it is in the source's name already, without its query.
func requestError(ctx context.Context, err error, timeout time.Duration) error {
	var ne net.Error
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("no reply within the timeout %v: %w", timeout, scrubURL(err))
	}
	return fmt.Errorf("request failed: %w", scrubURL(err))
}

// scrubURL drops the URL (and so any API key in its query) from a
// *url.Error, keeping the cause.
func scrubURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// splitJSONPath splits a dotted path ("data.price", "prices.0.usd"). The
// empty path is the whole reply (an endpoint that answers a bare number).
func splitJSONPath(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	segs := strings.Split(path, ".")
	for i, s := range segs {
		if s == "" {
			return nil, fmt.Errorf("%q: segment %d is empty", path, i+1)
		}
	}
	return segs, nil
}

// extractPrice decodes a JSON reply and returns the checked price at path.
// The value may be a JSON number or a string holding one ("65000.5"), as
// some exchanges send; anything else is an error naming what was found.
func extractPrice(body []byte, path []string, name string) (float64, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return 0, errors.New("empty reply, want JSON")
	}
	if trimmed[0] == '<' {
		return 0, fmt.Errorf("HTML/XML reply, want JSON: %q", clipText(string(trimmed)))
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return 0, fmt.Errorf("reply is not JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return 0, errors.New("reply is not one JSON document: data after it")
	}
	v, err := lookupJSON(doc, path)
	if err != nil {
		return 0, err
	}
	var f float64
	where := "reply"
	if len(path) > 0 {
		where = "path " + strings.Join(path, ".")
	}
	switch x := v.(type) {
	case json.Number:
		f, err = strconv.ParseFloat(string(x), 64)
		if err != nil {
			return 0, fmt.Errorf("%s: number %s: %v", where, clipText(string(x)), err)
		}
	case string:
		f, err = strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, fmt.Errorf("%s: string %q is not a number", where, clipText(x))
		}
	case nil:
		return 0, fmt.Errorf("%s is null, want a number", where)
	default:
		return 0, fmt.Errorf("%s is a %s, want a number", where, jsonKind(v))
	}
	if err := CheckPrice(name, f); err != nil {
		return 0, fmt.Errorf("%s: %w", where, err)
	}
	return f, nil
}

// lookupJSON walks path through a decoded document: object keys by name,
// array elements by a decimal index.
func lookupJSON(doc any, path []string) (any, error) {
	v := doc
	for i, seg := range path {
		at := strings.Join(path[:i], ".")
		if at == "" {
			at = "the reply"
		}
		switch x := v.(type) {
		case map[string]any:
			next, ok := x[seg]
			if !ok {
				return nil, fmt.Errorf("path %s: %s has no key %q", strings.Join(path, "."), at, clipText(seg))
			}
			v = next
		case []any:
			n, err := strconv.Atoi(seg)
			if err != nil || n < 0 || strings.TrimLeft(seg, "0123456789") != "" {
				return nil, fmt.Errorf("path %s: %s is an array, and %q is not an index", strings.Join(path, "."), at, clipText(seg))
			}
			if n >= len(x) {
				return nil, fmt.Errorf("path %s: %s has %d elements, no index %d", strings.Join(path, "."), at, len(x), n)
			}
			v = x[n]
		default:
			return nil, fmt.Errorf("path %s: %s is a %s, cannot take %q", strings.Join(path, "."), at, jsonKind(v), clipText(seg))
		}
	}
	return v, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}
