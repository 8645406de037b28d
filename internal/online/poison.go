package online

import (
	"maps"
	"sync"
)

// Reasons a record is skipped as poison (the label of the poison metric).
const (
	PoisonChangelogKey   = "changelog_key"    // a changelog record whose key is not a user id
	PoisonChangelogState = "changelog_state"  // a changelog value that does not decode
	PoisonDense          = "dense_checkpoint" // a dense checkpoint that does not decode
	PoisonRedisUser      = "redis_user"       // a user record in Redis that does not decode
)

// Poison counts records skipped because they cannot be decoded: a poison
// record is counted, logged once with where it is, and skipped, never retried
// (retrying cannot fix it, and would stop the partition for good). It is safe
// for concurrent use; the zero value is ready.
type Poison struct {
	mu     sync.Mutex
	counts map[string]uint64
}

// Add counts one poison record of reason.
func (p *Poison) Add(reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.counts == nil {
		p.counts = map[string]uint64{}
	}
	p.counts[reason]++
}

// Counts returns a copy of the counts by reason.
func (p *Poison) Counts() map[string]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.counts)
}
