package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseRetention(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{in: "", want: 0},
		{in: "0", want: 0},
		{in: "400d", want: 400 * day},
		{in: " 1d ", want: day},
		{in: "9600h", want: 400 * day},
		{in: "0d", want: 0},
		{in: "12h", err: "whole days, at least one"},
		{in: "36h", err: "whole days"},
		{in: "-3d", err: "whole number of days"},
		{in: "1.5d", err: "whole number of days"},
		{in: "forever", err: "want days such as"},
	} {
		got, err := ParseRetention(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestLoadAudit(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "c.toml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := LoadAudit(write("[audit]\nretention = \"400d\"\narchive_dir = \"/var/lib/wattpool/archive\"\n"))
	if err != nil || c.Retention != 400*24*time.Hour || c.ArchiveDir != "/var/lib/wattpool/archive" {
		t.Fatalf("%+v, %v", c, err)
	}
	c, err = LoadAudit(write(""))
	if err != nil || c.Retention != 0 || c.ArchiveDir != DefaultArchiveDir {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	if _, err := LoadAudit(write("[audit]\nretention = \"3 years\"\n")); err == nil || !strings.Contains(err.Error(), "audit.retention") {
		t.Fatalf("bad retention: %v", err)
	}
	if _, err := LoadAudit(write("[audit]\nkeep = \"1d\"\n")); err == nil || !strings.Contains(err.Error(), "keep") {
		t.Fatalf("unknown key: %v", err)
	}
}
