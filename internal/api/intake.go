package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"math/rand/v2"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/stream"
)

// IdempotencyHeader is the request header whose value makes a retried intake
// POST produce the same event ids.
const IdempotencyHeader = "Idempotency-Key"

// maxIdempotencyKey bounds the header's length.
const maxIdempotencyKey = 200

// ClientHeader names the client: the identity that idempotency keys (and,
// once built, rate limits) are scoped to. 1 to 64 visible ASCII characters; a request
// without it is from AnonymousClient.
const ClientHeader = "X-Client-Id"

// AnonymousClient is the client of a request without ClientHeader.
const AnonymousClient = "anonymous"

const maxClientID = 64

// ReplayedHeader is set to "true" on an answer replayed from a completed
// request with the same Idempotency-Key.
const ReplayedHeader = "Idempotency-Replayed"

// Interaction is the JSON body of POST /v1/interactions (one element of the
// batch array). Required: user_id, video_id, play_duration_ms,
// video_duration_ms. event_time_ms defaults to the server's clock,
// watch_ratio to play_duration_ms / video_duration_ms; both may be absent,
// but not null. Any other field is rejected.
type Interaction struct {
	UserID          *Integer[uint32]         `json:"user_id"`
	VideoID         *Integer[uint32]         `json:"video_id"`
	PlayDurationMs  *Integer[int64]          `json:"play_duration_ms"`
	VideoDurationMs *Integer[int64]          `json:"video_duration_ms"`
	EventTimeMs     Optional[Integer[int64]] `json:"event_time_ms"`
	WatchRatio      Optional[float64]        `json:"watch_ratio"`
	// Source is "api" (the default) or "simulator" (the closed-loop
	// simulator's events, which the online evaluation and the retrain from
	// the log tell apart).
	Source Optional[string] `json:"source"`
}

// Integer is a JSON integer as JSON Schema defines it: a number with an
// integral value, in T's range, whatever its spelling (7, 7.0, 0.7e1). A
// fraction, a string or a value out of range is a type error naming the
// field (a *json.UnmarshalTypeError).
type Integer[T uint32 | int64] struct{ V T }

// UnmarshalJSON implements json.Unmarshaler.
func (n *Integer[T]) UnmarshalJSON(b []byte) error {
	s := string(b)
	bad := func(what string) error {
		return &json.UnmarshalTypeError{Value: what, Type: reflect.TypeFor[T]()}
	}
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		switch s[0] {
		case '"':
			return bad("string")
		case 't', 'f':
			return bad("bool")
		case '{':
			return bad("object")
		case '[':
			return bad("array")
		}
		return bad(s)
	}
	var v T
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		if int64(T(i)) != i || (i < 0 && T(i) > 0) {
			return bad("number " + s)
		}
		n.V = T(i)
		return nil
	}
	// Not a plain integer literal: a fraction or an exponent with an
	// integral value is an integer too.
	f, _, err := big.ParseFloat(s, 10, 512, big.ToNearestEven)
	if err != nil || !f.IsInt() {
		return bad("number " + s)
	}
	bi, _ := f.Int(nil)
	if !bi.IsInt64() || int64(T(bi.Int64())) != bi.Int64() || (bi.Sign() < 0 && T(bi.Int64()) > 0) {
		return bad("number " + s)
	}
	v = T(bi.Int64())
	n.V = v
	return nil
}

// Optional is a JSON field that may be absent but not null: null is a type
// error naming the field (a *json.UnmarshalTypeError).
type Optional[T any] struct {
	V   T
	Set bool
}

// UnmarshalJSON implements json.Unmarshaler.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return &json.UnmarshalTypeError{Value: "null", Type: reflect.TypeFor[T]()}
	}
	if err := json.Unmarshal(b, &o.V); err != nil {
		return err
	}
	o.Set = true
	return nil
}

// Accepted is the 202 answer of the intake endpoints. Event ids are decimal
// strings (uint64 does not fit a JSON number exactly).
type Accepted struct {
	Accepted int      `json:"accepted"`
	EventIDs []string `json:"event_ids"`
}

func (s *Server) postInteraction(c echo.Context) error {
	return s.intake(c, false)
}

func (s *Server) postInteractionBatch(c echo.Context) error {
	return s.intake(c, true)
}

