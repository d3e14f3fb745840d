package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
)

// Load reads the file at path (none when path is empty), applies the
// environment overrides found by lookup (os.LookupEnv in production) and
// validates the result. On failure the error is an Errors naming every
// wrong field.
func Load(path string, lookup func(string) (string, bool)) (*Config, error) {
	var raw []byte
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, Errors{fmt.Errorf("read config file: %w", err)}
		}
		raw = b
	}
	return Parse(raw, lookup)
}

// Parse is Load on the bytes of a configuration file.
func Parse(raw []byte, lookup func(string) (string, bool)) (*Config, error) {
	f := Defaults()
	var errs Errors
	if err := decode(raw, &f); err != nil {
		var fatal bool
		errs, fatal = decodeErrors(err)
		if fatal {
			// The decoder stopped part-way: validating a half-read
			// file would report fields that are in fact fine.
			return nil, errs
		}
	}
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	from, envErrs := ApplyEnv(&f, lookup)
	errs = append(errs, envErrs...)
	cfg, valErrs := validate(&f, from, lookup)
	errs = append(errs, valErrs...)
	if len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

// DecodeFileAt reads the file at path (none when empty) over the defaults
// and applies the environment, without validating: for commands that need
// one setting (the database URL) and must work while unrelated ones are
// wrong. Syntax errors and values of the wrong type are still errors.
func DecodeFileAt(path string, lookup func(string) (string, bool)) (File, error) {
	f, errs, fatal := decodeFile(path)
	if fatal {
		return f, errs
	}
	if lookup != nil {
		if _, errs := ApplyEnv(&f, lookup); len(errs) > 0 {
			return f, Errors(errs)
		}
	}
	return f, nil
}

// decodeFile reads the file at path (none when empty) strictly over the
// defaults. errs holds every decoding error; fatal is set when the file
// could not be read or the decoder stopped part-way, so that f is not
// worth validating.
func decodeFile(path string) (f File, errs Errors, fatal bool) {
	f = Defaults()
	if path == "" {
		return f, nil, false
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return f, Errors{fmt.Errorf("read config file: %w", err)}, true
	}
	if err := decode(raw, &f); err != nil {
		errs, fatal = decodeErrors(err)
	}
	return f, errs, fatal
}

func decode(raw []byte, f *File) error {
	dec := toml.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(f)
}

// decodeErrors turns a decoder error into field errors. Unknown keys are
// all reported and leave the rest of the file decoded (not fatal); a
// syntax or type error stops the decoder (fatal).
func decodeErrors(err error) (Errors, bool) {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var errs Errors
		for i := range strict.Errors {
			e := &strict.Errors[i]
			line, _ := e.Position()
			errs = append(errs, &FieldError{Field: keyPath(e.Key()),
				Err: fmt.Errorf("unknown key (line %d); see wattpool.example.toml for the valid keys", line)})
		}
		return errs, false
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		return Errors{&FieldError{Field: keyPath(de.Key()),
			Err: fmt.Errorf("line %d column %d: %s", line, col, strings.TrimPrefix(de.Error(), "toml: "))}}, true
	}
	// Type mismatches come as plain errors naming the Go field.
	return Errors{fmt.Errorf("config file: %s", strings.TrimPrefix(err.Error(), "toml: "))}, true
}

func keyPath(k toml.Key) string { return strings.Join(k, ".") }
