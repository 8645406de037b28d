package cache

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"
)

// weirdFloats covers the values a bit-exact encoding must keep.
var weirdFloats = []float32{
	0, float32(math.Copysign(0, -1)), 1, -1, math.MaxFloat32, math.SmallestNonzeroFloat32,
	float32(math.Inf(1)), float32(math.Inf(-1)),
	math.Float32frombits(0x7fc00001), // quiet NaN with payload
	math.Float32frombits(0xff800123), // signalling NaN, negative
}

func floatBits(fs []float32) []uint32 {
	out := make([]uint32, len(fs))
	for i, f := range fs {
		out[i] = math.Float32bits(f)
	}
	return out
}

func TestUserRecordRoundTripBitExact(t *testing.T) {
	tests := []struct {
		name    string
		version string
		rec     UserRecord
	}{
		{"empty embedding", "v1", UserRecord{UserID: 7}},
		{"weird floats", "2026-11-26T18.00_a-b", UserRecord{
			UserID: 1, Embedding: weirdFloats, Bias: math.Float32frombits(0x7fc0beef),
			UpdatedAtMs: -5, InputPartition: math.MaxInt32, InputNext: math.MaxInt64, EventProducedAtMs: math.MaxInt64,
		}},
		{"dim 64", "v", UserRecord{UserID: math.MaxUint32, Embedding: make([]float32, 64), Bias: 0.25, UpdatedAtMs: 1764182000123, InputPartition: 0, InputNext: 1 << 40, EventProducedAtMs: 1764182000000}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := appendUserRecord(nil, tc.version, &tc.rec)
			got := UserRecord{UserID: tc.rec.UserID}
			if err := decodeUserRecord(string(b), &got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got.ModelVersion != tc.version || got.UserID != tc.rec.UserID || got.InputPartition != tc.rec.InputPartition || got.InputNext != tc.rec.InputNext ||
				got.UpdatedAtMs != tc.rec.UpdatedAtMs || got.EventProducedAtMs != tc.rec.EventProducedAtMs ||
				math.Float32bits(got.Bias) != math.Float32bits(tc.rec.Bias) ||
				!reflect.DeepEqual(floatBits(got.Embedding), floatBits(tc.rec.Embedding)) {
				t.Fatalf("round trip:\n got %+v\nwant %+v (version %q)", got, tc.rec, tc.version)
			}
			if again := appendUserRecord(nil, got.ModelVersion, &got); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs")
			}
		})
	}
}

func TestUserRecordDecodeRejects(t *testing.T) {
	good := appendUserRecord(nil, "v1", &UserRecord{Embedding: []float32{1, 2, 3}})
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"format 0", append([]byte{0}, good[1:]...)},
		{"format 4", append([]byte{4}, good[1:]...)},
		{"format 1 tag on a format 3 body", append([]byte{1}, good[1:]...)},
		{"format 2 tag on a format 3 body", append([]byte{2}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(append([]byte{}, good...), 0)},
		{"version longer than value", append([]byte{3, 200}, good[2:]...)},
	}
	huge := append([]byte{}, good...)
	huge[len(huge)-13] = 0xff // high byte of the dim field: dim = 0xff000003
	tests = append(tests, struct {
		name string
		b    []byte
	}{"huge dim", huge})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r UserRecord
			if err := decodeUserRecord(string(tc.b), &r); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestServedListRoundTripBitExact(t *testing.T) {
	tests := []ServedList{
		{ModelVersion: "v1"},
		{ModelVersion: "v1", ServedAtMs: 123, Items: []uint32{5, 0, math.MaxUint32}},
		{ModelVersion: "v2", ServedAtMs: -1, Items: []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, Scores: weirdFloats},
		{ModelVersion: "v3", Items: []uint32{9, 8}, Predicted: []float32{0.5, float32(math.NaN())}},
		{ModelVersion: "v4", Items: []uint32{9, 8}, Scores: []float32{3, 2}, Predicted: []float32{0.5, 1.5}},
	}
	for _, l := range tests {
		b := appendServedList(nil, &l)
		var got ServedList
		if err := decodeServedList(string(b), &got); err != nil {
			t.Fatalf("%+v: decode: %v", l, err)
		}
		if got.ModelVersion != l.ModelVersion || got.ServedAtMs != l.ServedAtMs ||
			len(got.Items) != len(l.Items) || (len(l.Items) > 0 && !reflect.DeepEqual(got.Items, l.Items)) ||
			!reflect.DeepEqual(floatBits(got.Scores), floatBits(l.Scores)) ||
			!reflect.DeepEqual(floatBits(got.Predicted), floatBits(l.Predicted)) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, l)
		}
		if again := appendServedList(nil, &got); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs for %+v", l)
		}
	}
}

