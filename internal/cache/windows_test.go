package cache

import (
	"errors"
	"maps"
	"sync"
	"testing"
)

func testWindows(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := t.Context()
	d := func(kind byte, idx int64, field string, delta int64) WindowDelta {
		return WindowDelta{Kind: kind, Index: idx, Field: field, Delta: delta}
	}
	set := func(idx int64, field string, m uint32) WindowDelta {
		return WindowDelta{Kind: WindowByTime, Index: idx, Field: field, Distinct: true, Member: m}
	}
	batch1 := []WindowDelta{d(WindowByTime, 5, "hits", 2), d(WindowByTime, 5, "abs_err_u", 400000), d(WindowByCount, 0, "hits", 2),
		set(5, "served_videos", 10), set(5, "served_videos", 11), set(5, "served_videos", 10)}
	ok, err := s.ApplyWindows(ctx, "g1", []OffsetRange{{Partition: 0, From: 100, To: 109, Watermark: 5000, Resume: 90}, {Partition: 3, From: 7, To: 7}}, batch1)
	if err != nil || !ok {
		t.Fatalf("first batch: %v, %v", ok, err)
	}
	// The same batch again (a restarted replica re-read it): skipped whole.
	ok, err = s.ApplyWindows(ctx, "g1", []OffsetRange{{Partition: 0, From: 100, To: 109}, {Partition: 3, From: 7, To: 7}}, batch1)
	if err != nil || ok {
		t.Fatalf("repeated batch: applied %v, %v", ok, err)
	}
	// A sub-range of what is recorded is a repeat too.
	if ok, err := s.ApplyWindows(ctx, "g1", []OffsetRange{{Partition: 0, From: 102, To: 105}}, batch1); err != nil || ok {
		t.Fatalf("sub-range: applied %v, %v", ok, err)
	}
	// The continuation applies.
	if ok, err := s.ApplyWindows(ctx, "g1", []OffsetRange{{Partition: 0, From: 110, To: 119, Watermark: 7000, Resume: 95}}, []WindowDelta{d(WindowByTime, 5, "hits", 1), d(WindowByTime, 6, "hits", 4), set(5, "served_videos", 12)}); err != nil || !ok {
		t.Fatalf("continuation: %v, %v", ok, err)
	}
	for _, c := range []struct {
		name   string
		ranges []OffsetRange
	}{
		{"gap", []OffsetRange{{Partition: 0, From: 125, To: 130}}},
		{"partial overlap", []OffsetRange{{Partition: 0, From: 115, To: 125}}},
		{"mix of recorded and new", []OffsetRange{{Partition: 0, From: 100, To: 109}, {Partition: 3, From: 8, To: 9}}},
	} {
		if _, err := s.ApplyWindows(ctx, "g1", c.ranges, batch1); !errors.Is(err, ErrOffsets) {
			t.Errorf("%s: err %v, want ErrOffsets", c.name, err)
		}
	}
	if _, err := s.ApplyWindows(ctx, "g1", []OffsetRange{{Partition: 0, From: 9, To: 8}}, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("inverted range: %v", err)
	}
	if _, err := s.ApplyWindows(ctx, "g:1", nil, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad group name: %v", err)
	}
	off, err := s.WindowOffsets(ctx, "g1")
	if err != nil || !maps.Equal(off, map[int32]PartitionPosition{0: {Next: 120, Watermark: 7000, Resume: 95}, 3: {Next: 8, Watermark: 0, Resume: 0}}) {
		t.Fatalf("offsets %v, %v", off, err)
	}
	w5, err := s.Window(ctx, "g1", WindowByTime, 5)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"hits": 3, "abs_err_u": 400000, "served_videos": 3}; !maps.Equal(w5, want) {
		t.Errorf("window t5 %v, want %v", w5, want)
	}
	if w, _ := s.Window(ctx, "g1", WindowByCount, 0); !maps.Equal(w, map[string]int64{"hits": 2}) {
		t.Errorf("window n0 %v", w)
	}
	if w, err := s.Window(ctx, "g1", WindowByTime, 99); err != nil || len(w) != 0 {
		t.Errorf("absent window %v, %v", w, err)
	}
	if idx, err := s.WindowIndexes(ctx, "g1", WindowByTime); err != nil || len(idx) != 2 || idx[0] != 5 || idx[1] != 6 {
		t.Errorf("time indexes %v, %v", idx, err)
	}
	// Groups are apart.
	if off, _ := s.WindowOffsets(ctx, "g2"); len(off) != 0 {
		t.Errorf("group g2 sees %v", off)
	}
	// Two writers racing on one partition: each batch applies exactly once.
	var wg sync.WaitGroup
	applied := make([]int, 2)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range int64(50) {
				ok, err := s.ApplyWindows(ctx, "race", []OffsetRange{{Partition: 1, From: 10 * b, To: 10*b + 9}}, []WindowDelta{d(WindowByTime, 0, "n", 1)})
				if err != nil && !errors.Is(err, ErrOffsets) {
					t.Error(err)
					return
				}
				if ok {
					applied[w]++
				}
			}
		}()
	}
	wg.Wait()
	w, _ := s.Window(ctx, "race", WindowByTime, 0)
	if w["n"] != int64(applied[0]+applied[1]) || w["n"] < 50 || w["n"] > 50 {
		t.Errorf("racing writers: window n=%d, batches applied %v (want 50 in all)", w["n"], applied)
	}
}
