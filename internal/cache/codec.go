package cache

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
)

// Binary encodings of the values stored in Redis. Every value starts with a
// format byte so that the layout can evolve; decoders reject unknown formats,
// wrong lengths and trailing bytes with ErrCorrupt. All integers and float32
// bits are little-endian; floats round-trip bit-exactly (NaN payloads included).

const (
	userRecordFormatV1 = 1 // before input positions; still decoded (position unknown)
	userRecordFormatV2 = 2 // before fencing epochs; still decoded (epoch 0)
	userRecordFormatV3 = 3
	servedListFormatV1 = 1
	itemChunkFormatV1  = 1

	// maxDim bounds the embedding dimension a decoder accepts.
	maxDim = 1 << 16
	// maxServedItems bounds the length of a served list a decoder accepts.
	maxServedItems = 1 << 16
	// maxVersionLen bounds an embedded model version string.
	maxVersionLen = 255
)

func le32(s string, off int) uint32 {
	_ = s[off+3]
	return uint32(s[off]) | uint32(s[off+1])<<8 | uint32(s[off+2])<<16 | uint32(s[off+3])<<24
}

func le64(s string, off int) uint64 {
	return uint64(le32(s, off)) | uint64(le32(s, off+4))<<32
}

func appendFloats(b []byte, fs []float32) []byte {
	for _, f := range fs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

func appendUint32s(b []byte, us []uint32) []byte {
	for _, u := range us {
		b = binary.LittleEndian.AppendUint32(b, u)
	}
	return b
}

// decodeFloats fills dst from len(dst)*4 bytes of s starting at off.
func decodeFloats(dst []float32, s string, off int) {
	s = s[off : off+4*len(dst)]
	for i := range dst {
		dst[i] = math.Float32frombits(le32(s, 4*i))
	}
}

func decodeUint32s(dst []uint32, s string, off int) {
	s = s[off : off+4*len(dst)]
	for i := range dst {
		dst[i] = le32(s, 4*i)
	}
}

// User record, format 3:
//
//	[0]      format = 3
//	[1]      L = len(model version), 0..255
//	[2:2+L]  model version
//	then     int32 input partition, uint64 input next offset (0: none),
//	         uint64 writer's fencing epoch (0: none),
//	         int64 updated-at ms, int64 event produced-at ms,
//	         float32 bias, uint32 dim, dim x float32 embedding
//
// Format 2 (written before fencing epochs) is format 3 without the epoch; it
// is still decoded, with epoch 0.
//
// Format 1 (written before input positions) had a uint64 last event id in
// place of the partition and offset; it is still decoded, with the position
// unknown (InputNext 0), and any write replaces it.
const (
	userRecordFixed   = 1 + 1 + 4 + 8 + 8 + 8 + 8 + 4 + 4
	userRecordFixedV2 = 1 + 1 + 4 + 8 + 8 + 8 + 4 + 4
	userRecordFixedV1 = 1 + 1 + 8 + 8 + 8 + 4 + 4
)

// appendUserRecord appends the encoding of r, with model version v, to b.
func appendUserRecord(b []byte, v string, r *UserRecord) []byte {
	if len(v) > maxVersionLen || len(r.Embedding) > maxDim {
		panic("cache: user record exceeds encoding limits") // callers validate first
	}
	b = append(b, userRecordFormatV3, byte(len(v)))
	b = append(b, v...)
	b = binary.LittleEndian.AppendUint32(b, uint32(r.InputPartition))
	b = binary.LittleEndian.AppendUint64(b, uint64(max(r.InputNext, 0)))
	b = binary.LittleEndian.AppendUint64(b, r.Epoch)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.UpdatedAtMs))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.EventProducedAtMs))
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(r.Bias))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Embedding)))
	return appendFloats(b, r.Embedding)
}

// decodeUserRecord decodes s into r (UserID is left to the caller). The
// embedding is freshly allocated.
func decodeUserRecord(s string, r *UserRecord) error {
	if len(s) < 2 {
		return fmt.Errorf("%w: user record: %d bytes", ErrCorrupt, len(s))
	}
	fixed := userRecordFixed
	switch s[0] {
	case userRecordFormatV3:
	case userRecordFormatV2:
		fixed = userRecordFixedV2
	case userRecordFormatV1:
		fixed = userRecordFixedV1
	default:
		return fmt.Errorf("%w: user record: unknown format %d", ErrCorrupt, s[0])
	}
	vl := int(s[1])
	if len(s) < fixed+vl {
		return fmt.Errorf("%w: user record: %d bytes, want >= %d for a version of %d bytes", ErrCorrupt, len(s), fixed+vl, vl)
	}
	off := 2
	version := s[off : off+vl]
	off += vl
	var part int32
	var next int64
	var epoch uint64
	if s[0] >= userRecordFormatV2 {
		part = int32(le32(s, off))
		next = int64(le64(s, off+4))
		off += 12
		if s[0] == userRecordFormatV3 {
			epoch = le64(s, off)
			off += 8
		}
	} else {
		off += 8 // the format-1 event id, meaningless now
	}
	updated := int64(le64(s, off))
	produced := int64(le64(s, off+8))
	bias := math.Float32frombits(le32(s, off+16))
	dim := le32(s, off+20)
	off += 24
	if dim > maxDim {
		return fmt.Errorf("%w: user record: dim %d > %d", ErrCorrupt, dim, maxDim)
	}
	if want := off + 4*int(dim); len(s) != want {
		return fmt.Errorf("%w: user record: %d bytes, want %d for dim %d", ErrCorrupt, len(s), want, dim)
	}
	if next < 0 {
		return fmt.Errorf("%w: user record: input offset %d", ErrCorrupt, next)
	}
	emb := make([]float32, dim)
	decodeFloats(emb, s, off)
	*r = UserRecord{
		UserID:            r.UserID,
		ModelVersion:      version,
		Embedding:         emb,
		Bias:              bias,
		UpdatedAtMs:       updated,
		InputPartition:    part,
		InputNext:         next,
		Epoch:             epoch,
		EventProducedAtMs: produced,
	}
	return nil
}

