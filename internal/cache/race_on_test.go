//go:build race

package cache

// raceEnabled: the race detector makes sync.Pool drop a share of its items
// on purpose, so allocation counts of pooled code are not meaningful.
const raceEnabled = true
