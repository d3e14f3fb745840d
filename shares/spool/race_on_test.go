//go:build race

package spool

// raceEnabled: sync.Pool drops items at random under -race, so allocation
// counts mean nothing there.
const raceEnabled = true