func (s *Server) intake(c echo.Context, batch bool) error {
	reject := func(err error) error {
		var ae *Error
		if errors.As(err, &ae) {
			s.metrics.rejected.WithLabelValues(ae.Code).Inc()
		}
		return err
	}
	in, err := s.readEvents(c, batch)
	if err != nil {
		return reject(err)
	}
	events := in.events
	// With a key, the intake record decides: publish (first attempt, or a
	// retry after a failure), answer from the record, or refuse.
	keyed := in.key != "" && s.deps.Intake != nil
	if keyed {
		ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RedisTimeout)
		st, answer, err := s.deps.Intake.BeginIntake(ctx, in.client, in.key, in.hash, s.now(), s.intakeLease(), s.cfg.IdempotencyTTL)
		cancel()
		switch {
		case err != nil:
			// Without the record the ids still make a retry harmless: the
			// updater drops a second copy by event id. Publish, and say so.
			s.metrics.intakeRecordErrors.Inc()
			s.log.Warn("intake idempotency record unavailable; publishing without it", "err", err)
			keyed = false
		case st == cache.IntakeDone:
			s.metrics.intakeReplayed.Inc()
			c.Response().Header().Set(ReplayedHeader, "true")
			return c.JSONBlob(http.StatusAccepted, answer)
		case st == cache.IntakeInProgress:
			return reject(errorf(http.StatusConflict, CodeIdempotencyInProgress, IdempotencyHeader,
				"a request with this %s is being published; retry after it finished", IdempotencyHeader))
		case st == cache.IntakeReused:
			return reject(errorf(http.StatusConflict, CodeIdempotencyKeyReused, IdempotencyHeader,
				"this %s was used with another request body", IdempotencyHeader))
		}
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.PublishTimeout)
	err = s.deps.Publisher.Publish(ctx, events)
	cancel()
	if err != nil {
		if keyed {
			s.endIntake(in, nil)
		}
		s.metrics.rejected.WithLabelValues(CodePublishFailed).Inc()
		s.log.Warn("publishing interactions", "events", len(events), "err", err)
		return errorf(http.StatusServiceUnavailable, CodePublishFailed, "",
			"the events were not acknowledged by Kafka (some may have been written); retry with the same Idempotency-Key")
	}
	s.metrics.accepted.Add(float64(len(events)))
	s.metrics.acceptBatches.Observe(float64(len(events)))
	resp := Accepted{Accepted: len(events), EventIDs: make([]string, len(events))}
	for i := range events {
		s.watched.Add(events[i].UserID, events[i].VideoID)
		resp.EventIDs[i] = strconv.FormatUint(events[i].EventID, 10)
	}
	if s.deps.Observer != nil {
		s.deps.Observer.Accepted(events)
	}
	body, err := json.Marshal(&resp)
	if err != nil {
		return err
	}
	if keyed {
		s.endIntake(in, body)
	}
	return c.JSONBlob(http.StatusAccepted, body)
}

// intakeLease is how long a pending intake record holds off concurrent
// retries: the publish timeout and a margin. A process that dies while
// publishing leaves the record to expire into a retry.
func (s *Server) intakeLease() time.Duration { return s.cfg.PublishTimeout + 5*time.Second }

// endIntake marks the request's intake record done with answer, or failed
// (answer nil). It runs even when the client went away: the events' fate is
// known now.
func (s *Server) endIntake(in *intakeRequest, answer []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RedisTimeout)
	defer cancel()
	var err error
	if answer != nil {
		err = s.deps.Intake.FinishIntake(ctx, in.client, in.key, in.hash, answer, s.cfg.IdempotencyTTL)
	} else {
		err = s.deps.Intake.FailIntake(ctx, in.client, in.key, in.hash, s.cfg.IdempotencyTTL)
	}
	if err != nil {
		// A retry then finds no record (or a pending one until its lease
		// ends) and publishes the same ids again, which the updater drops.
		s.metrics.intakeRecordErrors.Inc()
		s.log.Warn("writing the intake idempotency record", "done", answer != nil, "err", err)
	}
}

// intakeRequest is a validated intake request.
type intakeRequest struct {
	events      []stream.Event
	client, key string
	hash        []byte // SHA-256 of the route and the body: what a key is bound to
}

