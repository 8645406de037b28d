package online

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"
)

func TestStateRoundTrip(t *testing.T) {
	s := UserState{UserID: 9, ModelVersion: "v20260101-1", Pos: Position{7, 1 << 50}, Epoch: 1<<40 + 3, NewestEventMs: 1593878903438, Applied: 17,
		ProducedAtUs: 1764180000123456, UpdatedAtMs: 1764180000123, Base: []float32{1, -2, float32(math.Inf(1)), 3.25},
		Vec:  []float32{0, math.SmallestNonzeroFloat32, -0.5, 7},
		Ring: []RecentEvent{{EventID: math.MaxUint64, VideoID: 3, WatchRatio: 0.75, EventTimeMs: 1593878903438, Offset: 1 << 50, Source: 3}, {EventID: 1, Offset: 2}}}
	b := AppendState(nil, &s)
	var got UserState
	got.UserID = 9
	if err := DecodeState(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip: %+v != %+v", got, s)
	}
	if StateSize(&s) != len(b) {
		t.Fatalf("StateSize %d, encoded %d", StateSize(&s), len(b))
	}
	// Format 2 is format 3 without the epoch (read as 0) and without the
	// ring's sources (read as 0).
	vo := 3 + len(s.ModelVersion)
	ringAt := len(b) - len(s.Ring)*ringEntrySize
	format2 := append(append([]byte{2}, b[1:vo+12]...), b[vo+20:ringAt]...)
	for i := range s.Ring {
		e := b[ringAt+i*ringEntrySize:]
		format2 = append(format2, e[:ringEntryV2]...)
	}
	var old UserState
	old.UserID = 9
	want := s
	want.Epoch = 0
	want.Ring = slices.Clone(s.Ring)
	for i := range want.Ring {
		want.Ring[i].Source = 0
	}
	if err := DecodeState(format2, &old); err != nil || !reflect.DeepEqual(old, want) {
		t.Fatalf("format 2: %+v, %v; want %+v", old, err, want)
	}
	format1 := append([]byte{1}, b[1:]...)
	badPos := append([]byte(nil), b...)
	badPos[3+len(s.ModelVersion)+3] = 0x80 // partition < -1
	for _, bad := range [][]byte{nil, {2}, b[:10], b[:len(b)-1], append(append([]byte(nil), b...), 0), format1, badPos,
		append([]byte{2}, b[1:]...), append([]byte{4}, b[1:]...)} {
		if err := DecodeState(bad, &got); !errors.Is(err, ErrBadState) {
			t.Fatalf("DecodeState(%x) = %v, want ErrBadState", bad, err)
		}
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add(AppendState(nil, &UserState{ModelVersion: "v1", Pos: NoPosition, Base: []float32{1, 2}, Vec: []float32{3, 4}}))
	f.Add(AppendState(nil, &UserState{Pos: Position{1, 5}, Base: []float32{1}, Vec: []float32{3}, Ring: []RecentEvent{{EventID: 4, Offset: 5}}}))
	f.Add([]byte{2, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s UserState
		if err := DecodeState(b, &s); err != nil {
			if !errors.Is(err, ErrBadState) {
				t.Fatalf("error not ErrBadState: %v", err)
			}
			return
		}
		var again UserState
		if err := DecodeState(AppendState(nil, &s), &again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func TestStaleAfter(t *testing.T) {
	a := &UserState{Pos: Position{2, 10}, ModelVersion: "v1"}
	for _, tc := range []struct {
		next  Position
		stale bool
	}{{Position{2, 9}, true}, {Position{2, 10}, false}, {Position{2, 11}, false}, {Position{3, 1}, false}} {
		if got := staleAfter(a, &UserState{Pos: tc.next}); got != tc.stale {
			t.Errorf("staleAfter(2/10, %v) = %v, want %v", tc.next, got, tc.stale)
		}
	}
}

// A record from an older fencing epoch is a stale writer's whatever its
// position; a newer epoch may not move the position back either.
func TestStaleAfterEpochs(t *testing.T) {
	prev := &UserState{Pos: Position{2, 10}, Epoch: 5}
	for _, tc := range []struct {
		next  UserState
		stale bool
	}{
		{UserState{Pos: Position{2, 20}, Epoch: 4}, true},
		{UserState{Pos: Position{2, 10}, Epoch: 5}, false},
		{UserState{Pos: Position{2, 11}, Epoch: 6}, false},
		{UserState{Pos: Position{2, 9}, Epoch: 6}, true},
	} {
		if got := staleAfter(prev, &tc.next); got != tc.stale {
			t.Errorf("staleAfter(2/10 epoch 5, %v epoch %d) = %v, want %v", tc.next.Pos, tc.next.Epoch, got, tc.stale)
		}
	}
}