func TestItemChunkRoundTripBitExact(t *testing.T) {
	ids := []uint32{3, 1, 4}
	biases := []float32{weirdFloats[2], weirdFloats[8], weirdFloats[1]}
	vecs := append(append([]float32{}, weirdFloats...), 0, 1) // 12 = 3 x dim 4
	b := appendItemChunk(nil, 4, ids, biases, vecs)
	gi, gb, gv := make([]uint32, 3), make([]float32, 3), make([]float32, 12)
	if err := decodeItemChunk(string(b), 4, gi, gb, gv); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gi, ids) || !reflect.DeepEqual(floatBits(gb), floatBits(biases)) || !reflect.DeepEqual(floatBits(gv), floatBits(vecs)) {
		t.Fatalf("round trip differs")
	}
	if err := decodeItemChunk(string(b), 5, gi, gb, gv); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("wrong dim accepted: %v", err)
	}
	if err := decodeItemChunk(string(b[:len(b)-1]), 4, gi, gb, gv); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated chunk accepted: %v", err)
	}
}

// FuzzDecodeUserRecord: the decoder never panics; whatever it accepts in the
// current format re-encodes to exactly the same bytes (the encoding is
// canonical), and a format-1 record it still reads re-encodes in the current
// format to the same record.
func FuzzDecodeUserRecord(f *testing.F) {
	f.Add(appendUserRecord(nil, "v1", &UserRecord{Embedding: []float32{1, 2}, Bias: 3, InputPartition: 1, InputNext: 9}))
	f.Add(appendUserRecord(nil, "", &UserRecord{}))
	f.Add(appendUserRecord(nil, "2026-11-26", &UserRecord{Embedding: weirdFloats}))
	f.Add([]byte{1})
	f.Add([]byte{1, 255, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r UserRecord
		if err := decodeUserRecord(string(b), &r); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again := appendUserRecord(nil, r.ModelVersion, &r)
		if b[0] == userRecordFormatV3 {
			if !bytes.Equal(again, b) {
				t.Fatalf("accepted %x but re-encodes to %x", b, again)
			}
			return
		}
		var r2 UserRecord
		// Compared through the canonical bytes: a NaN field is not equal to itself.
		if err := decodeUserRecord(string(again), &r2); err != nil || again[0] != userRecordFormatV3 || !bytes.Equal(appendUserRecord(nil, r2.ModelVersion, &r2), again) {
			t.Fatalf("format-1/2 record %x: re-encoded %x decodes to %+v (%v), want %+v", b, again, r2, err, r)
		}
	})
}

// FuzzDecodeServedList: same property for served lists.
func FuzzDecodeServedList(f *testing.F) {
	f.Add(appendServedList(nil, &ServedList{ModelVersion: "v1", Items: []uint32{1, 2}, Scores: []float32{1, 2}}))
	f.Add(appendServedList(nil, &ServedList{}))
	f.Add([]byte{1, 3, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var l ServedList
		if err := decodeServedList(string(b), &l); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := appendServedList(nil, &l); !bytes.Equal(again, b) {
			t.Fatalf("accepted %x but re-encodes to %x", b, again)
		}
	})
}

// FuzzDecodeItemChunk: the chunk decoder never panics whatever the bytes and
// the expected shape, and what it accepts re-encodes to the same bytes.
func FuzzDecodeItemChunk(f *testing.F) {
	f.Add(appendItemChunk(nil, 2, []uint32{1, 2}, []float32{0.5, 1}, []float32{1, 2, 3, 4}), 2, 2)
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0}, 0, 0)
	f.Fuzz(func(t *testing.T, b []byte, dim, n int) {
		if dim < 0 || n < 0 || dim > 64 || n > 64 {
			return
		}
		ids, biases, vecs := make([]uint32, n), make([]float32, n), make([]float32, n*dim)
		if err := decodeItemChunk(string(b), dim, ids, biases, vecs); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := appendItemChunk(nil, dim, ids, biases, vecs); !bytes.Equal(again, b) {
			t.Fatalf("accepted %x but re-encodes to %x", b, again)
		}
	})
}
