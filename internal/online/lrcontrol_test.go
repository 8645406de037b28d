package online

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/stream"
)

func TestLRSchedule(t *testing.T) {
	s := NewLRSchedule()
	for _, bad := range []LRControl{{ID: "a", AtMs: 10, UntilMs: 20, Factor: 0.5}, {ID: "b", AtMs: 10, UntilMs: 20, Factor: 11},
		{ID: "c", AtMs: 20, UntilMs: 20, Factor: 2}, {ID: "d", AtMs: 1, UntilMs: 1 + 2*MaxLRSpan.Milliseconds(), Factor: 2}} {
		if err := s.Add(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	must := func(c LRControl) {
		if err := s.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	must(LRControl{ID: "x", AtMs: 1000, UntilMs: 2000, Factor: 3})
	must(LRControl{ID: "y", AtMs: 1500, UntilMs: 3000, Factor: 2})
	must(LRControl{ID: "x", AtMs: 1000, UntilMs: 9000, Factor: 9}) // read again: ignored
	for tm, want := range map[int64]float32{999: 1, 1000: 3, 1600: 3, 1999: 3, 2000: 2, 2999: 2, 3000: 1} {
		if got := s.Factor(tm); got != want {
			t.Errorf("factor at %d = %v, want %v", tm, got, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := s.WaitCovered(ctx, 100); err == nil {
		t.Fatal("an uncovered time did not wait")
	}
	s.SetCovered(200)
	s.SetCovered(150) // never goes back
	if err := s.WaitCovered(context.Background(), 199); err != nil || s.Covered() != 200 {
		t.Fatalf("covered %d: %v", s.Covered(), err)
	}
}

// The raised rate is applied by message time: an event inside a control's
// span moves the user vector exactly as the base rate times the factor does,
// one outside it as the base rate; a second updater replaying the same
// messages (a redelivery after a crash) gets the same vectors bit for bit.
func TestUpdaterRaisedRateByMessageTime(t *testing.T) {
	_, _, m := fixture(t)
	// Each updater reads the offline vectors from a fresh store (a shared one
	// would hold the other updaters' online records).
	fresh := func() UserStore { _, us, _ := fixture(t); return us }
	base := time.UnixMilli(1_800_000_000_000)
	sched := NewLRSchedule()
	if err := sched.Add(LRControl{ID: "c1", AtMs: base.Add(10 * time.Second).UnixMilli(), UntilMs: base.Add(20 * time.Second).UnixMilli(), Factor: 4}); err != nil {
		t.Fatal(err)
	}
	sched.SetCovered(base.Add(time.Hour).UnixMilli())
	rec := func(off int64, at time.Duration, video uint32) stream.Record {
		return stream.Record{Offset: off, Time: base.Add(at), Event: stream.Event{EventID: uint64(off + 1), UserID: 3, VideoID: video,
			PlayDurationMs: 1, VideoDurationMs: 2, EventTimeMs: 1_600_000_000_000 + off, WatchRatio: 1.7, Source: stream.SourceAPI, ProducedAtUs: 1}}
	}
	batch := []stream.Record{rec(0, 5*time.Second, 1), rec(1, 15*time.Second, 2), rec(2, 25*time.Second, 3)}
	run := func(cfg Config, recs []stream.Record) []float32 {
		u := NewUpdater(cfg, m, fresh(), &fakeLog{})
		defer u.Close()
		if err := u.Handle(t.Context(), recs); err != nil {
			t.Fatal(err)
		}
		s, _ := u.State(3)
		return slices.Clone(s.Vec)
	}
	scheduled := Config{LR: 0.05, L2: 0.001, LRSchedule: sched}
	got := run(scheduled, batch)
	// The same steps by hand: base rate, 4x the rate, base rate.
	u := NewUpdater(Config{LR: 0.05, L2: 0.001}, m, fresh(), &fakeLog{})
	defer u.Close()
	if err := u.Handle(t.Context(), batch[:1]); err != nil {
		t.Fatal(err)
	}
	u.params.LR = 0.2
	if err := u.Handle(t.Context(), batch[1:2]); err != nil {
		t.Fatal(err)
	}
	u.params.LR = 0.05
	if err := u.Handle(t.Context(), batch[2:]); err != nil {
		t.Fatal(err)
	}
	s, _ := u.State(3)
	if !slices.Equal(got, s.Vec) {
		t.Fatalf("scheduled %v\nby hand   %v", got, s.Vec)
	}
	if plain := run(Config{LR: 0.05, L2: 0.001}, batch); slices.Equal(plain, got) {
		t.Fatal("the raised rate changed nothing")
	}
	if again := run(scheduled, batch); !slices.Equal(again, got) {
		t.Fatalf("a replay of the same messages differs: %v vs %v", again, got)
	}
	// An event the schedule does not cover yet waits for it.
	late := NewLRSchedule()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	u2 := NewUpdater(Config{LR: 0.05, LRSchedule: late}, m, fresh(), &fakeLog{})
	defer u2.Close()
	if err := u2.Handle(ctx, batch[:1]); err == nil {
		t.Fatal("an uncovered event was applied")
	}
}
