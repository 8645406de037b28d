package online

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A raised learning rate (the drift monitor's first action) is a control
// record on the control topic: from AtMs until UntilMs of message time
// (produce time, never the 2020 event time of a replayed event), the
// updater's learning rate is multiplied by Factor. The rate applied to an
// event is a function of the event's message timestamp and the kept history
// of control records, not of the moment the updater processes it, so a
// redelivery after a crash applies the same rate bit for bit:
//
//   - a control is produced with AtMs = its produce time + the control delay
//     (5 s by default), never in the past;
//   - the updater's follower reads the control topic from its first offset;
//     when it has read everything up to the topic's end as of wall time W,
//     any control produced later starts after W + delay, so every event with
//     a message time below W + delay has its rate decided (Covered);
//   - before applying an event with a later message time the updater waits
//     until the follower has covered it.

// LRControl is one control record.
type LRControl struct {
	ID      string  `json:"id"`
	AtMs    int64   `json:"at_ms"`
	UntilMs int64   `json:"until_ms"`
	Factor  float64 `json:"factor"`
	Reason  string  `json:"reason"`
}

// Bounds of a control: the factor and the span it may have.
const (
	MaxLRFactor = 10.0
	MaxLRSpan   = time.Hour
)

// Validate checks c against the bounds.
func (c LRControl) Validate() error {
	if !(c.Factor >= 1 && c.Factor <= MaxLRFactor) || c.AtMs <= 0 || c.UntilMs <= c.AtMs || c.UntilMs-c.AtMs > MaxLRSpan.Milliseconds() {
		return fmt.Errorf("learning-rate control %q: factor %v (want 1..%v), span [%d, %d) (want positive, at most %v)",
			c.ID, c.Factor, MaxLRFactor, c.AtMs, c.UntilMs, MaxLRSpan)
	}
	return nil
}

// LRSchedule is the kept history of controls and how far it is known to be
// complete. Safe for concurrent use.
type LRSchedule struct {
	mu       sync.RWMutex
	controls []LRControl // by AtMs
	ids      map[string]bool
	covered  atomic.Int64 // every control starting before this message time is known
}

// NewLRSchedule returns an empty schedule that covers nothing yet.
func NewLRSchedule() *LRSchedule { return &LRSchedule{ids: map[string]bool{}} }

// Add records c (a control read again, same id, is ignored).
func (s *LRSchedule) Add(c LRControl) error {
	if err := c.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids[c.ID] {
		return nil
	}
	s.ids[c.ID] = true
	i, _ := slices.BinarySearchFunc(s.controls, c.AtMs, func(x LRControl, t int64) int { return cmp.Compare(x.AtMs, t) })
	s.controls = slices.Insert(s.controls, i, c)
	return nil
}

// Factor is the learning-rate factor of an event with message time tMS: the
// largest factor of the controls whose [AtMs, UntilMs) holds it, else 1.
func (s *LRSchedule) Factor(tMS int64) float32 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f := 1.0
	// A control lasts at most MaxLRSpan: only those starting within it of
	// tMS can hold it, so the kept history does not slow each event down.
	i, _ := slices.BinarySearchFunc(s.controls, tMS-MaxLRSpan.Milliseconds(), func(x LRControl, t int64) int { return cmp.Compare(x.AtMs, t) })
	for _, c := range s.controls[i:] {
		if c.AtMs > tMS {
			break
		}
		if tMS < c.UntilMs {
			f = max(f, c.Factor)
		}
	}
	return float32(f)
}

// SetCovered records that every control starting before ms is known.
func (s *LRSchedule) SetCovered(ms int64) {
	for {
		old := s.covered.Load()
		if ms <= old || s.covered.CompareAndSwap(old, ms) {
			return
		}
	}
}

// Covered is the message time below which the schedule is complete.
func (s *LRSchedule) Covered() int64 { return s.covered.Load() }

// WaitCovered returns once the schedule covers tMS, or ctx ends.
func (s *LRSchedule) WaitCovered(ctx context.Context, tMS int64) error {
	for s.Covered() <= tMS {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
