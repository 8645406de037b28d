package eval

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/cache"
)

// memLog is an in-memory served-list log.
type memLog struct{ recs []cache.ServedRecord }

func (m *memLog) ServedInPartition(_ context.Context, _ int32, from, to int64) ([]cache.ServedRecord, int, error) {
	var out []cache.ServedRecord
	for _, r := range m.recs {
		if r.ServedMS >= from && r.ServedMS <= to {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b cache.ServedRecord) int { return int(a.ServedMS - b.ServedMS) })
	return out, 0, nil
}

type msg struct {
	off int64
	x   Interaction
}

// traffic is one partition's messages (produce times mostly increasing, with
// some disorder, duplicates, and a few very late ones) and its served lists
// (some written late).
func traffic(seed uint64) ([]msg, *memLog) {
	r := rand.New(rand.NewPCG(seed, 9))
	log := &memLog{}
	var msgs []msg
	now := int64(1_700_000_000_000)
	for i := range 3000 {
		now += int64(r.IntN(40))
		u := uint32(r.IntN(30))
		if r.IntN(8) == 0 {
			slots := make([]cache.ServedSlot, 10)
			for j := range slots {
				slots[j] = cache.ServedSlot{Video: uint32(r.IntN(80)), PredictedWatchRatio: float32(r.Float64() * 2), Propensity: 1}
			}
			rec := cache.ServedRecord{ID: fmt.Sprintf("l%d", i), User: u, ServedMS: now - int64(r.IntN(100)), Slots: slots, Version: "v1",
				LastPartition: -1, LastOffset: -1}
			rec.WrittenMS = rec.ServedMS + int64(r.IntN(30))
			if r.IntN(20) == 0 {
				rec.WrittenMS += 5000 // later than the grace period
			}
			if r.IntN(3) > 0 {
				rec.UserVec, rec.UserBias = []float32{1, 2}, 0.1
				// The embedding includes the partition's messages up to a
				// little before the serve.
				rec.LastPartition, rec.LastOffset = 0, int64(i-1-r.IntN(3))
			} else {
				rec.Fallback = FallbackPopularity
			}
			log.recs = append(log.recs, rec)
		}
		p := now - int64(r.IntN(300)) // disorder
		if r.IntN(200) == 0 {
			p -= 60000 // very late
		}
		id := uint64(i + 1)
		if r.IntN(15) == 0 && i > 10 {
			id = uint64(i - r.IntN(10)) // a duplicate of a recent id
		}
		msgs = append(msgs, msg{int64(i), Interaction{User: u, Video: uint32(r.IntN(80)), EventID: id, WatchRatio: r.Float64() * 3, ProducedMS: p,
			Source: []string{"replay", "api", "simulator"}[r.IntN(3)]}})
	}
	return msgs, log
}

func partCfg() Config {
	return Config{OpenFor: 3 * time.Second, Grace: 500 * time.Millisecond, Window: 5 * time.Second, CountWindow: 100, RankEvery: 7, PreqHorizon: 6 * time.Second,
		Popularity: func(v uint32) float64 { return float64(v) / 80 }, Scorer: &fixedScorer{}, Twin: &fixedTwin{version: "v1"}}
}

// A partition evaluator killed after any offset and restarted from its resume
// offset and watermark, dropping the increments of offsets it had applied,
// gives exactly the windows of an uninterrupted run.
func TestPartitionRestartIsExact(t *testing.T) {
	ctx := context.Background()
	msgs, log := traffic(1)
	run := func(p *Partition, from, to, applyFrom int64, w *Windows) {
		t.Helper()
		for _, m := range msgs[from:to] {
			incs, err := p.Process(ctx, m.off, m.x)
			if err != nil {
				t.Fatal(err)
			}
			if m.off >= applyFrom {
				w.Apply(incs)
			}
		}
	}
	ref := NewWindows()
	p, err := NewPartition(0, partCfg(), log, 0)
	if err != nil {
		t.Fatal(err)
	}
	run(p, 0, int64(len(msgs)), 0, ref)
	// The resume bookkeeping is bounded by Keep, not by the messages.
	if n, most := len(p.recent), int(p.keep/segmentMS)+2; n > most {
		t.Errorf("%d resume segments after %d messages, want at most %d", n, len(msgs), most)
	}
	for _, crash := range []int64{1, 17, 500, 1234, 2999} {
		got := NewWindows()
		p1, _ := NewPartition(0, partCfg(), log, 0)
		run(p1, 0, crash, 0, got)
		resume, wm := p1.Resume(crash)
		p2, _ := NewPartition(0, partCfg(), log, wm)
		run(p2, resume, int64(len(msgs)), crash, got)
		for _, kind := range []WindowKind{ByTime, ByCount} {
			for _, k := range ref.Keys(kind) {
				if !maps.Equal(got.Fields(k), ref.Fields(k)) || got.Get(k, "served_videos") != ref.Get(k, "served_videos") {
					t.Fatalf("crash after offset %d (resume %d): window %c%d differs:\n got %v\nwant %v", crash-1, resume, kind, k.Index, got.Fields(k), ref.Fields(k))
				}
			}
		}
	}
	for _, f := range []string{"hits", "late_lists", "stale_interactions", "duplicates", "no_list", "preq_n", "lists", "prec08_u", "twin_n", "twin_rank_n", "f2e_n", "f2e_le_50"} {
		n := int64(0)
		for _, k := range ref.Keys(ByTime) {
			n += ref.Get(k, f)
		}
		if n == 0 {
			t.Errorf("the traffic never exercises %s", f)
		}
	}
}
