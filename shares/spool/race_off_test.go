//go:build !race

package spool

// raceEnabled: see race_on_test.go.
const raceEnabled = false
