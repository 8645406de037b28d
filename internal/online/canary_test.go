package online

import (
	"testing"

	"github.com/streamrec/streamrec/internal/cache"
)

// With a canary, the users of its share learn under it and write their
// records under its version, the others under the current one; each arm's
// state is exactly what the arm's version alone would give (the same
// handover as a switch). Clearing it brings its users back.
func TestUpdaterCanaryArms(t *testing.T) {
	items, users, m := fixture(t)
	evs := events(120, 12)
	per := map[uint32]int{}
	for _, e := range evs {
		if per[e.Event.UserID]++; per[e.Event.UserID] > RingSize {
			t.Fatalf("user %d has more events than the ring: the references would differ by the ring's bound", e.Event.UserID)
		}
	}
	// Both versions' offline vectors: the fixture's initial records (the
	// serving records get overwritten).
	off := cache.OfflineUsers{Dim: dim}
	for uid := uint32(0); uid < 10; uid++ {
		r := users.recs[ukey("v1", uid)]
		off.IDs, off.Biases, off.Vectors = append(off.IDs, uid), append(off.Biases, r.Bias), append(off.Vectors, r.Embedding...)
	}
	m.Offline = NewOfflineTable(off)
	canaryItems := &fakeItems{version: "c1", vecs: items.vecs}
	// Reference runs: everyone on v1, and everyone on c1.
	onV1 := newTestUpdater(t, m, &fakeUsers{recs: clone(users.recs)}, &fakeLog{})
	if err := onV1.Handle(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	cm := Model{Items: canaryItems, GlobalMean: m.GlobalMean, Scale: m.Scale, Offline: m.Offline}
	onC1 := newTestUpdater(t, cm, &fakeUsers{recs: clone(users.recs)}, &fakeLog{})
	if err := onC1.Handle(t.Context(), evs); err != nil {
		t.Fatal(err)
	}

	u := newTestUpdater(t, m, users, &fakeLog{})
	if err := u.Handle(t.Context(), evs[:60]); err != nil {
		t.Fatal(err)
	}
	const share = 0.5
	if err := u.SetCanary(cm, share); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Rematerialize(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := u.Handle(t.Context(), evs[60:]); err != nil {
		t.Fatal(err)
	}
	inArm := 0
	for uid := uint32(0); uid < 12; uid++ {
		s, _ := u.State(uid)
		ref := onV1
		if cache.InCanary(uid, share) {
			ref = onC1
			inArm++
		}
		want, _ := ref.State(uid)
		if s.ModelVersion != want.ModelVersion || !equalF32(s.Vec, want.Vec) || !equalF32(s.Base, want.Base) {
			t.Fatalf("user %d (canary %v): %s %v; want %s %v", uid, cache.InCanary(uid, share), s.ModelVersion, s.Vec[:2], want.ModelVersion, want.Vec[:2])
		}
		if _, ok := users.recs[ukey(s.ModelVersion, uid)]; !ok {
			t.Fatalf("user %d: no record under %s", uid, s.ModelVersion)
		}
	}
	if inArm == 0 || inArm == 12 {
		t.Fatalf("%d of 12 users in the canary's half: the test proves nothing", inArm)
	}
	// Cleared: everyone back on v1, as the reference run on v1 alone.
	u.ClearCanary()
	if _, err := u.Rematerialize(t.Context()); err != nil {
		t.Fatal(err)
	}
	for uid := uint32(0); uid < 12; uid++ {
		s, _ := u.State(uid)
		want, _ := onV1.State(uid)
		if s.ModelVersion != "v1" || !equalF32(s.Vec, want.Vec) {
			t.Fatalf("user %d after the canary: %s %v; want v1 %v", uid, s.ModelVersion, s.Vec[:2], want.Vec[:2])
		}
	}
	if err := u.SetCanary(Model{Items: items, GlobalMean: m.GlobalMean, Scale: m.Scale}, share); err == nil {
		t.Fatal("the current version was accepted as its own canary")
	}
}

func clone(m map[string]cache.UserRecord) map[string]cache.UserRecord {
	out := make(map[string]cache.UserRecord, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
