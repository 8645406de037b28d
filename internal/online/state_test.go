package online

import (
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestStateRoundTrip(t *testing.T) {
	s := UserState{UserID: 9, ModelVersion: "v20260101-1", HWM: 1 << 50, Applied: 17, ProducedAtUs: 1764180000123456,
		UpdatedAtMs: 1764180000123, Base: []float32{1, -2, float32(math.Inf(1)), 3.25}, Vec: []float32{0, math.SmallestNonzeroFloat32, -0.5, 7}}
	b := AppendState(nil, &s)
	var got UserState
	got.UserID = 9
	if err := DecodeState(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip: %+v != %+v", got, s)
	}
	for _, bad := range [][]byte{nil, {2}, b[:10], append(append([]byte(nil), b...), 0)} {
		if err := DecodeState(bad, &got); !errors.Is(err, ErrBadState) {
			t.Fatalf("DecodeState(%x) = %v, want ErrBadState", bad, err)
		}
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add(AppendState(nil, &UserState{ModelVersion: "v1", Base: []float32{1, 2}, Vec: []float32{3, 4}}))
	f.Add([]byte{1, 0, 0})
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
	a := &UserState{HWM: 10, ModelVersion: "v1"}
	for _, tc := range []struct {
		next  *UserState
		stale bool
	}{{&UserState{HWM: 9}, true}, {&UserState{HWM: 10, ModelVersion: "v2"}, false}, {&UserState{HWM: 11}, false}} {
		if got := staleAfter(a, tc.next); got != tc.stale {
			t.Errorf("staleAfter(HWM 10, HWM %d) = %v, want %v", tc.next.HWM, got, tc.stale)
		}
	}
}
