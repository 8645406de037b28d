package online

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Position is an input position: a partition and an offset of the
// interactions topic. A user's events all come from one partition (the key is
// the user id), so the offset orders them in the order they were published;
// NoPosition means no event yet.
type Position struct {
	Partition int32
	Offset    int64
}

// NoPosition is the position of a state that has seen no event.
var NoPosition = Position{Partition: -1, Offset: -1}

// Covers reports whether the message at (partition, offset) is at or before
// p: a redelivery of a message already processed.
func (p Position) Covers(partition int, offset int64) bool {
	return p.Offset >= 0 && int(p.Partition) == partition && offset <= p.Offset
}

// RingSize is the number of a user's most recent events kept in the state's
// ring: a message whose event id is in the ring is a duplicate (a producer
// retry, a re-POST). A duplicate published more than RingSize events of the
// same user after the original is applied again. 16 entries are 512 bytes of
// every changelog record, written at each flush of the user: at 32 the
// changelog's bytes bounded the updater's drain rate.
const RingSize = 16

// RecentEvent is one entry of a user's ring of recent events.
type RecentEvent struct {
	EventID     uint64
	VideoID     uint32
	WatchRatio  float32
	EventTimeMs int64
	Offset      int64 // input offset (on the user's partition)
	// Source is the event's stream.Source (0 in states of format 2: unknown).
	Source uint8
}

// UserState is one user's durable updater state: the value of the changelog
// record keyed by the user id.
type UserState struct {
	UserID       uint32
	ModelVersion string // the version base belongs to
	// Pos is the input position of the last message processed for the user
	// (applied, cold item or duplicate): a message at or before it is a
	// redelivery.
	Pos Position
	// Epoch is the fencing epoch of the updater that wrote the state
	// (stream.AcquireEpoch; 0: none): a restore ignores a record from an
	// older epoch than an earlier record of the user (a stale writer's), and
	// Redis refuses one.
	Epoch uint64
	// NewestEventMs is the newest event time applied (an event older than it
	// is late). 0: none.
	NewestEventMs int64
	Applied       uint64    // events applied under ModelVersion
	ProducedAtUs  int64     // produced-at time of the last processed event
	UpdatedAtMs   int64     // when this state was last changed
	Base          []float32 // the offline vector a0 (Dim)
	Vec           []float32 // the online residual (Dim)
	// Ring holds the user's most recent events (applied or cold), oldest
	// first, at most RingSize.
	Ring []RecentEvent

	// seen are the videos of the events processed since the user's last
	// snapshot, for the long watch history in Redis (cache.UserRecord.Seen);
	// not in the changelog.
	seen []uint32

	durable bool // some version of this state is in the changelog
	// repair: the user's latest changelog record is a stale writer's (an
	// older epoch than the state restored), so the owner writes this state
	// again before compaction can keep the stale one.
	repair bool
}

// newState returns the state of a user with no event yet.
func newState(uid uint32) *UserState { return &UserState{UserID: uid, Pos: NoPosition} }

// inRing reports whether an event id is among the user's recent events.
func (s *UserState) inRing(id uint64) bool {
	for i := range s.Ring {
		if s.Ring[i].EventID == id {
			return true
		}
	}
	return false
}

// remember adds an event to the ring, dropping the oldest when it is full.
func (s *UserState) remember(e RecentEvent) {
	if len(s.Ring) < RingSize {
		s.Ring = append(s.Ring, e)
		return
	}
	copy(s.Ring, s.Ring[1:])
	s.Ring[len(s.Ring)-1] = e
}

const (
	stateFormat   = 3
	stateFormatV2 = 2 // no epoch (read as epoch 0)
	// stateFixed is the encoded size of a state without its version, vectors
	// and ring.
	stateFixed    = 1 + 2 + 4 + 8 + 8 + 8 + 8 + 8 + 8 + 2 + 2
	ringEntrySize = 8 + 4 + 4 + 8 + 8 + 1
	ringEntryV2   = ringEntrySize - 1 // format 2: no source
)

// ErrBadState marks a changelog value that does not decode.
var ErrBadState = errors.New("online: bad user state")

// StateSize is the encoded size of a state.
func StateSize(s *UserState) int {
	return stateFixed + len(s.ModelVersion) + 8*len(s.Base) + ringEntrySize*len(s.Ring)
}

