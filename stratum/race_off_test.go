//go:build !race

package stratum

// raceEnabled is true under -race, whose sync.Pool drops items on purpose
// (so allocation counts of pooled paths mean nothing there).
const raceEnabled = false
