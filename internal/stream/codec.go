package stream

import (
	"math"
	"strconv"
)

var fieldNames = [...]string{"version", "event_id", "user_id", "video_id", "play_duration_ms",
	"video_duration_ms", "event_time_ms", "watch_ratio", "source", "produced_at_us"}

const numFields = len(fieldNames)

// MaxEventSize bounds an encoded event; longer messages are rejected unread.
const MaxEventSize = 256

// AppendEvent appends the v1 encoding of e to dst and returns the extended slice.
// It does not validate e; producers call Validate first.
func AppendEvent(dst []byte, e *Event) []byte {
	dst = append(dst, "v1,"...)
	dst = strconv.AppendUint(dst, e.EventID, 10)
	dst = append(dst, ',')
	dst = strconv.AppendUint(dst, uint64(e.UserID), 10)
	dst = append(dst, ',')
	dst = strconv.AppendUint(dst, uint64(e.VideoID), 10)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, e.PlayDurationMs, 10)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, e.VideoDurationMs, 10)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, e.EventTimeMs, 10)
	dst = append(dst, ',')
	dst = strconv.AppendFloat(dst, e.WatchRatio, 'g', -1, 64)
	dst = append(dst, ',')
	dst = append(dst, e.Source.String()...)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, e.ProducedAtUs, 10)
	return dst
}

// DecodeEvent parses a v1 message into e. It never allocates on success and
// returns a *DecodeError naming the field and the reason on failure; e is then
// partially written and must not be used.
func DecodeEvent(b []byte, e *Event) error {
	if len(b) == 0 {
		return &DecodeError{Reason: "empty message"}
	}
	if len(b) > MaxEventSize {
		return &DecodeError{Reason: "message too long"}
	}
	var fields [numFields][]byte
	n := 0
	start := 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == ',' {
			if n == numFields {
				return &DecodeError{Reason: "too many fields"}
			}
			fields[n] = b[start:i]
			n++
			start = i + 1
		}
	}
	if n != numFields {
		if n >= 1 && string(fields[0]) != "v1" {
			return versionError(fields[0])
		}
		return &DecodeError{Reason: "want " + strconv.Itoa(numFields) + " fields, got " + strconv.Itoa(n)}
	}
	if string(fields[0]) != "v1" {
		return versionError(fields[0])
	}
	var err error
	if e.EventID, err = parseUint(fields[1], math.MaxUint64, 1); err != nil {
		return err
	}
	if e.EventID == 0 {
		return &DecodeError{Field: fieldNames[1], Reason: "zero"}
	}
	var u uint64
	if u, err = parseUint(fields[2], math.MaxUint32, 2); err != nil {
		return err
	}
	e.UserID = uint32(u)
	if u, err = parseUint(fields[3], math.MaxUint32, 3); err != nil {
		return err
	}
	e.VideoID = uint32(u)
	if e.PlayDurationMs, err = parseInt(fields[4], 4); err != nil {
		return err
	}
	if e.VideoDurationMs, err = parseInt(fields[5], 5); err != nil {
		return err
	}
	if e.EventTimeMs, err = parseInt(fields[6], 6); err != nil {
		return err
	}
	if e.WatchRatio, err = parseFloat(fields[7], 7); err != nil {
		return err
	}
	switch string(fields[8]) {
	case "replay":
		e.Source = SourceReplay
	case "api":
		e.Source = SourceAPI
	case "simulator":
		e.Source = SourceSimulator
	default:
		return &DecodeError{Field: fieldNames[8], Reason: "unknown source"}
	}
	if e.ProducedAtUs, err = parseInt(fields[9], 9); err != nil {
		return err
	}
	return e.Validate()
}

func versionError(v []byte) error {
	if len(v) > 1 && v[0] == 'v' {
		return &DecodeError{Field: "version", Reason: "unsupported schema version"}
	}
	return &DecodeError{Field: "version", Reason: "not a streamrec event"}
}

// parseUint parses a plain decimal (digits only, no sign, no leading zeros but "0").
func parseUint(b []byte, max uint64, field int) (uint64, error) {
	if len(b) == 0 {
		return 0, &DecodeError{Field: fieldNames[field], Reason: "missing"}
	}
	if len(b) > 1 && b[0] == '0' {
		return 0, &DecodeError{Field: fieldNames[field], Reason: "leading zero"}
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			if c == '-' {
				return 0, &DecodeError{Field: fieldNames[field], Reason: "out of range"}
			}
			return 0, &DecodeError{Field: fieldNames[field], Reason: "not a decimal integer"}
		}
		d := uint64(c - '0')
		if v > (max-d)/10 {
			return 0, &DecodeError{Field: fieldNames[field], Reason: "out of range"}
		}
		v = v*10 + d
	}
	return v, nil
}

// parseInt parses an int64 decimal with an optional leading '-' (negative values
// are then rejected by Validate with the field's own rule).
func parseInt(b []byte, field int) (int64, error) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	u, err := parseUint(b, math.MaxInt64, field)
	if err != nil {
		return 0, err
	}
	if neg {
		if u == 0 {
			return 0, &DecodeError{Field: fieldNames[field], Reason: "negative zero"}
		}
		return -int64(u), nil
	}
	return int64(u), nil
}

func notFinite(field int) error {
	return &DecodeError{Field: fieldNames[field], Reason: "not a finite decimal number"}
}

// parseFloat parses the forms strconv.AppendFloat(v, 'g', -1, 64) writes: an
// optional '-', an integer part without leading zeros ("0" alone is one), an
// optional fraction, an optional exponent with an optional sign. A leading '+',
// a leading zero such as "007.5", a bare "." or "5.", NaN, Inf, hex floats and
// underscores are rejected, and so is a negative zero ("-0", "-0.0").
func parseFloat(b []byte, field int) (float64, error) {
	if len(b) == 0 {
		return 0, &DecodeError{Field: fieldNames[field], Reason: "missing"}
	}
	i := 0
	neg := b[0] == '-'
	if neg {
		i++
	}
	digits := func() int {
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - j
	}
	start := i
	if n := digits(); n == 0 {
		return 0, notFinite(field)
	} else if n > 1 && b[start] == '0' {
		return 0, &DecodeError{Field: fieldNames[field], Reason: "leading zero"}
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return 0, notFinite(field)
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, notFinite(field)
		}
	}
	if i != len(b) {
		return 0, notFinite(field)
	}
	// strconv on a []byte converted in the call does not allocate.
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0, notFinite(field)
	}
	if neg && v == 0 {
		return 0, &DecodeError{Field: fieldNames[field], Reason: "negative zero"}
	}
	return v, nil
}