// AppendState appends the changelog encoding of s to dst. Layout, format 3
// (little endian): format u8 = 3, version length u16, version, input
// partition i32, input offset i64, epoch u64, newest event time ms i64, applied u64,
// produced_at_us i64, updated_at_ms i64, dim u16, base f32*dim, vec f32*dim,
// ring length u16, ring entries (event id u64, video id u32, watch ratio f32,
// event time ms i64, input offset i64, source u8) oldest first. Format 2 is
// format 3 without the epoch (read as epoch 0) and the ring's sources (read as
// 0, unknown). Format 1 (an event-id
// high-water mark instead of a position and a ring) is rejected: a state
// without its position cannot tell a redelivery from a new event.
func AppendState(dst []byte, s *UserState) []byte {
	if len(s.Base) != len(s.Vec) {
		panic(fmt.Sprintf("online: state of user %d: base %d and vec %d differ in length", s.UserID, len(s.Base), len(s.Vec)))
	}
	if len(s.Ring) > RingSize {
		panic(fmt.Sprintf("online: state of user %d: ring of %d > %d", s.UserID, len(s.Ring), RingSize))
	}
	dst = append(dst, stateFormat)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(s.ModelVersion)))
	dst = append(dst, s.ModelVersion...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(s.Pos.Partition))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(s.Pos.Offset))
	dst = binary.LittleEndian.AppendUint64(dst, s.Epoch)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(s.NewestEventMs))
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
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(s.Ring)))
	for _, r := range s.Ring {
		dst = binary.LittleEndian.AppendUint64(dst, r.EventID)
		dst = binary.LittleEndian.AppendUint32(dst, r.VideoID)
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(r.WatchRatio))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(r.EventTimeMs))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(r.Offset))
		dst = append(dst, r.Source)
	}
	return dst
}

// DecodeState decodes a changelog value into s (UserID is the caller's: it is
// the record's key). s's slices are reused when they have the capacity.
func DecodeState(b []byte, s *UserState) error {
	if len(b) < 3 {
		return fmt.Errorf("%w: truncated", ErrBadState)
	}
	fixed := stateFixed
	switch b[0] {
	case stateFormat:
	case stateFormatV2:
		fixed -= 8
	case 1:
		return fmt.Errorf("%w: format 1 (no input position)", ErrBadState)
	default:
		return fmt.Errorf("%w: format %d", ErrBadState, b[0])
	}
	vl := int(binary.LittleEndian.Uint16(b[1:]))
	b = b[3:]
	v3 := fixed == stateFixed
	if len(b) < vl+fixed-3-2 {
		return fmt.Errorf("%w: truncated", ErrBadState)
	}
	s.ModelVersion = string(b[:vl])
	b = b[vl:]
	s.Pos.Partition = int32(binary.LittleEndian.Uint32(b))
	s.Pos.Offset = int64(binary.LittleEndian.Uint64(b[4:]))
	s.Epoch = 0
	if v3 {
		s.Epoch = binary.LittleEndian.Uint64(b[12:])
		b = b[8:]
	}
	s.NewestEventMs = int64(binary.LittleEndian.Uint64(b[12:]))
	s.Applied = binary.LittleEndian.Uint64(b[20:])
	s.ProducedAtUs = int64(binary.LittleEndian.Uint64(b[28:]))
	s.UpdatedAtMs = int64(binary.LittleEndian.Uint64(b[36:]))
	dim := int(binary.LittleEndian.Uint16(b[44:]))
	b = b[46:]
	if s.Pos.Offset < -1 || (s.Pos.Offset == -1) != (s.Pos.Partition == -1) || s.Pos.Partition < -1 {
		return fmt.Errorf("%w: input position %d/%d", ErrBadState, s.Pos.Partition, s.Pos.Offset)
	}
	if len(b) < 8*dim+2 {
		return fmt.Errorf("%w: %d bytes for vectors of dim %d", ErrBadState, len(b), dim)
	}
	s.Base = growF32(s.Base, dim)
	s.Vec = growF32(s.Vec, dim)
	for i := range dim {
		s.Base[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		s.Vec[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*(dim+i):]))
	}
	b = b[8*dim:]
	n := int(binary.LittleEndian.Uint16(b))
	b = b[2:]
	entry := ringEntrySize
	if !v3 {
		entry = ringEntryV2
	}
	if n > RingSize || len(b) != n*entry {
		return fmt.Errorf("%w: ring of %d entries in %d bytes", ErrBadState, n, len(b))
	}
	switch {
	case n == 0:
		s.Ring = nil
	case cap(s.Ring) >= n:
		s.Ring = s.Ring[:n]
	default:
		s.Ring = make([]RecentEvent, n, RingSize)
	}
	for i := range s.Ring {
		e := b[i*entry:]
		s.Ring[i] = RecentEvent{EventID: binary.LittleEndian.Uint64(e), VideoID: binary.LittleEndian.Uint32(e[8:]),
			WatchRatio:  math.Float32frombits(binary.LittleEndian.Uint32(e[12:])),
			EventTimeMs: int64(binary.LittleEndian.Uint64(e[16:])), Offset: int64(binary.LittleEndian.Uint64(e[24:]))}
		if v3 {
			s.Ring[i].Source = e[32]
		}
	}
	return nil
}

func growF32(s []float32, n int) []float32 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]float32, n)
}
