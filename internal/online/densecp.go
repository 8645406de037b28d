package online

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sort"
)

// DenseCheckpoint is the dense tower's durable state: its weights after Steps
// events under Version, and the input offsets (highest per partition) of the
// batch whose flush wrote it. One record per flush on the dense topic, keyed by
// the model version (compacted: the latest survives).
type DenseCheckpoint struct {
	Version string
	Steps   uint64
	Offsets map[int]int64
	Weights []float32
}

// DenseWriter is implemented by a ChangelogWriter that also keeps dense
// checkpoints; the flusher writes one after each job's user states.
type DenseWriter interface {
	WriteDense(ctx context.Context, cp *DenseCheckpoint) error
}

const denseFormat = 1

// AppendDense encodes cp: format u8, version length u16, version, steps u64,
// offsets count u32, (partition u32, offset i64) ascending, weights count u32,
// weights f32, all little endian.
func AppendDense(b []byte, cp *DenseCheckpoint) []byte {
	le := binary.LittleEndian
	b = append(b, denseFormat)
	b = le.AppendUint16(b, uint16(len(cp.Version)))
	b = append(b, cp.Version...)
	b = le.AppendUint64(b, cp.Steps)
	parts := make([]int, 0, len(cp.Offsets))
	for p := range cp.Offsets {
		parts = append(parts, p)
	}
	sort.Ints(parts)
	b = le.AppendUint32(b, uint32(len(parts)))
	for _, p := range parts {
		b = le.AppendUint32(b, uint32(p))
		b = le.AppendUint64(b, uint64(cp.Offsets[p]))
	}
	b = le.AppendUint32(b, uint32(len(cp.Weights)))
	for _, w := range cp.Weights {
		b = le.AppendUint32(b, math.Float32bits(w))
	}
	return b
}

// DecodeDense decodes a checkpoint made by AppendDense.
func DecodeDense(b []byte) (*DenseCheckpoint, error) {
	le := binary.LittleEndian
	bad := fmt.Errorf("%w: dense checkpoint", ErrBadState)
	if len(b) < 3 || b[0] != denseFormat {
		return nil, bad
	}
	vl := int(le.Uint16(b[1:]))
	b = b[3:]
	if len(b) < vl+12 {
		return nil, bad
	}
	cp := &DenseCheckpoint{Version: string(b[:vl]), Offsets: map[int]int64{}}
	b = b[vl:]
	cp.Steps = le.Uint64(b)
	n := int(le.Uint32(b[8:]))
	b = b[12:]
	if n < 0 || len(b) < 12*n+4 {
		return nil, bad
	}
	for i := 0; i < n; i++ {
		cp.Offsets[int(le.Uint32(b))] = int64(le.Uint64(b[4:]))
		b = b[12:]
	}
	nw := int(le.Uint32(b))
	b = b[4:]
	if len(b) != 4*nw {
		return nil, bad
	}
	cp.Weights = make([]float32, nw)
	for i := range cp.Weights {
		cp.Weights[i] = math.Float32frombits(le.Uint32(b[4*i:]))
	}
	return cp, nil
}