// Served list, format 1:
//
//	[0]      format = 1
//	[1]      flags: bit0 scores present, bit1 predicted present
//	[2]      L = len(model version)
//	[3:3+L]  model version
//	then     int64 served-at ms, uint32 n, n x uint32 items,
//	         n x float32 scores (if bit0), n x float32 predicted (if bit1)
const (
	servedFixed        = 3 + 8 + 4
	servedHasScores    = 1 << 0
	servedHasPredicted = 1 << 1
)

func appendServedList(b []byte, l *ServedList) []byte {
	var flags byte
	if len(l.Scores) > 0 {
		flags |= servedHasScores
	}
	if len(l.Predicted) > 0 {
		flags |= servedHasPredicted
	}
	b = append(b, servedListFormatV1, flags, byte(len(l.ModelVersion)))
	b = append(b, l.ModelVersion...)
	b = binary.LittleEndian.AppendUint64(b, uint64(l.ServedAtMs))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(l.Items)))
	b = appendUint32s(b, l.Items)
	b = appendFloats(b, l.Scores)
	return appendFloats(b, l.Predicted)
}

func decodeServedList(s string, l *ServedList) error {
	if len(s) < servedFixed {
		return fmt.Errorf("%w: served list: %d bytes, want >= %d", ErrCorrupt, len(s), servedFixed)
	}
	if s[0] != servedListFormatV1 {
		return fmt.Errorf("%w: served list: unknown format %d", ErrCorrupt, s[0])
	}
	flags := s[1]
	if flags&^(servedHasScores|servedHasPredicted) != 0 {
		return fmt.Errorf("%w: served list: unknown flags %#x", ErrCorrupt, flags)
	}
	vl := int(s[2])
	if len(s) < servedFixed+vl {
		return fmt.Errorf("%w: served list: too short for version of %d bytes", ErrCorrupt, vl)
	}
	off := 3
	version := s[off : off+vl]
	off += vl
	servedAt := int64(le64(s, off))
	n := le32(s, off+8)
	off += 12
	if n > maxServedItems {
		return fmt.Errorf("%w: served list: %d items > %d", ErrCorrupt, n, maxServedItems)
	}
	cols := 1
	if flags&servedHasScores != 0 {
		cols++
	}
	if flags&servedHasPredicted != 0 {
		cols++
	}
	if want := off + 4*int(n)*cols; len(s) != want {
		return fmt.Errorf("%w: served list: %d bytes, want %d", ErrCorrupt, len(s), want)
	}
	if n == 0 && flags != 0 {
		return fmt.Errorf("%w: served list: flags %#x on an empty list", ErrCorrupt, flags)
	}
	out := ServedList{ModelVersion: version, ServedAtMs: servedAt, Items: make([]uint32, n)}
	decodeUint32s(out.Items, s, off)
	off += 4 * int(n)
	if flags&servedHasScores != 0 {
		out.Scores = make([]float32, n)
		decodeFloats(out.Scores, s, off)
		off += 4 * int(n)
	}
	if flags&servedHasPredicted != 0 {
		out.Predicted = make([]float32, n)
		decodeFloats(out.Predicted, s, off)
	}
	*l = out
	return nil
}

// Item chunk, format 1 (rows [first, first+n) of a version's items):
//
//	[0]     format = 1
//	[1:5]   uint32 dim
//	[5:9]   uint32 n
//	then    n x uint32 ids, n x float32 biases, n*dim x float32 vectors (row-major)
const itemChunkFixed = 9

func appendItemChunk(b []byte, dim int, ids []uint32, biases, vecs []float32) []byte {
	b = append(b, itemChunkFormatV1)
	b = binary.LittleEndian.AppendUint32(b, uint32(dim))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ids)))
	b = appendUint32s(b, ids)
	b = appendFloats(b, biases)
	return appendFloats(b, vecs)
}

// decodeItemChunk decodes a chunk into the destination rows: len(ids) must be
// the chunk's item count, len(biases) the same, len(vecs) = count*dim.
func decodeItemChunk(s string, dim int, ids []uint32, biases, vecs []float32) error {
	if len(s) < itemChunkFixed || s[0] != itemChunkFormatV1 {
		return fmt.Errorf("%w: item chunk: bad header", ErrCorrupt)
	}
	if d := le32(s, 1); int64(d) != int64(dim) {
		return fmt.Errorf("%w: item chunk: dim %d, want %d", ErrCorrupt, d, dim)
	}
	n := int(le32(s, 5))
	if n != len(ids) {
		return fmt.Errorf("%w: item chunk: %d items, want %d", ErrCorrupt, n, len(ids))
	}
	if want := itemChunkFixed + 4*n*(2+dim); len(s) != want {
		return fmt.Errorf("%w: item chunk: %d bytes, want %d", ErrCorrupt, len(s), want)
	}
	off := itemChunkFixed
	decodeUint32s(ids, s, off)
	off += 4 * n
	decodeFloats(biases, s, off)
	off += 4 * n
	decodeFloats(vecs, s, off)
	return nil
}

func jsonUnmarshalString(s string, v any) error { return json.Unmarshal([]byte(s), v) }
