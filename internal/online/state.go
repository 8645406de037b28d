package online

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// UserState is one user's durable updater state: the value of the changelog
// record keyed by the user id.
type UserState struct {
	UserID       uint32
	ModelVersion string    // the version base belongs to
	HWM          uint64    // id of the last applied event (0: none)
	Applied      uint64    // events applied under ModelVersion
	ProducedAtUs int64     // produced-at time of the event HWM names
	UpdatedAtMs  int64     // when this state was last changed
	Base         []float32 // the offline vector a0 (Dim)
	Vec          []float32 // the online residual (Dim)

	durable bool // some version of this state is in the changelog
}

const stateFormat = 1

// ErrBadState marks a changelog value that does not decode.
var ErrBadState = errors.New("online: bad user state")

// AppendState appends the changelog encoding of s to dst. Layout (little
// endian): format u8, version length u16, version, hwm u64, applied u64,
// produced_at_us i64, updated_at_ms i64, dim u16, base f32*dim, vec f32*dim.
func AppendState(dst []byte, s *UserState) []byte {
	if len(s.Base) != len(s.Vec) {
		panic(fmt.Sprintf("online: state of user %d: base %d and vec %d differ in length", s.UserID, len(s.Base), len(s.Vec)))
	}
	dst = append(dst, stateFormat)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(s.ModelVersion)))
	dst = append(dst, s.ModelVersion...)
	dst = binary.LittleEndian.AppendUint64(dst, s.HWM)
	dst = binary.LittleEndian.AppendUint64(dst, s.Applied)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(s.ProducedAtUs))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(s.UpdatedAtMs))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(s.Base)))
	for _, f := range s.Base {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(f))
	}
	for _, f := range s.Vec {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(f))
	}
	return dst
}

// DecodeState decodes a changelog value into s (UserID is the caller's: it is
// the record's key). s's slices are reused when they have the capacity.
func DecodeState(b []byte, s *UserState) error {
	if len(b) < 3 || b[0] != stateFormat {
		return fmt.Errorf("%w: format", ErrBadState)
	}
	vl := int(binary.LittleEndian.Uint16(b[1:]))
	b = b[3:]
	if len(b) < vl+34 {
		return fmt.Errorf("%w: truncated", ErrBadState)
	}
	s.ModelVersion = string(b[:vl])
	b = b[vl:]
	s.HWM = binary.LittleEndian.Uint64(b)
	s.Applied = binary.LittleEndian.Uint64(b[8:])
	s.ProducedAtUs = int64(binary.LittleEndian.Uint64(b[16:]))
	s.UpdatedAtMs = int64(binary.LittleEndian.Uint64(b[24:]))
	dim := int(binary.LittleEndian.Uint16(b[32:]))
	b = b[34:]
	if len(b) != 8*dim {
		return fmt.Errorf("%w: %d vector bytes for dim %d", ErrBadState, len(b), dim)
	}
	s.Base = growF32(s.Base, dim)
	s.Vec = growF32(s.Vec, dim)
	for i := range dim {
		s.Base[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		s.Vec[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*(dim+i):]))
	}
	return nil
}

func growF32(s []float32, n int) []float32 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]float32, n)
}
