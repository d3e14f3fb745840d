//go:build race

package main

// raceEnabled: the tests run with -race, so subprocesses are built with it.
const raceEnabled = true
