package online

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/stream"
	"github.com/streamrec/streamrec/internal/towers"
)

const dim = 8

type fakeItems struct {
	version string
	vecs    map[uint32][]float32
}

func (f *fakeItems) Version() string { return f.version }
func (f *fakeItems) Dim() int        { return dim }
func (f *fakeItems) Item(id uint32) ([]float32, float32, bool) {
	v, ok := f.vecs[id]
	return v, 0, ok
}

type fakeUsers struct {
	mu      sync.Mutex
	recs    map[string]cache.UserRecord // version/uid
	failGet error
	fail    error
	puts    int
	reads   int
	seen    map[uint32][]uint32 // the union of every written record's Seen, per user
}

func ukey(v string, uid uint32) string { return v + "/" + string(stream.AppendKey(nil, uid)) }

func (f *fakeUsers) GetUsers(_ context.Context, v string, ids []uint32) ([]cache.UserRecord, []bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.failGet != nil {
		return nil, nil, f.failGet
	}
	recs, found := make([]cache.UserRecord, len(ids)), make([]bool, len(ids))
	for i, id := range ids {
		recs[i], found[i] = f.recs[ukey(v, id)]
	}
	return recs, found, nil
}

func (f *fakeUsers) PutUsersIfNewer(_ context.Context, v string, recs []cache.UserRecord) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return 0, f.fail
	}
	f.puts++
	skipped := 0
	for _, r := range recs {
		if old, ok := f.recs[ukey(v, r.UserID)]; ok && old.InputPartition == r.InputPartition && old.InputNext > r.InputNext {
			skipped++
			continue
		}
		r.Embedding = slices.Clone(r.Embedding)
		f.recs[ukey(v, r.UserID)] = r
		if f.seen == nil {
			f.seen = map[uint32][]uint32{}
		}
		h := append(f.seen[r.UserID], r.Seen...)
		slices.Sort(h)
		f.seen[r.UserID] = slices.Compact(h)
	}
	return skipped, nil
}

type fakeLog struct {
	mu     sync.Mutex
	fail   error
	tries  int
	writes []UserState
}

func (f *fakeLog) setFail(err error) {
	f.mu.Lock()
	f.fail = err
	f.mu.Unlock()
}

func (f *fakeLog) Write(_ context.Context, states []*UserState) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries++
	if f.fail != nil {
		return f.fail
	}
	for _, s := range states {
		c := *s
		c.Base, c.Vec, c.Ring = slices.Clone(s.Base), slices.Clone(s.Vec), slices.Clone(s.Ring)
		f.writes = append(f.writes, c)
	}
	return nil
}

func newTestUpdater(t *testing.T, m Model, users UserStore, log ChangelogWriter) *Updater {
	u := NewUpdater(DefaultConfig(), m, users, log)
	t.Cleanup(u.Close)
	return u
}

func fixture(t *testing.T) (*fakeItems, *fakeUsers, Model) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	items := &fakeItems{version: "v1", vecs: map[uint32][]float32{}}
	for id := uint32(0); id < 50; id++ {
		v := make([]float32, dim)
		for j := range v {
			v[j] = float32(r.NormFloat64() * 0.3)
		}
		items.vecs[id] = v
	}
	users := &fakeUsers{recs: map[string]cache.UserRecord{}}
	for uid := uint32(0); uid < 10; uid++ {
		e := make([]float32, dim)
		for j := range e {
			e[j] = float32(r.NormFloat64() * 0.2)
		}
		e[dim-1] = 1
		users.recs[ukey("v1", uid)] = cache.UserRecord{UserID: uid, Embedding: e, Bias: 0.1}
	}
	return items, users, Model{Items: items, GlobalMean: 0.9, Scale: 1.5}
}

