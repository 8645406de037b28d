package online

import (
	"slices"
	"testing"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/stream"
	"github.com/streamrec/streamrec/internal/towers"
)

// wantHandover computes, independently of the updater, what a user becomes
// when re-based on a version: the version's offline vector (emb, bias in
// serving form) plus one OnlineStep per event of ring that the version did
// not train on, oldest first.
func wantHandover(emb []float32, bias float32, ring []RecentEvent, part int32, tt TrainedThrough, items *fakeItems, p towers.OnlineParams) (base, vec []float32) {
	base = make([]float32, dim)
	vec = make([]float32, dim)
	for j := 0; j < dim-1; j++ {
		base[j] = emb[j] / p.Scale
	}
	base[dim-1] = bias
	for _, e := range ring {
		if tt.Covers(part, e.Offset, e.EventTimeMs, e.Source) {
			continue
		}
		if item, _, ok := items.Item(e.VideoID); ok {
			towers.OnlineStep(vec, base, item, e.WatchRatio, 1, p)
		}
	}
	return base, vec
}

// A new version: every held user is re-based on the version's offline
// vector (Model.Offline, not the serving records the updater overwrote) and
// the ring's events the version did not train on are applied again, in
// order; positions are kept. Three versions: one that trained on nothing
// streamed, one with a cut in the middle of the stream, one trained past it.
func TestUpdaterHandover(t *testing.T) {
	items, users, m := fixture(t)
	u := newTestUpdater(t, m, users, &fakeLog{})
	evs := events(120, 4) // 12 users, about 10 events each: the ring holds all
	if err := u.Handle(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	// The offline vectors of v2: users 0..4 only; the serving records under
	// v2 are deliberately different (as if an updater had written them).
	off := cache.OfflineUsers{Dim: dim}
	for uid := uint32(0); uid < 5; uid++ {
		r := users.recs[ukey("v1", uid)]
		e := slices.Clone(r.Embedding)
		e[0] += 1
		off.IDs, off.Biases, off.Vectors = append(off.IDs, uid), append(off.Biases, r.Bias+0.5), append(off.Vectors, e...)
		r.Embedding = slices.Clone(r.Embedding)
		r.Embedding[1] += 7 // contaminated serving record: must not be the base
		users.recs[ukey("v2", uid)] = r
	}
	table := NewOfflineTable(off)
	cut := evs[60].Event.EventTimeMs
	for _, tc := range []struct {
		name string
		tt   TrainedThrough
	}{
		{"nothing trained", TrainedThrough{}},
		{"cut mid-stream", TrainedThrough{CutMs: cut}},
		{"trained past the stream", TrainedThrough{CutMs: evs[len(evs)-1].Event.EventTimeMs + 1}},
		{"log offsets", TrainedThrough{Offsets: map[int32]int64{0: 80}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := map[uint32]UserState{}
			for uid := uint32(0); uid < 12; uid++ {
				before[uid], _ = u.State(uid)
			}
			v := "v2-" + tc.name
			v = v[:2] + v[3:4] // distinct short versions: v2n, v2c, v2t, v2l
			u.SetModel(Model{Items: &fakeItems{version: v, vecs: items.vecs}, GlobalMean: m.GlobalMean, Scale: m.Scale,
				Offline: table, Trained: tc.tt})
			replayed := u.Counters().HandoverReplayed
			n, err := u.Rematerialize(t.Context())
			if err != nil || n != 12 {
				t.Fatalf("Rematerialize = %d, %v; want 12 users", n, err)
			}
			var want uint64
			for uid := uint32(0); uid < 12; uid++ {
				s, _ := u.State(uid)
				b := before[uid]
				if s.ModelVersion != v || s.Pos != b.Pos || !slices.Equal(s.Ring, b.Ring) {
					t.Fatalf("user %d: version %s position %v ring %d; want %s, %v, %d (kept)", uid, s.ModelVersion, s.Pos, len(s.Ring), v, b.Pos, len(b.Ring))
				}
				emb, bias, ok := table.Offline(uid)
				if !ok { // no offline vector: base zero
					emb, bias = make([]float32, dim), 0
				}
				wb, wv := wantHandover(emb, bias, b.Ring, b.Pos.Partition, tc.tt, items, u.params)
				if !slices.Equal(s.Base, wb) || !slices.Equal(s.Vec, wv) {
					t.Fatalf("user %d: base %v vec %v; want %v %v", uid, s.Base[:3], s.Vec[:3], wb[:3], wv[:3])
				}
				for _, e := range b.Ring {
					if _, _, ok := items.Item(e.VideoID); ok && !tc.tt.Covers(b.Pos.Partition, e.Offset, e.EventTimeMs, e.Source) {
						want++
					}
				}
				if rec := users.recs[ukey(v, uid)]; rec.InputNext != s.Pos.Offset+1 {
					t.Fatalf("user %d: Redis record at %d, want %d", uid, rec.InputNext, s.Pos.Offset+1)
				}
			}
			if got := u.Counters().HandoverReplayed - replayed; got != want {
				t.Fatalf("%d events re-applied; want %d", got, want)
			}
			if tc.name == "trained past the stream" && want != 0 {
				t.Fatal("a version trained past the stream re-applied events")
			}
			if tc.name != "trained past the stream" && want == 0 {
				t.Fatal("nothing re-applied: the case proves nothing")
			}
		})
	}
}

// Events the current version trained on are recorded (position, ring) but
// never applied on top of it.
func TestUpdaterSkipsTrainedEvents(t *testing.T) {
	_, users, m := fixture(t)
	evs := events(200, 6)
	cut := evs[100].Event.EventTimeMs
	m.Trained = TrainedThrough{CutMs: cut}
	u := newTestUpdater(t, m, users, &fakeLog{})
	if err := u.Handle(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	var trained uint64
	for _, r := range evs {
		if r.Event.EventTimeMs < cut {
			trained++
		}
	}
	c := u.Counters()
	if trained == 0 || c.Trained != trained || c.Applied+c.ColdItems+c.Trained != uint64(len(evs)) {
		t.Fatalf("counters %+v; want %d trained of %d", c, trained, len(evs))
	}
}

func TestTrainedThroughOf(t *testing.T) {
	meta := cache.ModelMeta{Calibration: cache.Calibration{Extra: map[string]float64{towers.MetaCutMS: 1000, towers.MetaLastTrainMS: 900}},
		TrainedOffsets: map[int32]int64{2: 40}}
	tt := TrainedThroughOf(meta)
	for _, c := range []struct {
		part      int32
		off, time int64
		want      bool
	}{{0, 0, 999, true}, {0, 0, 1000, false}, {2, 40, 5000, true}, {2, 41, 5000, false}, {1, 40, 5000, false}} {
		if got := tt.Covers(c.part, c.off, c.time, 1); got != c.want {
			t.Errorf("Covers(%d, %d, %d) = %v; want %v", c.part, c.off, c.time, got, c.want)
		}
	}
	// A retrain that left simulator events out covers their offsets but not
	// them; a ring entry of unknown source (format 2) counts as trained.
	meta.TrainedExcludedSources = []string{"simulator"}
	tt = TrainedThroughOf(meta)
	if tt.Covers(2, 40, 5000, uint8(stream.SourceSimulator)) || !tt.Covers(2, 40, 5000, uint8(stream.SourceAPI)) || !tt.Covers(2, 40, 5000, 0) {
		t.Fatal("excluded sources: a simulator event counted as trained, or an API one not")
	}
	meta.Calibration.Extra = map[string]float64{towers.MetaLastTrainMS: 900}
	if tt := TrainedThroughOf(meta); tt.CutMs != 901 {
		t.Fatalf("no cut: CutMs %d; want the last training event + 1 ms", tt.CutMs)
	}
	if tt := TrainedThroughOf(cache.ModelMeta{}); tt.CutMs != 0 || tt.Covers(0, 0, 1, 1) {
		t.Fatal("a version without metadata covers events")
	}
}
