package cache

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"
)

func testServedRecord(id string, user uint32, part int32, servedMS int64) ServedRecord {
	return ServedRecord{ID: id, User: user, Partition: part, Version: "v1", Fallback: "", K: 3,
		LastPartition: 2, LastOffset: 1234, LastProducedMS: servedMS - 50, ServedMS: servedMS,
		UserVec: []float32{0.5, -1, float32(math.Inf(1))}, UserBias: -0.25,
		Slots: []ServedSlot{{Video: 7, Score: 1.5, PredictedWatchRatio: 1.1, Propensity: 1}, {Video: 9, Score: 1, PredictedWatchRatio: 0.9, Propensity: 1}}}
}

func TestServedRecordRoundTrip(t *testing.T) {
	r := testServedRecord("a-1", 42, 3, 1700000000123)
	r.Fallback, r.Candidates = "popularity", "small_matrix"
	var got ServedRecord
	if err := decodeServedRecord(appendServedRecord(nil, &r), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip:\n%+v\n%+v", got, r)
	}
	b := appendServedRecord(nil, &r)
	for n := range len(b) {
		if err := decodeServedRecord(b[:n], &got); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
	if err := decodeServedRecord(append(b, 0), &got); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("trailing byte: %v", err)
	}
}

func testServedLog(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := t.Context()
	// Serve times near now: the partition index drops lists older than the retention.
	base := time.Now().UnixMilli() - 10000
	for i := range 20 {
		r := testServedRecord(fmt.Sprintf("l%02d", i), uint32(i%2), int32(i%2), base+int64(100*i))
		w, err := s.PutServedRecord(ctx, &r)
		if err != nil || w <= 0 || r.WrittenMS != w {
			t.Fatalf("put %d: %d, %v", i, w, err)
		}
	}
	got, bad, err := s.ServedInPartition(ctx, 0, base+200, base+800)
	if err != nil || bad != 0 {
		t.Fatal(err, bad)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	if fmt.Sprint(ids) != "[l02 l04 l06 l08]" {
		t.Errorf("partition 0 in [1200, 1800]: %v", ids)
	}
	if got[0].User != 0 || got[0].ServedMS != base+200 || got[0].WrittenMS <= 0 || len(got[0].Slots) != 2 {
		t.Errorf("record %+v", got[0])
	}
	// Per user, only the last ServedPerUser lists are indexed.
	u1, _, err := s.ServedForUser(ctx, 1)
	if err != nil || len(u1) != 10 || u1[0].ID != "l01" {
		t.Fatalf("user 1: %d lists, %v", len(u1), err)
	}
	for i := range 20 {
		r := testServedRecord(fmt.Sprintf("m%02d", i), 5, 1, base+int64(5000+i))
		if _, err := s.PutServedRecord(ctx, &r); err != nil {
			t.Fatal(err)
		}
	}
	if u5, _, _ := s.ServedForUser(ctx, 5); len(u5) != ServedPerUser || u5[0].ID != "m04" {
		t.Errorf("user 5 keeps %d lists from %v, want %d from m04", len(u5), u5[0].ID, ServedPerUser)
	}
	for _, bad := range []ServedRecord{{ID: ""}, {ID: "a:b"}, {ID: "x", Partition: -1}, {ID: "x", Slots: make([]ServedSlot, maxServedItems+1)}} {
		if _, err := s.PutServedRecord(ctx, &bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad record %q accepted: %v", bad.ID, err)
		}
	}
}