// readEvents reads, validates and completes the body's events: all of them or
// an error (a batch is all-or-nothing on validation).
func (s *Server) readEvents(c echo.Context, batch bool) (*intakeRequest, error) {
	req := c.Request()
	if err := checkJSONContentType(req.Header.Get(echo.HeaderContentType)); err != nil {
		return nil, err
	}
	key, err := idempotencyKey(req.Header.Values(IdempotencyHeader))
	if err != nil {
		return nil, err
	}
	client, err := clientID(req.Header.Values(ClientHeader))
	if err != nil {
		return nil, err
	}
	if req.ContentLength > s.cfg.MaxBodyBytes {
		return nil, s.tooLarge()
	}
	raw, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		return nil, s.decodeErr(err, -1)
	}
	h := sha256.New()
	h.Write([]byte(c.Path()))
	h.Write([]byte{0})
	h.Write(raw)
	out := &intakeRequest{client: client, key: key, hash: h.Sum(nil)}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()

	var in []Interaction
	if !batch {
		var one Interaction
		if err := s.decodeErr(decodeNext(dec, &one), -1); err != nil {
			return nil, err
		}
		in = append(in, one)
	} else {
		tok, err := dec.Token()
		if err != nil {
			return nil, s.decodeErr(err, -1)
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return nil, errorf(http.StatusBadRequest, CodeInvalidJSON, "", "batch body: want a JSON array of interactions")
		}
		for dec.More() {
			if len(in) == s.cfg.MaxBatch {
				return nil, errorf(http.StatusRequestEntityTooLarge, CodeBatchTooLarge, "",
					"batch holds more than %d events", s.cfg.MaxBatch)
			}
			var one Interaction
			if err := s.decodeErr(decodeNext(dec, &one), len(in)); err != nil {
				return nil, err
			}
			in = append(in, one)
		}
		if _, err := dec.Token(); err != nil { // the closing ']'
			return nil, s.decodeErr(err, -1)
		}
		if len(in) == 0 {
			return nil, errorf(http.StatusBadRequest, CodeEmptyBatch, "", "batch holds no event")
		}
	}
	// Nothing but white space may follow the value.
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return nil, errorf(http.StatusBadRequest, CodeInvalidJSON, "", "unexpected data after the JSON value")
		}
		return nil, s.decodeErr(err, -1)
	}

	now := s.now()
	events := make([]stream.Event, len(in))
	for i := range in {
		idx := i
		if !batch {
			idx = -1
		}
		if err := toEvent(&in[i], &events[i], now.UnixMilli(), idx); err != nil {
			return nil, err
		}
		if key != "" {
			events[i].EventID = keyedEventID(client, key, i)
		} else {
			events[i].EventID = s.ids.next()
		}
		events[i].Source = stream.SourceAPI
		if src := in[i].Source; src.Set {
			switch src.V {
			case "api":
			case "simulator":
				events[i].Source = stream.SourceSimulator
			default:
				return nil, withIndex(errorf(http.StatusBadRequest, CodeInvalidField, "source", "source: want api or simulator"), idx)
			}
		}
		events[i].ProducedAtUs = now.UnixMicro()
		if err := events[i].Validate(); err != nil {
			return nil, eventError(err, idx)
		}
	}
	out.events = events
	return out, nil
}

func (s *Server) tooLarge() *Error {
	return errorf(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "", "request body exceeds %d bytes", s.cfg.MaxBodyBytes)
}

// maxEventTimeMs bounds event times (year ~ 141,000, the range of
// stream.MakeEventID, which replay uses: any larger value is a client bug).
const maxEventTimeMs = 1<<(64-stream.EventIDSeqBits) - 1

// toEvent checks presence and ranges of the JSON fields and fills e.
func toEvent(in *Interaction, e *stream.Event, nowMs int64, idx int) error {
	missing := func(f string) error {
		return withIndex(errorf(http.StatusBadRequest, CodeMissingField, f, "%s: required", f), idx)
	}
	switch {
	case in.UserID == nil:
		return missing("user_id")
	case in.VideoID == nil:
		return missing("video_id")
	case in.PlayDurationMs == nil:
		return missing("play_duration_ms")
	case in.VideoDurationMs == nil:
		return missing("video_duration_ms")
	}
	*e = stream.Event{UserID: in.UserID.V, VideoID: in.VideoID.V, PlayDurationMs: in.PlayDurationMs.V,
		VideoDurationMs: in.VideoDurationMs.V, EventTimeMs: nowMs}
	if in.EventTimeMs.Set {
		e.EventTimeMs = in.EventTimeMs.V.V
		if e.EventTimeMs > maxEventTimeMs {
			return withIndex(errorf(http.StatusBadRequest, CodeInvalidField, "event_time_ms", "event_time_ms: too large"), idx)
		}
	}
	if e.EventTimeMs <= 0 {
		return withIndex(errorf(http.StatusBadRequest, CodeInvalidEvent, "event_time_ms", "event_time_ms: must be positive (Unix ms)"), idx)
	}
	if in.WatchRatio.Set {
		e.WatchRatio = in.WatchRatio.V
	} else if e.VideoDurationMs > 0 && e.PlayDurationMs >= 0 {
		e.WatchRatio = float64(e.PlayDurationMs) / float64(e.VideoDurationMs)
	}
	return nil
}

func withIndex(e *Error, idx int) *Error {
	if idx >= 0 {
		e.Message = "event " + strconv.Itoa(idx) + ": " + e.Message
	}
	return e
}