func events(n int, seed uint64) []stream.Record {
	r := rand.New(rand.NewPCG(seed, 9))
	last := map[uint32]int64{}
	var out []stream.Record
	for i := 0; i < n; i++ {
		uid := uint32(r.IntN(12)) // users 10 and 11 are new
		ts := last[uid] + 1000 + int64(r.IntN(1000))
		last[uid] = ts
		out = append(out, stream.Record{Offset: int64(i), Event: stream.Event{EventID: stream.MakeEventID(ts, 0),
			UserID: uid, VideoID: uint32(r.IntN(55)), // 50..54 are cold
			PlayDurationMs: 1, VideoDurationMs: 2, EventTimeMs: ts, WatchRatio: r.Float64() * 2, Source: stream.SourceReplay,
			ProducedAtUs: 1}})
	}
	return out
}

func TestUpdaterAppliesOnceAndCounts(t *testing.T) {
	_, users, m := fixture(t)
	log := &fakeLog{}
	u := newTestUpdater(t, m, users, log)
	evs := events(400, 1)
	ctx := t.Context()
	for i := 0; i < len(evs); i += 37 {
		if err := u.Handle(ctx, evs[i:min(i+37, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
	c := u.Counters()
	if c.Duplicates != 0 || c.Applied+c.ColdItems != 400 || c.ColdItems == 0 || c.NewUsers != 2 {
		t.Fatalf("counters after one pass: %+v", c)
	}
	// Everything again (a redelivery after a crash), then a slice published
	// again at new offsets (a producer retry): the first is recognised by
	// position, the second by event id.
	if err := u.Handle(ctx, evs); err != nil {
		t.Fatal(err)
	}
	again := slices.Clone(evs[350:])
	for i := range again {
		again[i].Offset += 400
	}
	if err := u.Handle(ctx, again); err != nil {
		t.Fatal(err)
	}
	c2 := u.Counters()
	if c2.Applied != c.Applied || c2.ColdItems != c.ColdItems || c2.Redelivered != 400 || c2.Duplicates != 50 || c2.Late != 0 {
		t.Fatalf("redelivered or duplicate events were applied again: %+v then %+v", c, c2)
	}
	// Redis holds each user's embedding with the position of its last message.
	last := map[uint32]int64{}
	for _, r := range append(slices.Clone(evs), again...) {
		last[r.Event.UserID] = r.Offset
	}
	for uid, off := range last {
		rec, ok := users.recs[ukey("v1", uid)]
		if !ok || rec.InputPartition != 0 || rec.InputNext != off+1 {
			t.Fatalf("user %d in Redis: %+v, want position 0/%d", uid, rec, off)
		}
		s, _ := u.State(uid)
		emb := make([]float32, dim)
		bias := towers.UserEmbedding(emb, s.Base, s.Vec, m.Scale)
		if !slices.Equal(emb, rec.Embedding) || bias != rec.Bias {
			t.Fatalf("user %d: Redis embedding differs from the state's", uid)
		}
		// The shared watch history: the ring's distinct videos (cold ones
		// included), oldest first.
		var want []uint32
		for _, e := range s.Ring {
			if !slices.Contains(want, e.VideoID) {
				want = append(want, e.VideoID)
			}
		}
		if len(want) == 0 || !slices.Equal(rec.Watched, want) {
			t.Fatalf("user %d: watched %v, ring videos %v", uid, rec.Watched, want)
		}
	}
	// The long watch history: every video of every user's events, far more
	// than a ring holds, each written once at least.
	all := map[uint32][]uint32{}
	for _, r := range evs {
		all[r.Event.UserID] = append(all[r.Event.UserID], r.Event.VideoID)
	}
	for uid, vs := range all {
		slices.Sort(vs)
		vs = slices.Compact(vs)
		if len(vs) <= RingSize || !slices.Equal(users.seen[uid], vs) {
			t.Fatalf("user %d: long history %v, want the %d videos of its events %v", uid, users.seen[uid], len(vs), vs)
		}
	}
}

// The same events in different batchings give bit-identical vectors: per-user
// mode depends only on each user's event order.
func TestUpdaterBatchingInvariant(t *testing.T) {
	evs := events(600, 2)
	final := func(batch int) map[uint32][]float32 {
		_, users, m := fixture(t)
		u := newTestUpdater(t, m, users, &fakeLog{})
		for i := 0; i < len(evs); i += batch {
			if err := u.Handle(t.Context(), evs[i:min(i+batch, len(evs))]); err != nil {
				t.Fatal(err)
			}
		}
		out := map[uint32][]float32{}
		for uid := uint32(0); uid < 12; uid++ {
			s, _ := u.State(uid)
			out[uid] = s.Vec
		}
		return out
	}
	a, b := final(1), final(600)
	for uid, v := range a {
		if !slices.Equal(v, b[uid]) {
			t.Fatalf("user %d: batching changed the vector", uid)
		}
	}
}

// A failed flush returns the error; the retry of the same batch flushes without
// applying the batch twice; a restore from the changelog continues exactly.
func TestUpdaterRetryAndRestore(t *testing.T) {
	_, users, m := fixture(t)
	log := &fakeLog{}
	u := newTestUpdater(t, m, users, log)
	evs := events(300, 3)
	ctx := t.Context()
	if err := u.Handle(ctx, evs[:100]); err != nil {
		t.Fatal(err)
	}
	// A failed flush is retried by the flusher until it succeeds; the batch's
	// wait returns only then.
	log.setFail(errors.New("broker down"))
	done := make(chan error, 1)
	go func() { done <- u.Handle(ctx, evs[100:200]) }()
	for {
		log.mu.Lock()
		tries := log.tries
		log.mu.Unlock()
		if tries >= 3 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Handle returned (%v) while the changelog was down", err)
	default:
	}
	log.setFail(nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c := u.Counters(); c.Duplicates != 0 || c.Applied+c.ColdItems != 200 {
		t.Fatalf("retry applied the batch twice: %+v", c)
	}

	// A second updater restored from what the changelog holds, fed the rest,
	// ends bit-identical to the first fed everything.
	restored := map[uint32]*UserState{}
	for i := range log.writes {
		s := log.writes[i]
		restored[s.UserID] = &s
	}
	u2 := newTestUpdater(t, m, users, &fakeLog{})
	u2.Restore(restored, []int{0}, 1)
	if err := u2.Handle(ctx, evs[150:]); err != nil { // 150..199 are redelivered
		t.Fatal(err)
	}
	if err := u.Handle(ctx, evs[200:]); err != nil {
		t.Fatal(err)
	}
	if c := u2.Counters(); c.Redelivered != 50 || c.Duplicates != 0 {
		t.Fatalf("restored updater: %+v, want 50 redelivered and no duplicates", c)
	}
	for uid := uint32(0); uid < 12; uid++ {
		a, _ := u.State(uid)
		b, _ := u2.State(uid)
		if !slices.Equal(a.Vec, b.Vec) || a.Pos != b.Pos || !slices.Equal(a.Ring, b.Ring) {
			t.Fatalf("user %d differs after restore", uid)
		}
	}
}

func TestReservoirQuantiles(t *testing.T) {
	r := NewReservoir(100)
	for i := 1; i <= 250; i++ {
		r.Add(float64(i))
	}
	q, n := r.Quantiles(0.5, 0.99, 1)
	if n != 100 || q[0] != 200 || q[1] != 249 || q[2] != 250 {
		t.Fatalf("quantiles %v of %d", q, n)
	}
}

// A failed read of offline vectors fails the batch before it changes anything;
// the consumer's retry of the same batch applies it once.
func TestUpdaterApplyFailsCleanly(t *testing.T) {
	_, users, m := fixture(t)
	u := newTestUpdater(t, m, users, &fakeLog{})
	evs := events(100, 5)
	users.failGet = errors.New("redis down")
	if err := u.Handle(t.Context(), evs); err == nil {
		t.Fatal("Handle succeeded with Redis unreadable and users to read")
	}
	if c := u.Counters(); c.Applied+c.ColdItems+c.Duplicates+c.Redelivered != 0 || u.Users() != 0 {
		t.Fatalf("a failed batch changed state: %+v, %d users", c, u.Users())
	}
	users.failGet = nil
	if err := u.Handle(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	if c := u.Counters(); c.Applied+c.ColdItems != 100 || c.Duplicates != 0 {
		t.Fatalf("after the retry: %+v", c)
	}
}

// ev is one event of user uid at offset off with event id id, event time ts.
func ev(uid uint32, off int64, id uint64, ts int64) stream.Record {
	return stream.Record{Partition: 0, Offset: off, Event: stream.Event{EventID: id, UserID: uid, VideoID: uint32(off % 50),
		PlayDurationMs: 1, VideoDurationMs: 2, EventTimeMs: ts, WatchRatio: 0.5 + float64(off%7)/10, Source: stream.SourceAPI, ProducedAtUs: 1}}
}

// The case tried on the real stack: one event stamped now, then 20
// distinct events stamped in 2020, then one of those again. Every distinct
// event is applied (20 of them late, with their lateness observed); the copy
// is a duplicate.
func TestUpdaterLateEventsApplied(t *testing.T) {
	_, users, m := fixture(t)
	var lateness []float64
	cfg := DefaultConfig()
	cfg.ObserveLateness = func(s float64) { lateness = append(lateness, s) }
	u := NewUpdater(cfg, m, users, &fakeLog{})
	t.Cleanup(u.Close)
	now := int64(1764180000000)
	var batch []stream.Record
	batch = append(batch, ev(2, 0, 999, now))
	for i := range 20 {
		batch = append(batch, ev(2, int64(1+i), uint64(1000+i), 1593878903438+int64(i)*1000))
	}
	batch = append(batch, ev(2, 21, 1005, 1593878903438+5000))
	for i := range batch { // one batch per message: the consumer may cut anywhere
		if err := u.Handle(t.Context(), batch[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	c := u.Counters()
	if c.Applied != 21 || c.Late != 20 || c.Duplicates != 1 || c.Redelivered != 0 {
		t.Fatalf("counters %+v, want 21 applied, 20 late, 1 duplicate", c)
	}
	if len(lateness) != 20 || lateness[0] != float64(now-1593878903438)/1000 {
		t.Fatalf("lateness observed %v", lateness)
	}
	s, _ := u.State(2)
	if s.Applied != 21 || s.NewestEventMs != now || s.Pos != (Position{0, 21}) || len(s.Ring) != min(21, RingSize) {
		t.Fatalf("state %+v", s)
	}
}

// A user's events published in shuffled event-time order (and with ids that
// do not follow it) are all applied, and the result is that of applying them
// in input order, whatever their times say.
func TestUpdaterShuffledOrderAllApplied(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	var evs []stream.Record
	for i := range 200 {
		uid := uint32(i % 3)
		evs = append(evs, ev(uid, int64(i), r.Uint64()|1, 1593878903438+int64(r.IntN(1e9))))
	}
	_, users, m := fixture(t)
	u := newTestUpdater(t, m, users, &fakeLog{})
	for i := 0; i < len(evs); i += 17 {
		if err := u.Handle(t.Context(), evs[i:min(i+17, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
	if c := u.Counters(); c.Applied+c.ColdItems != 200 || c.Late == 0 || c.Duplicates+c.Redelivered != 0 {
		t.Fatalf("counters %+v, want all 200 applied, some late", c)
	}
	// The same events in one batch end in the same vectors: only each user's
	// input order matters, never event time or id order.
	_, users2, _ := fixture(t)
	u2 := newTestUpdater(t, m, users2, &fakeLog{})
	if err := u2.Handle(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	for uid := uint32(0); uid < 3; uid++ {
		a, _ := u.State(uid)
		b, _ := u2.State(uid)
		if !slices.Equal(a.Vec, b.Vec) {
			t.Fatalf("user %d: batching changed the result", uid)
		}
	}
}

// The ring is bounded: a copy published more than RingSize events of its user
// after the original is applied again (the documented limit), while one
// within the ring is not.
func TestUpdaterRingBound(t *testing.T) {
	_, users, m := fixture(t)
	u := newTestUpdater(t, m, users, &fakeLog{})
	var evs []stream.Record
	for i := range RingSize + 1 {
		evs = append(evs, ev(1, int64(i), uint64(100+i), 1593878903438+int64(i)))
	}
	evs = append(evs, ev(1, RingSize+1, 101, 1593878903439)) // in the ring
	evs = append(evs, ev(1, RingSize+2, 100, 1593878903438)) // evicted
	if err := u.Handle(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	if c := u.Counters(); c.Applied != RingSize+2 || c.Duplicates != 1 {
		t.Fatalf("counters %+v, want %d applied and 1 duplicate", c, RingSize+2)
	}
	if s, _ := u.State(1); len(s.Ring) != RingSize || s.Ring[RingSize-1].EventID != 100 {
		t.Fatalf("ring %+v", s.Ring)
	}
}

// corruptUsers answers user 3's record as corrupt, as cache.Store does.
type corruptUsers struct{ *fakeUsers }

func (c corruptUsers) GetUsers(ctx context.Context, v string, ids []uint32) ([]cache.UserRecord, []bool, error) {
	recs, found, err := c.fakeUsers.GetUsers(ctx, v, ids)
	if err != nil {
		return nil, nil, err
	}
	for i, id := range ids {
		if id == 3 {
			recs[i], found[i] = cache.UserRecord{UserID: 3}, false
			return recs, found, &cache.CorruptUsersError{Version: v, Users: map[uint32]error{3: cache.ErrCorrupt}}
		}
	}
	return recs, found, nil
}

// A corrupt user record in Redis is poison: counted, skipped (the user starts
// without an offline vector), and the batch goes on; it is not retried.
func TestUpdaterSkipsPoisonRedisRecord(t *testing.T) {
	_, users, m := fixture(t)
	u := newTestUpdater(t, m, corruptUsers{users}, &fakeLog{})
	evs := events(100, 6)
	if err := u.Handle(t.Context(), evs); err != nil {
		t.Fatalf("a corrupt record failed the batch: %v", err)
	}
	if c := u.Counters(); c.Applied+c.ColdItems != 100 {
		t.Fatalf("counters %+v", c)
	}
	if p := u.Poison().Counts(); p[PoisonRedisUser] != 1 {
		t.Fatalf("poison counts %v, want one %s", p, PoisonRedisUser)
	}
	s, ok := u.State(3)
	if !ok || s.Applied == 0 || slices.ContainsFunc(s.Base, func(x float32) bool { return x != 0 }) {
		t.Fatalf("user 3: %+v, want applied from a zero base", s)
	}
}

// --l2 0 means no pull toward the offline vector (it was replaced by the
// default); the target cap is the model's unless configured.
func TestUpdaterConfigHonoured(t *testing.T) {
	_, users, m := fixture(t)
	u := NewUpdater(Config{LR: 0.1, L2: 0}, m, users, &fakeLog{})
	defer u.Close()
	if u.params.L2 != 0 || u.params.TargetCap != 5 {
		t.Fatalf("params %+v, want L2 0 and cap 5 (the model says none)", u.params)
	}
	m.TargetCap = 3
	u.SetModel(m)
	if u.params.TargetCap != 3 {
		t.Fatalf("params %+v, want the model's cap 3", u.params)
	}
	u2 := NewUpdater(Config{TargetCap: 7}, m, users, &fakeLog{})
	defer u2.Close()
	if u2.params.TargetCap != 7 || u2.params.L2 != 0 {
		t.Fatalf("params %+v, want the configured cap 7", u2.params)
	}
}

// After Close, a batch is refused or its wait fails: it never blocks.
func TestUpdaterEnqueueAfterClose(t *testing.T) {
	_, users, m := fixture(t)
	u := NewUpdater(DefaultConfig(), m, users, &fakeLog{})
	u.Close()
	done := make(chan error, 1)
	go func() {
		for i := range 50 { // the queue has room: try more than once
			if err := u.Handle(t.Context(), events(3, uint64(i))); err == nil {
				done <- errors.New("Handle succeeded after Close")
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Handle blocked after Close")
	}
}
