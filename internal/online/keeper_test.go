package online

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/stream"
)

type fakeSource struct{ states map[uint32]*UserState }

func (f *fakeSource) Read(context.Context, []int) (map[uint32]*UserState, error) {
	return f.states, nil
}
func (f *fakeSource) ReadDense(context.Context) (*DenseCheckpoint, error) { return nil, nil }

type fakeMarkers struct {
	mu  sync.Mutex
	set map[string]bool
}

func (f *fakeMarkers) TouchMarker(_ context.Context, name string, _ time.Duration) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.set[name], nil
}

func (f *fakeMarkers) SetMarker(_ context.Context, name string, _ int64, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.set[name] = true
	return nil
}

// An assignment restores the owned users and, when the marker is gone,
// rewrites them to Redis; one under a changed partition count is a
// permanent error.
func TestKeeperOnAssign(t *testing.T) {
	_, users, m := fixture(t)
	u := newTestUpdater(t, m, users, &fakeLog{})
	st := &UserState{UserID: 4, ModelVersion: "v1", Pos: Position{0, 9}, Base: make([]float32, dim), Vec: make([]float32, dim)}
	st.Vec[0] = 0.5
	markers := &fakeMarkers{set: map[string]bool{}}
	count := 1
	k := &Keeper{Updater: u, State: &fakeSource{states: map[uint32]*UserState{4: st}}, Markers: markers, Marker: "m",
		MarkerTTL: time.Hour, Partitions: 1, CountPartitions: func(context.Context) (int, error) { return count, nil }}
	if err := k.OnAssign(t.Context(), []int{0}); err != nil {
		t.Fatal(err)
	}
	if s, ok := u.State(4); !ok || s.Pos != (Position{0, 9}) {
		t.Fatalf("user 4 not restored: %+v", s)
	}
	if r, ok := users.recs[ukey("v1", 4)]; !ok || r.InputNext != 10 || !markers.set["m"] {
		t.Fatalf("Redis not rebuilt: %+v, marker %v", r, markers.set)
	}
	count = 2
	err := k.OnAssign(t.Context(), []int{0})
	if err == nil || !strings.Contains(err.Error(), "partition count") {
		t.Fatalf("OnAssign under a changed partition count: %v", err)
	}
	if !stream.IsPermanent(err) {
		t.Fatalf("error %v is not permanent: the consumer would retry it forever", err)
	}
}
