package cache

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func testOfflineUsers(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, smallChunks()) // 2 KiB chunks: several chunks and pipelines
	ctx := t.Context()
	if _, ok, err := s.GetOfflineUsers(ctx, "v1"); err != nil || ok {
		t.Fatalf("absent offline users: ok=%v err=%v", ok, err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	const n, dim = 500, 8
	want := OfflineUsers{Dim: dim, IDs: make([]uint32, n), Biases: make([]float32, n), Vectors: make([]float32, n*dim)}
	for i := range want.IDs {
		want.IDs[i], want.Biases[i] = uint32(n-i)*3, r.Float32()-0.5
	}
	for i := range want.Vectors {
		want.Vectors[i] = r.Float32()*2 - 1
	}
	if err := s.PutOfflineUsers(ctx, "v1", want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.GetOfflineUsers(ctx, "v1")
	if err != nil || !ok || got.Dim != dim || !slices.Equal(got.IDs, want.IDs) || !slices.Equal(got.Biases, want.Biases) || !slices.Equal(got.Vectors, want.Vectors) {
		t.Fatalf("round trip: dim %d, %d ids, ok=%v err=%v", got.Dim, len(got.IDs), ok, err)
	}
	if err := s.PutOfflineUsers(ctx, "v1", OfflineUsers{Dim: 2, IDs: []uint32{1}, Biases: []float32{0}, Vectors: []float32{1}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("mismatched shape: %v, want ErrInvalid", err)
	}
	if err := s.PutOfflineUsers(ctx, "bad:version", want); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad version: %v, want ErrInvalid", err)
	}
	// A chunk that went missing is an error, not a shorter list.
	if err := s.rdb.Del(ctx, s.k.offlineChunk("v1", 1)).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.GetOfflineUsers(ctx, "v1"); err == nil {
		t.Fatal("a missing chunk read without error")
	}
}

func testStatuses(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := t.Context()
	if m, err := s.Statuses(ctx, "updater"); err != nil || len(m) != 0 {
		t.Fatalf("no statuses: %v %v", m, err)
	}
	if err := s.PutStatus(ctx, "updater", "a-1", []byte(`{"x":1}`), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.PutStatus(ctx, "updater", "b-2", []byte(`{"x":2}`), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.PutStatus(ctx, "other", "c", []byte(`{}`), time.Minute); err != nil {
		t.Fatal(err)
	}
	m, err := s.Statuses(ctx, "updater")
	if err != nil || len(m) != 2 || string(m["a-1"]) != `{"x":1}` || string(m["b-2"]) != `{"x":2}` {
		t.Fatalf("statuses %v %v", m, err)
	}
	if err := s.PutStatus(ctx, "updater", "bad:member", nil, time.Minute); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad member: %v", err)
	}
}
