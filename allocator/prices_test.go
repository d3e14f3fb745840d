package allocator

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

func TestCheckPrice(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    float64
		want string // "" = accepted
	}{
		{PriceBTCUSD, 65000, ""},
		{PriceBTCUSD, 1e8, ""},
		{PriceBTCUSD, 1e8 + 1, "absurd"},
		{PriceBTCUSD, 0, "is 0"},
		{PriceBTCUSD, -1, "negative"},
		{PriceBTCUSD, math.NaN(), "NaN"},
		{PriceBTCUSD, math.Inf(1), "infinite"},
		{PriceEnergy, 0, ""},
		{PriceEnergy, 42.5, ""},
		{PriceEnergy, 1e5, ""},
		{PriceEnergy, 100001, "absurd"},
		{PriceEnergy, -0.01, "negative"},
		{PriceEnergy, math.Inf(-1), "infinite"},
		{PriceLease, 0, ""},
		{PriceLease, 2e5, "absurd"},
		{"gold_usd", 1, "unknown price input"},
	} {
		err := CheckPrice(tc.name, tc.v)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckPrice(%s, %v) = %v, want %q", tc.name, tc.v, err, tc.want)
		}
	}
}

func TestStaticSource(t *testing.T) {
	src, err := NewPriceSource(PriceBTCUSD, SourceSpec{Source: "static", Value: 100000}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	q, err := src.Quote(context.Background(), now)
	if err != nil || q.Value != 100000 || !q.At.Equal(now) {
		t.Fatalf("quote %+v %v", q, err)
	}
	for _, v := range []float64{0, -5, math.NaN(), 2e8} {
		if _, err := NewPriceSource(PriceBTCUSD, SourceSpec{Source: "static", Value: v}, nil, nil); err == nil ||
			!strings.Contains(err.Error(), "allocator.prices.btc_usd.value") {
			t.Errorf("static %v: %v", v, err)
		}
	}
	if _, err := NewPriceSource(PriceBTCUSD, SourceSpec{Source: "oracle"}, nil, nil); err == nil ||
		!strings.Contains(err.Error(), `source "oracle"`) {
		t.Errorf("unknown source: %v", err)
	}
	if _, err := NewPriceSource("hashprice", SourceSpec{Source: "static", Value: 1}, nil, nil); err == nil {
		t.Error("unknown input accepted")
	}
}

func TestScheduleSource(t *testing.T) {
	spec := SourceSpec{Source: "schedule", Default: 40, Schedule: []ScheduleEntry{
		// Given out of order on purpose.
		{From: 17 * time.Hour, To: 21 * time.Hour, Price: 150},
		{From: 0, To: 6 * time.Hour, Price: 25},
		{From: 21 * time.Hour, To: 24 * time.Hour, Price: 60},
	}}
	src, err := NewPriceSource(PriceEnergy, spec, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	paris := time.FixedZone("CEST", 2*3600)
	for _, tc := range []struct {
		at   time.Time
		want float64
	}{
		{day, 25},
		{day.Add(6*time.Hour - time.Nanosecond), 25},
		{day.Add(6 * time.Hour), 40},
		{day.Add(12 * time.Hour), 40},
		{day.Add(17 * time.Hour), 150},
		{day.Add(20*time.Hour + 59*time.Minute), 150},
		{day.Add(21 * time.Hour), 60},
		{day.Add(23*time.Hour + 59*time.Minute + 59*time.Second), 60},
		// 19:30 in Paris is 17:30 UTC: bands are UTC whatever the zone.
		{time.Date(2026, 6, 1, 19, 30, 0, 0, paris), 150},
		// 05:00 in Paris is 03:00 UTC.
		{time.Date(2026, 6, 2, 5, 0, 0, 0, paris), 25},
	} {
		q, err := src.Quote(context.Background(), tc.at)
		if err != nil || q.Value != tc.want || !q.At.Equal(tc.at) {
			t.Errorf("at %v: %+v %v, want %v", tc.at, q, err, tc.want)
		}
	}
	for name, tc := range map[string]struct {
		spec SourceSpec
		want string
	}{
		"overlap": {SourceSpec{Source: "schedule", Default: 1, Schedule: []ScheduleEntry{
			{From: 17 * time.Hour, To: 21 * time.Hour, Price: 1}, {From: 20 * time.Hour, To: 22 * time.Hour, Price: 2}}}, "20:00-22:00 overlaps band 17:00-21:00"},
		"reversed": {SourceSpec{Source: "schedule", Default: 1, Schedule: []ScheduleEntry{
			{From: 22 * time.Hour, To: 2 * time.Hour, Price: 1}}}, "schedule[0]: from 22:00 is not before to 02:00"},
		"past midnight": {SourceSpec{Source: "schedule", Default: 1, Schedule: []ScheduleEntry{
			{From: 22 * time.Hour, To: 25 * time.Hour, Price: 1}}}, "schedule[0]"},
		"bad price": {SourceSpec{Source: "schedule", Default: 1, Schedule: []ScheduleEntry{
			{From: time.Hour, To: 2 * time.Hour, Price: -3}}}, "schedule[0].price: energy_usd_per_mwh -3 is negative"},
		"bad default": {SourceSpec{Source: "schedule", Default: math.NaN()}, "default: energy_usd_per_mwh is NaN"},
	} {
		_, err := NewPriceSource(PriceEnergy, tc.spec, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCSVSource(t *testing.T) {
	p := writeFile(t, "prices.csv", "note,time,energy_usd_per_mwh\n"+
		"night,2026-01-01T00:00:00Z,30\n"+
		"peak,2026-01-01T17:00:00Z,150.5\n"+
		"late,2026-01-01T21:00:00+01:00,45\n") // 20:00 UTC
	src, err := NewPriceSource(PriceEnergy, SourceSpec{Source: "csv", File: p, Column: "energy_usd_per_mwh"}, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(src.Name(), "prices.csv:energy_usd_per_mwh") {
		t.Errorf("name %q", src.Name())
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		now    time.Time
		want   float64
		wantAt time.Time // zero: now
		err    string
	}{
		{now: t0.Add(-time.Second), err: "no price before the first row at 2026-01-01T00:00:00Z"},
		{now: t0, want: 30},
		{now: t0.Add(16*time.Hour + 59*time.Minute), want: 30},
		{now: t0.Add(17 * time.Hour), want: 150.5},
		{now: t0.Add(20*time.Hour - time.Nanosecond), want: 150.5},
		// The last row: in force, but as old as the row itself.
		{now: t0.Add(20 * time.Hour), want: 45, wantAt: t0.Add(20 * time.Hour)},
		{now: t0.Add(48 * time.Hour), want: 45, wantAt: t0.Add(20 * time.Hour)},
	} {
		q, err := src.Quote(context.Background(), tc.now)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "energy_usd_per_mwh (csv ") {
				t.Errorf("at %v: %+v %v, want error %q", tc.now, q, err, tc.err)
			}
			continue
		}
		wantAt := tc.wantAt
		if wantAt.IsZero() {
			wantAt = tc.now
		}
		if err != nil || q.Value != tc.want || !q.At.Equal(wantAt) {
			t.Errorf("at %v: %+v %v, want %v at %v", tc.now, q, err, tc.want, wantAt)
		}
	}

	// Appending a row is picked up: the 20:00 row is no longer the last,
	// so it is fresh again.
	text := "note,time,energy_usd_per_mwh\nnight,2026-01-01T00:00:00Z,30\npeak,2026-01-01T17:00:00Z,150.5\n" +
		"late,2026-01-01T21:00:00+01:00,45\nnext,2026-01-02T00:00:00Z,35\n"
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour) // a modification time that surely differs
	if err := os.Chtimes(p, future, future); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(23 * time.Hour)
	if q, err := src.Quote(context.Background(), now); err != nil || q.Value != 45 || !q.At.Equal(now) {
		t.Errorf("after append: %+v %v", q, err)
	}
	// A file broken later is an error (the caller keeps its last good quote).
	if err := os.WriteFile(p, []byte(text+"bad,2026-01-03T00:00:00Z,NaN\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Quote(context.Background(), now); err == nil || !strings.Contains(err.Error(), "line 6, column energy_usd_per_mwh: energy_usd_per_mwh is NaN") {
		t.Errorf("broken file: %v", err)
	}
}

func TestCSVSourceRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		text, column, want string
	}{
		"no time column":  {"when,p\n2026-01-01T00:00:00Z,1\n", "p", `line 1: no "time" column`},
		"no price column": {"time,q\n2026-01-01T00:00:00Z,1\n", "p", `line 1: no "p" column`},
		"empty":           {"", "p", "empty file"},
		"header only":     {"time,p\n", "p", "no rows"},
		"bad time":        {"time,p\n2026-01-01 00:00,1\n", "p", `line 2, column time: "2026-01-01 00:00" is not an RFC 3339 time`},
		"bad number":      {"time,p\n2026-01-01T00:00:00Z,1\n2026-01-01T01:00:00Z,12,5\n", "p", "line 3"},
		"not a number":    {"time,p\n2026-01-01T00:00:00Z,abc\n", "p", `line 2, column p: "abc" is not a number`},
		"negative":        {"time,p\n2026-01-01T00:00:00Z,-4\n", "p", "line 2, column p: energy_usd_per_mwh -4 is negative"},
		"absurd":          {"time,p\n2026-01-01T00:00:00Z,1e9\n", "p", "absurd"},
		"infinite":        {"time,p\n2026-01-01T00:00:00Z,+Inf\n", "p", "infinite"},
		"out of order": {"time,p\n2026-01-01T01:00:00Z,1\n2026-01-01T00:00:00Z,2\n", "p",
			"line 3, column time: 2026-01-01T00:00:00Z is not after the previous row's 2026-01-01T01:00:00Z"},
		"duplicate time": {"time,p\n2026-01-01T01:00:00Z,1\n2026-01-01T01:00:00Z,2\n", "p", "line 3, column time"},
		"column twice":   {"time,p,p\n2026-01-01T01:00:00Z,1,1\n", "p", `column "p" appears twice`},
		"time as price":  {"time\n2026-01-01T01:00:00Z\n", "time", `"time" is the time column`},
	} {
		p := writeFile(t, "x.csv", tc.text)
		_, err := NewPriceSource(PriceEnergy, SourceSpec{Source: "csv", File: p, Column: tc.column}, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "allocator.prices.energy_usd_per_mwh") {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	if _, err := NewPriceSource(PriceEnergy, SourceSpec{Source: "csv", File: filepath.Join(t.TempDir(), "nope.csv"), Column: "p"}, nil, nil); err == nil ||
		!strings.Contains(err.Error(), "nope.csv") {
		t.Errorf("missing file: %v", err)
	}
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestHTTPSource covers good replies (number, numeric string, array index)
// and every way a feed goes wrong; each failure is an error naming the
// input, the source (without its query) and the cause.
func TestHTTPSource(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("apikey") != "k3y" {
			http.Error(w, "no key", http.StatusForbidden)
			return
		}
		switch r.URL.Path {
		case "/number":
			w.Write([]byte(`{"data":{"price":65123.5}}`))
		case "/string":
			w.Write([]byte(`{"data":{"price":" 65000.25 "}}`))
		case "/array":
			w.Write([]byte(`{"prices":[{"usd":1},{"usd":"42.5"}]}`))
		case "/bare":
			w.Write([]byte(`  70000 `))
		case "/html":
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("\n<!DOCTYPE html><html><body>Cloudflare: checking your browser</body></html>"))
		case "/500":
			http.Error(w, "upstream down", http.StatusInternalServerError)
		case "/nan":
			w.Write([]byte(`{"data":{"price":"NaN"}}`))
		case "/negative":
			w.Write([]byte(`{"data":{"price":-12}}`))
		case "/zero":
			w.Write([]byte(`{"data":{"price":0}}`))
		case "/absurd":
			w.Write([]byte(`{"data":{"price":6512350000000}}`))
		case "/huge":
			w.Write([]byte(`{"data":{"price":1e999}}`))
		case "/null":
			w.Write([]byte(`{"data":{"price":null}}`))
		case "/bool":
			w.Write([]byte(`{"data":{"price":true}}`))
		case "/object":
			w.Write([]byte(`{"data":{"price":{"usd":1}}}`))
		case "/garbage":
			w.Write([]byte(`{"data":{"price":`))
		case "/two":
			w.Write([]byte(`{"data":{"price":1}} {"x":2}`))
		case "/empty":
		case "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		path, jsonPath string
		want           float64
		err            string
	}{
		{"/number", "data.price", 65123.5, ""},
		{"/string", "data.price", 65000.25, ""},
		{"/array", "prices.1.usd", 42.5, ""},
		{"/array", "prices.0.usd", 1, ""},
		{"/bare", "", 70000, ""},
		{"/html", "data.price", 0, "HTML/XML reply, want JSON"},
		{"/500", "data.price", 0, `status 500: "upstream down"`},
		{"/nan", "data.price", 0, "path data.price: btc_usd is NaN"},
		{"/negative", "data.price", 0, "path data.price: btc_usd -12 is negative"},
		{"/zero", "data.price", 0, "btc_usd is 0"},
		{"/absurd", "data.price", 0, "absurd"},
		{"/huge", "data.price", 0, "value out of range"},
		{"/null", "data.price", 0, "path data.price is null"},
		{"/bool", "data.price", 0, "path data.price is a boolean"},
		{"/object", "data.price", 0, "path data.price is a object"},
		{"/garbage", "data.price", 0, "reply is not JSON"},
		{"/two", "data.price", 0, "not one JSON document"},
		{"/empty", "data.price", 0, "empty reply"},
		{"/number", "data.usd", 0, `path data.usd: data has no key "usd"`},
		{"/number", "data.price.x", 0, `path data.price.x: data.price is a number`},
		{"/array", "prices.2.usd", 0, "path prices.2.usd: prices has 2 elements, no index 2"},
		{"/array", "prices.-1.usd", 0, `prices is an array, and "-1" is not an index`},
		{"/array", "prices.x", 0, `"x" is not an index`},
		{"/slow", "data.price", 0, "no reply within the timeout 200ms"},
	} {
		// Only the slow endpoint is meant to time out: the others get a
		// timeout a loaded CI machine cannot miss.
		timeout := 10 * time.Second
		if tc.path == "/slow" {
			timeout = 200 * time.Millisecond
		}
		spec := SourceSpec{Source: "http", URL: mustURL(t, srv.URL+tc.path+"?apikey=k3y"), Path: tc.jsonPath,
			Timeout: timeout, Refresh: time.Minute}
		src, err := NewPriceSource(PriceBTCUSD, spec, srv.Client(), zaptest.NewLogger(t))
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		q, err := src.Quote(ctx, now)
		if tc.err == "" {
			if err != nil || q.Value != tc.want || !q.At.Equal(now) {
				t.Errorf("%s %s: %+v %v, want %v", tc.path, tc.jsonPath, q, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s %s: %+v %v, want error %q", tc.path, tc.jsonPath, q, err, tc.err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "btc_usd (http "+srv.URL+tc.path+"): ") {
			t.Errorf("%s: error %q does not name the input and source", tc.path, err)
		}
		if strings.Contains(err.Error(), "k3y") {
			t.Errorf("%s: error %q leaks the URL's query", tc.path, err)
		}
	}
}

// TestHTTPSourceRefresh: the endpoint is asked at most once per refresh;
// in between the last good quote is served with the time its reply came.
// A failure is served until the next refresh too, and the quote after it
// carries the new time.
func TestHTTPSourceRefresh(t *testing.T) {
	var hits atomic.Int32
	var fail atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		if fail.Load() {
			http.Error(w, "<html>502</html>", http.StatusBadGateway)
			return
		}
		w.Write([]byte(`{"p":` + string(rune('0'+n)) + `0}`)) // 10, 20, 30...
	}))
	defer srv.Close()
	src, err := NewPriceSource(PriceEnergy, SourceSpec{Source: "http", URL: mustURL(t, srv.URL), Path: "p",
		Timeout: time.Second, Refresh: time.Minute}, srv.Client(), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		at     time.Duration
		fail   bool
		value  float64
		atWant time.Duration
		err    bool
		hits   int32
	}{
		{at: 0, value: 10, atWant: 0, hits: 1},
		{at: 30 * time.Second, value: 10, atWant: 0, hits: 1},
		{at: 59 * time.Second, value: 10, atWant: 0, hits: 1},
		{at: 60 * time.Second, value: 20, atWant: 60 * time.Second, hits: 2},
		{at: 120 * time.Second, fail: true, err: true, hits: 3},
		{at: 150 * time.Second, err: true, hits: 3}, // the failure is not retried before the refresh
		{at: 180 * time.Second, value: 40, atWant: 180 * time.Second, hits: 4},
	}
	for i, s := range steps {
		fail.Store(s.fail)
		q, err := src.Quote(ctx, t0.Add(s.at))
		if s.err != (err != nil) || (!s.err && (q.Value != s.value || !q.At.Equal(t0.Add(s.atWant)))) || hits.Load() != s.hits {
			t.Errorf("step %d at %v: %+v %v (hits %d), want %v at %v (hits %d, error %v)", i, s.at, q, err, hits.Load(), s.value, s.atWant, s.hits, s.err)
		}
		fail.Store(false)
	}
}

func TestHTTPSourceRejectsSpec(t *testing.T) {
	for name, tc := range map[string]struct {
		spec SourceSpec
		want string
	}{
		"no url":     {SourceSpec{Source: "http", Timeout: time.Second}, "url"},
		"ftp":        {SourceSpec{Source: "http", URL: &url.URL{Scheme: "ftp", Host: "x"}, Timeout: time.Second}, "url"},
		"no timeout": {SourceSpec{Source: "http", URL: &url.URL{Scheme: "http", Host: "127.0.0.1:1"}}, "timeout"},
		"empty segment": {SourceSpec{Source: "http", URL: &url.URL{Scheme: "http", Host: "127.0.0.1:1"}, Timeout: time.Second,
			Path: "data..price"}, `path: "data..price": segment 2 is empty`},
	} {
		if _, err := NewPriceSource(PriceBTCUSD, tc.spec, nil, nil); err == nil || !strings.Contains(err.Error(), tc.want) ||
			!strings.Contains(err.Error(), "allocator.prices.btc_usd") {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// FuzzExtractPrice: whatever the reply and path, extraction returns a
// price that passes CheckPrice or an error; it never panics.
func FuzzExtractPrice(f *testing.F) {
	f.Add([]byte(`{"data":{"price":65123.5}}`), "data.price")
	f.Add([]byte(`{"prices":[{"usd":1},{"usd":"42.5"}]}`), "prices.1.usd")
	f.Add([]byte(`[1,2,[3,"4"]]`), "2.1")
	f.Add([]byte(`<html></html>`), "")
	f.Add([]byte(`"NaN"`), "")
	f.Add([]byte(`{"a":1e400}`), "a")
	f.Add([]byte(`{"a":{"b":[null,true]}}`), "a.b.00")
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		segs, err := splitJSONPath(path)
		if err != nil {
			return
		}
		v, err := extractPrice(body, segs, PriceBTCUSD)
		if err == nil {
			if cerr := CheckPrice(PriceBTCUSD, v); cerr != nil {
				t.Fatalf("extracted %v from %q at %q: %v", v, body, path, cerr)
			}
		}
	})
}

// FuzzParsePriceCSV: any file either parses into rows in strictly
// increasing time with checked prices, or is an error naming a line.
func FuzzParsePriceCSV(f *testing.F) {
	f.Add("time,p\n2026-01-01T00:00:00Z,1\n2026-01-01T01:00:00Z,2\n")
	f.Add("p,time\n3,2026-01-01T00:00:00+02:00\n")
	f.Add("time,p\n2026-01-01T00:00:00Z,\"1\n")
	f.Add("\ufefftime,p\n2026-01-01T00:00:00Z,NaN\n")
	f.Add("time,p\n2026-01-01T00:00:00Z,1,2\n")
	f.Fuzz(func(t *testing.T, text string) {
		rows, err := parsePriceCSV(strings.NewReader(text), PriceEnergy, "p")
		if err != nil {
			if !strings.Contains(err.Error(), "line ") && !strings.Contains(err.Error(), "empty file") &&
				!strings.Contains(err.Error(), "no rows") && !strings.Contains(err.Error(), "header") {
				t.Fatalf("error %q names no line", err)
			}
			return
		}
		for i, r := range rows {
			if err := CheckPrice(PriceEnergy, r.Value); err != nil {
				t.Fatalf("row %d: %v", i, err)
			}
			if i > 0 && !r.At.After(rows[i-1].At) {
				t.Fatalf("row %d at %v not after %v", i, r.At, rows[i-1].At)
			}
			// Every row is in force at its own time.
			q, err := quoteRows(rows, r.At, PriceEnergy, "fuzz")
			if err != nil || q.Value != r.Value {
				t.Fatalf("row %d: quote at its time %+v %v", i, q, err)
			}
		}
	})
}
