package towers

import (
	"encoding/binary"
	"hash/crc32"
	"math"
)

// binReader reads the little-endian binaries of this package (the model file,
// the tower-weights blob): magic, body, CRC-32C of everything before it. The
// first error sticks: later reads return zero values, and err reports it.
type binReader struct {
	p   []byte
	err error
	bad func(format string, a ...any) error
}

// openChecked checks raw's magic and checksum and returns a reader of the body.
func openChecked(raw []byte, magic string, bad func(format string, a ...any) error) (*binReader, error) {
	if len(raw) < len(magic)+8 || string(raw[:len(magic)]) != magic {
		return nil, bad("no %q magic", magic)
	}
	le := binary.LittleEndian
	body, sum := raw[:len(raw)-4], le.Uint32(raw[len(raw)-4:])
	if got := crc32.Checksum(body, crcTable); got != sum {
		return nil, bad("checksum %08x, stored %08x", got, sum)
	}
	return &binReader{p: body[len(magic):], bad: bad}, nil
}

func (r *binReader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = r.bad(format, a...)
	}
}

func (r *binReader) u32() int {
	if r.err != nil || len(r.p) < 4 {
		r.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint32(r.p)
	r.p = r.p[4:]
	return int(v)
}

func (r *binReader) byte1() byte {
	if r.err != nil || len(r.p) < 1 {
		r.fail("truncated")
		return 0
	}
	v := r.p[0]
	r.p = r.p[1:]
	return v
}

// str reads a u32 length and that many bytes.
func (r *binReader) str() string {
	n := r.u32()
	if r.err != nil || n > len(r.p) {
		r.fail("truncated string")
		return ""
	}
	s := string(r.p[:n])
	r.p = r.p[n:]
	return s
}

func (r *binReader) f64s(n int) []float64 {
	if r.err != nil || n < 0 || n > len(r.p)/8 {
		r.fail("truncated data")
		return nil
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(r.p[8*i:]))
	}
	r.p = r.p[8*n:]
	return out
}

func (r *binReader) f32s(n int) []float32 {
	if r.err != nil || n < 0 || n > len(r.p)/4 {
		r.fail("truncated data")
		return nil
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(r.p[4*i:]))
	}
	r.p = r.p[4*n:]
	return out
}

// end reports the sticky error, or trailing bytes.
func (r *binReader) end() error {
	if r.err != nil {
		return r.err
	}
	if len(r.p) != 0 {
		return r.bad("%d trailing bytes", len(r.p))
	}
	return nil
}
