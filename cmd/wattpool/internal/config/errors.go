package config

import (
	"errors"
	"strings"
)

// FieldError names one wrong setting: the configuration key, the
// environment variable when one set it, and what is wrong.
type FieldError struct {
	// Field is the TOML key path, e.g. stratum.listener[1].min_diff; empty
	// for an error about the file as a whole (syntax).
	Field string
	// Env is the WATTPOOL_* variable the value came from, if any.
	Env string
	// Err says what is wrong with the value.
	Err error
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Field != "" {
		b.WriteString(e.Field)
		if e.Env != "" {
			b.WriteString(" (from " + e.Env + ")")
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *FieldError) Unwrap() error { return e.Err }

// Errors is every problem found in one configuration. Its message lists
// them one per line.
type Errors []error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.Is and errors.As see every error.
func (es Errors) Unwrap() []error { return es }

// List returns the individual problems of err: the members of an Errors,
// or err itself.
func List(err error) []error {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	if err == nil {
		return nil
	}
	return []error{err}
}
