package eval

import (
	"context"
	"fmt"

	"github.com/streamrec/streamrec/internal/cache"
)

// ListSource reads the served-list log (cache.Store implements it).
type ListSource interface {
	ServedInPartition(ctx context.Context, partition int32, fromMS, toMS int64) ([]cache.ServedRecord, int, error)
}

// Partition evaluates one partition of the interactions topic as a
// deterministic function of its messages: its clock is the partition's
// watermark (the largest produce time seen so far), lists are loaded from the
// log once the watermark has passed their serve time by Grace, and a list is
// valid only if it was written within Grace of its serve time (else it is
// counted in late_lists and ignored). The same messages and the same log give
// the same increments whenever and wherever they are processed, so that a
// restarted evaluator can rebuild its state by processing again, from its
// resume offset, the messages before the recorded next offset while dropping
// their increments (Skip), and then go on exactly where the lost one stopped.
// Count windows are by offset: interaction increments produced while
// processing offset o fall in count window o / CountWindow.
type Partition struct {
	id       int32
	ev       *Evaluator
	src      ListSource
	grace    int64
	keep     int64 // Keep: how far back the resume offset reaches (ms of produce time)
	horizon  int64 // PreqHorizon
	started  bool
	loadedTo int64
	wm       int64
	// segments of the processed offsets: each starts at an offset, with the
	// watermark just before it and the largest produce time in it (a new one
	// every segmentMS of produce time or segmentLen messages), so that the
	// resume offset costs O(Keep / segmentMS) memory, not one entry a message.
	recent  []segment
	skipped int // lists that expired or failed to decode in the log
}

type segment struct {
	off, wmBefore, maxMS, firstMS int64
	n                             int
}

const (
	segmentMS  = 100
	segmentLen = 1000
)

// NewPartition returns the evaluator of partition id with cfg (validated),
// starting with watermark wm: 0 for a new partition, or the resume watermark
// recorded with the resume offset it restarts from.
func NewPartition(id int32, cfg Config, src ListSource, wm int64) (*Partition, error) {
	ev, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ev.nowMS = wm
	return &Partition{id: id, ev: ev, src: src, grace: cfg.Grace.Milliseconds(), wm: wm,
		keep: cfg.Keep().Milliseconds(), horizon: cfg.PreqHorizon.Milliseconds()}, nil
}

// Watermark is the largest produce time processed.
func (p *Partition) Watermark() int64 { return p.wm }

// Resume is the offset from which processing again rebuilds this
// partition's state, and the watermark just before it: the start of the
// oldest segment holding an interaction produced within Keep of the watermark
// (next and the watermark when nothing was processed).
func (p *Partition) Resume(next int64) (offset, wm int64) {
	if len(p.recent) == 0 {
		return next, p.wm
	}
	return p.recent[0].off, p.recent[0].wmBefore
}

// SkippedLists counts lists of the log that expired or failed to decode.
func (p *Partition) SkippedLists() int { return p.skipped }

// Process handles the interaction at offset and returns the increments it
// produced (reused by the next call).
func (p *Partition) Process(ctx context.Context, offset int64, x Interaction) ([]Increment, error) {
	if !p.started {
		// Every list an interaction from here on can reach: served within
		// Keep + PreqHorizon before the watermark.
		p.started, p.loadedTo = true, max(p.wm, x.ProducedMS)-p.keep-p.horizon-1
	}
	wmBefore := p.wm
	wm := max(p.wm, x.ProducedMS)
	if to := wm - p.grace; to > p.loadedTo {
		recs, bad, err := p.src.ServedInPartition(ctx, p.id, p.loadedTo+1, to)
		if err != nil {
			return nil, fmt.Errorf("loading served lists of partition %d: %w", p.id, err)
		}
		p.skipped += bad
		p.ev.SetCount(offset)
		for i := range recs {
			r := &recs[i]
			if r.WrittenMS > r.ServedMS+p.grace {
				p.ev.emit(p.ev.timeWindow(r.ServedMS), "late_lists", 1, fallbackTag(r.Fallback))
				continue
			}
			p.ev.AddList(listOf(r))
		}
		p.loadedTo = to
	}
	p.wm = wm
	p.ev.SetCount(offset)
	x.Partition, x.Offset = p.id, offset
	p.ev.AddInteraction(x)
	if n := len(p.recent); n == 0 || p.recent[n-1].n >= segmentLen || x.ProducedMS-p.recent[n-1].firstMS >= segmentMS {
		p.recent = append(p.recent, segment{off: offset, wmBefore: wmBefore, maxMS: x.ProducedMS, firstMS: x.ProducedMS, n: 1})
	} else {
		sg := &p.recent[n-1]
		sg.maxMS = max(sg.maxMS, x.ProducedMS)
		sg.n++
	}
	// A segment whose every message was produced before Keep of the
	// watermark can no longer matter to a restart.
	i := 0
	for i < len(p.recent)-1 && p.recent[i].maxMS < wm-p.keep {
		i++
	}
	if i > 0 {
		p.recent = append(p.recent[:0], p.recent[i:]...)
	}
	return p.ev.Advance(wm), nil
}

func listOf(r *cache.ServedRecord) List {
	l := List{ID: r.ID, User: r.User, Version: r.Version, Fallback: r.Fallback, ServedMS: r.ServedMS, Candidates: r.Candidates,
		Slots: make([]Slot, len(r.Slots))}
	if r.LastOffset >= 0 && r.LastPartition >= 0 {
		l.InputPartition, l.InputNext = r.LastPartition, r.LastOffset+1
	}
	for i, s := range r.Slots {
		l.Slots[i] = Slot{Video: s.Video, Score: s.Score, Predicted: s.PredictedWatchRatio, Propensity: s.Propensity}
	}
	if len(r.UserVec) > 0 {
		l.UserVec, l.UserBias = r.UserVec, r.UserBias
	}
	return l
}