func eventError(err error, idx int) error {
	var de *stream.DecodeError
	if errors.As(err, &de) {
		return withIndex(errorf(http.StatusBadRequest, CodeInvalidEvent, de.Field, "%s: %s", de.Field, de.Reason), idx)
	}
	return withIndex(errorf(http.StatusBadRequest, CodeInvalidEvent, "", "%v", err), idx)
}

// decodeErr maps an encoding/json error to the API error (nil stays nil).
func (s *Server) decodeErr(err error, idx int) error {
	if err == nil {
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return s.tooLarge()
	case errors.Is(err, io.EOF):
		return withIndex(errorf(http.StatusBadRequest, CodeInvalidJSON, "", "empty body: want a JSON value"), idx)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return withIndex(errorf(http.StatusBadRequest, CodeInvalidJSON, "", "truncated JSON"), idx)
	case errors.As(err, &syn):
		return withIndex(errorf(http.StatusBadRequest, CodeInvalidJSON, "", "malformed JSON at byte %d: %v", syn.Offset, syn), idx)
	case errors.As(err, &typ):
		f := typ.Field
		if f == "" {
			return withIndex(errorf(http.StatusBadRequest, CodeInvalidJSON, "", "want a JSON object, got %s", typ.Value), idx)
		}
		return withIndex(errorf(http.StatusBadRequest, CodeInvalidField, f, "%s: %s, got %s", f, wantFor(f), typ.Value), idx)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return withIndex(errorf(http.StatusBadRequest, CodeUnknownField, f, "unknown field %q (allowed: user_id, video_id, play_duration_ms, video_duration_ms, event_time_ms, watch_ratio, source)", truncate(f, 64)), idx)
	}
	return withIndex(errorf(http.StatusBadRequest, CodeInvalidJSON, "", "%v", err), idx)
}

func wantFor(field string) string {
	switch field {
	case "user_id", "video_id":
		return "want an integer in [0, 4294967295]"
	case "watch_ratio":
		return "want a finite number"
	}
	return "want an integer"
}

func checkJSONContentType(ct string) error {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != echo.MIMEApplicationJSON {
		return errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "", "Content-Type: want application/json")
	}
	return nil
}

func idempotencyKey(vs []string) (string, error) {
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", errorf(http.StatusBadRequest, CodeInvalidIdempotency, IdempotencyHeader, "%s: given more than once", IdempotencyHeader)
	}
	k := vs[0]
	if k == "" || len(k) > maxIdempotencyKey || bytes.ContainsFunc([]byte(k), func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return "", errorf(http.StatusBadRequest, CodeInvalidIdempotency, IdempotencyHeader,
			"%s: want 1 to %d visible ASCII characters", IdempotencyHeader, maxIdempotencyKey)
	}
	return k, nil
}

// clientID is the value of ClientHeader, AnonymousClient when absent.
func clientID(vs []string) (string, error) {
	switch {
	case len(vs) == 0:
		return AnonymousClient, nil
	case len(vs) > 1:
		return "", errorf(http.StatusBadRequest, CodeInvalidClientID, ClientHeader, "%s: given more than once", ClientHeader)
	}
	id := vs[0]
	if id == "" || len(id) > maxClientID || bytes.ContainsFunc([]byte(id), func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return "", errorf(http.StatusBadRequest, CodeInvalidClientID, ClientHeader,
			"%s: want 1 to %d visible ASCII characters", ClientHeader, maxClientID)
	}
	return id, nil
}

// keyedEventID derives the event id of the i-th event of a request with an
// Idempotency-Key: the first 8 bytes (big endian) of SHA-256 of
// "streamrec-event", 0, client, 0, key, 0, decimal i; 0 becomes 1. A retry
// with the same client, key and body gets the same ids, whatever Redis
// holds, so the updater drops its second copy by event id. Ids of different
// (client, key, index) collide with probability 2^-64 per pair.
func keyedEventID(client, key string, i int) uint64 {
	h := sha256.New()
	h.Write([]byte("streamrec-event\x00"))
	h.Write([]byte(client))
	h.Write([]byte{0})
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, int64(i), 10))
	return max(binary.BigEndian.Uint64(h.Sum(nil)), 1)
}

// idAssigner hands out the ids of events without an Idempotency-Key: a 64-bit
// counter from a random start, skipping 0. Within a process no two events get
// the same id (until 2^64 ids); two processes collide only if their ranges
// meet, with probability about (ids handed out) / 2^64.
type idAssigner struct{ n atomic.Uint64 }

func newIDAssigner() *idAssigner {
	a := &idAssigner{}
	a.n.Store(rand.Uint64())
	return a
}

func (a *idAssigner) next() uint64 {
	for {
		if id := a.n.Add(1); id != 0 {
			return id
		}
	}
}
