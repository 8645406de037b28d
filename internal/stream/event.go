package stream

import (
	"fmt"
	"math"
	"strconv"
)

// SchemaVersion is the version of the event schema written by this package.
const SchemaVersion = 1

// Source says who produced an event.
type Source uint8

// Sources. The zero value is invalid so that a forgotten source is caught.
const (
	SourceReplay    Source = 1
	SourceAPI       Source = 2
	SourceSimulator Source = 3
)

var sourceNames = [...]string{SourceReplay: "replay", SourceAPI: "api", SourceSimulator: "simulator"}

// String returns the source's wire name.
func (s Source) String() string {
	if s >= SourceReplay && s <= SourceSimulator {
		return sourceNames[s]
	}
	return "source(" + strconv.Itoa(int(s)) + ")"
}

// ParseSource parses a wire name.
func ParseSource(name string) (Source, error) {
	switch name {
	case "replay":
		return SourceReplay, nil
	case "api":
		return SourceAPI, nil
	case "simulator":
		return SourceSimulator, nil
	}
	return 0, fmt.Errorf("unknown source %q (want replay, api or simulator)", name)
}

// Event is one interaction, schema v1. See the package doc for each field's rule.
type Event struct {
	EventID         uint64
	UserID          uint32
	VideoID         uint32
	PlayDurationMs  int64
	VideoDurationMs int64
	EventTimeMs     int64
	WatchRatio      float64
	Source          Source
	ProducedAtUs    int64
}

// EventIDSeqBits is the number of low bits of an event id that break ties between
// events of one user in the same millisecond.
const EventIDSeqBits = 12

// MaxEventSeq is the largest tiebreak MakeEventID accepts.
const MaxEventSeq = 1<<EventIDSeqBits - 1

// MakeEventID returns the event id for a user's event at eventTimeMs, seq being the
// tiebreak among that user's events in the same millisecond (0 for the first). Ids
// made this way are unique per user and increase in event-time order. It panics if
// seq is out of range or eventTimeMs is negative: both are programmer errors.
func MakeEventID(eventTimeMs int64, seq uint32) uint64 {
	if seq > MaxEventSeq || eventTimeMs < 0 || eventTimeMs >= 1<<(64-EventIDSeqBits) {
		panic(fmt.Sprintf("stream.MakeEventID(%d, %d): out of range", eventTimeMs, seq))
	}
	return uint64(eventTimeMs)<<EventIDSeqBits | uint64(seq)
}

// EventIDTime returns the event time in Unix ms that an id made by MakeEventID encodes.
func EventIDTime(id uint64) int64 { return int64(id >> EventIDSeqBits) }

// Validate checks the rules of schema v1 that the type system does not.
func (e *Event) Validate() error {
	switch {
	case e.EventID == 0:
		return &DecodeError{Field: "event_id", Reason: "zero"}
	case e.PlayDurationMs < 0:
		return &DecodeError{Field: "play_duration_ms", Reason: "negative duration"}
	case e.VideoDurationMs <= 0:
		return &DecodeError{Field: "video_duration_ms", Reason: "must be positive"}
	case e.EventTimeMs <= 0:
		return &DecodeError{Field: "event_time_ms", Reason: "must be positive"}
	case math.IsNaN(e.WatchRatio) || math.IsInf(e.WatchRatio, 0):
		return &DecodeError{Field: "watch_ratio", Reason: "not finite"}
	case e.WatchRatio < 0:
		return &DecodeError{Field: "watch_ratio", Reason: "negative"}
	case e.Source < SourceReplay || e.Source > SourceSimulator:
		return &DecodeError{Field: "source", Reason: "unknown source"}
	case e.ProducedAtUs <= 0:
		return &DecodeError{Field: "produced_at_us", Reason: "must be positive"}
	}
	return nil
}

// Key returns the Kafka message key of the event: the user id in decimal.
func (e *Event) Key() []byte { return AppendKey(nil, e.UserID) }

// AppendKey appends the message key of a user to dst.
func AppendKey(dst []byte, userID uint32) []byte { return strconv.AppendUint(dst, uint64(userID), 10) }

// DecodeError says why a message is not a valid event. Reason is a short stable
// phrase (it is the dead-letter topic's reason header and a metric label).
type DecodeError struct {
	Field  string // the field at fault, or "" for the message as a whole
	Reason string
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return "event: " + e.Reason
	}
	return "event: " + e.Field + ": " + e.Reason
}
