package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AuditFile is the [audit] table: how long share partitions stay in
// PostgreSQL before retention archives them (`wattpool audit archive`,
// and serve once a day). Unset keys keep everything in PostgreSQL.
type AuditFile struct {
	// Retention is "400d" (days), a Go duration of whole days such as
	// "9600h", or "0"/unset: keep forever.
	Retention string `toml:"retention"`
	// ArchiveDir receives the archive files (default "archive", relative
	// to the working directory as spool_dir is). Keep it on storage that
	// is backed up: once a partition is dropped its file is the record.
	ArchiveDir string `toml:"archive_dir"`
}

// AuditConfig is the validated [audit] table.
type AuditConfig struct {
	// Retention is 0 to keep every partition, else at least a day.
	Retention  time.Duration
	ArchiveDir string
}

// DefaultArchiveDir is where archives go when archive_dir is unset.
const DefaultArchiveDir = "archive"

// ParseRetention reads a retention: "<n>d" days, a Go duration that is a
// whole number of days, or "0" / "" for none.
func ParseRetention(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 || n > 100*366 {
			return 0, fmt.Errorf("%q: want a whole number of days 0..36600 such as \"400d\"", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q: want days such as \"400d\", a duration such as \"9600h\", or 0 to keep forever", s)
		}
	}
	if d != 0 && (d < 24*time.Hour || d%(24*time.Hour) != 0) {
		return 0, fmt.Errorf("%q: share partitions are daily, so retention is whole days, at least one (0 keeps forever)", s)
	}
	return d, nil
}

// audit validates [audit] within the whole configuration.
func (v *validator) audit(f *File, c *Config) {
	c.Audit = v.auditTable(&f.Audit)
}

// auditTable validates the [audit] table on its own.
func (v *validator) auditTable(a *AuditFile) AuditConfig {
	var c AuditConfig
	d, err := ParseRetention(a.Retention)
	if err != nil {
		v.errorf("audit.retention", "%v", err)
	}
	c.Retention = d
	c.ArchiveDir = a.ArchiveDir
	if strings.TrimSpace(c.ArchiveDir) == "" {
		c.ArchiveDir = DefaultArchiveDir
	}
	return c
}

// LoadAudit reads the configuration file at path as strictly as Load
// (unknown keys anywhere are errors) but validates only [audit]: the audit
// commands need the database, not a node or a payout address.
func LoadAudit(path string) (*AuditConfig, error) {
	f, errs, _ := decodeFile(path)
	if len(errs) > 0 {
		return nil, errs
	}
	v := &validator{}
	c := v.auditTable(&f.Audit)
	if len(v.errs) > 0 {
		return nil, v.errs
	}
	return &c, nil
}
