package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/stream"
)

const okEvent = `{"user_id":42,"video_id":7,"play_duration_ms":5000,"video_duration_ms":10000,"event_time_ms":1700000000123,"watch_ratio":0.5}`

func TestPostInteraction(t *testing.T) {
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	w := f.do(http.MethodPost, "/v1/interactions", okEvent)
	if w.Code != http.StatusAccepted {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
	a := decode[Accepted](t, w)
	if a.Accepted != 1 || len(a.EventIDs) != 1 || len(f.pub.events) != 1 {
		t.Fatalf("%+v, published %d", a, len(f.pub.events))
	}
	e := f.pub.events[0]
	want := stream.Event{EventID: e.EventID, UserID: 42, VideoID: 7, PlayDurationMs: 5000, VideoDurationMs: 10000,
		EventTimeMs: 1700000000123, WatchRatio: 0.5, Source: stream.SourceAPI, ProducedAtUs: f.now.UnixMicro()}
	if e != want {
		t.Fatalf("published %+v, want %+v", e, want)
	}
	if e.EventID == 0 || a.EventIDs[0] != strconv.FormatUint(e.EventID, 10) {
		t.Fatalf("event id %d, answered %s", e.EventID, a.EventIDs[0])
	}
	// Defaults: event time = now, watch ratio = play / duration.
	f.do(http.MethodPost, "/v1/interactions", `{"user_id":1,"video_id":2,"play_duration_ms":3000,"video_duration_ms":12000}`)
	e = f.pub.events[1]
	if e.EventTimeMs != f.now.UnixMilli() || e.WatchRatio != 0.25 {
		t.Fatalf("defaults: %+v", e)
	}
	m := f.metricsText()
	if !strings.Contains(m, "streamrec_api_interactions_accepted_total 2") {
		t.Errorf("accepted counter missing in\n%s", m)
	}
}

func TestPostInteractionBatch(t *testing.T) {
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	body := "[" + okEvent + "," + okEvent + "," + strings.Replace(okEvent, `"user_id":42`, `"user_id":43`, 1) + "]"
	w := f.do(http.MethodPost, "/v1/interactions:batch", body)
	if w.Code != http.StatusAccepted {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
	a := decode[Accepted](t, w)
	if a.Accepted != 3 || len(f.pub.events) != 3 || f.pub.Calls() != 1 {
		t.Fatalf("%+v; %d events in %d calls", a, len(f.pub.events), f.pub.Calls())
	}
	if f.pub.events[0].EventID == f.pub.events[1].EventID {
		t.Fatal("two events of one user in the same ms got the same id")
	}
	// The escaped colon is a literal: no other path matches.
	wantError(t, f.do(http.MethodPost, "/v1/interactionsXbatch", body), http.StatusNotFound, CodeNotFound)
}

func TestIdempotencyKey(t *testing.T) {
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	post := func(path, body string, hdr ...string) Accepted {
		t.Helper()
		w := f.do(http.MethodPost, path, body, hdr...)
		if w.Code != http.StatusAccepted {
			t.Fatalf("%d %s", w.Code, w.Body.String())
		}
		return decode[Accepted](t, w)
	}
	a1 := post("/v1/interactions", okEvent, IdempotencyHeader, "req-123")
	f.now = f.now.Add(time.Second) // a retry, later
	calls := f.pub.Calls()
	w := f.do(http.MethodPost, "/v1/interactions", okEvent, IdempotencyHeader, "req-123")
	if w.Code != http.StatusAccepted || w.Header().Get(ReplayedHeader) != "true" || f.pub.Calls() != calls {
		t.Fatalf("retry of a done request: %d %q, %d publishes (want the stored answer, none)", w.Code, w.Header().Get(ReplayedHeader), f.pub.Calls()-calls)
	}
	if a2 := decode[Accepted](t, w); a2.EventIDs[0] != a1.EventIDs[0] {
		t.Fatalf("retry answered id %s, first %s", a2.EventIDs[0], a1.EventIDs[0])
	}
	batch := "[" + okEvent + "," + okEvent + "]"
	b1 := post("/v1/interactions:batch", batch, IdempotencyHeader, "batch-9")
	if b1.EventIDs[0] == b1.EventIDs[1] {
		t.Fatalf("batch ids %v", b1.EventIDs)
	}
	// The same key from another client is another request: other ids.
	c1 := post("/v1/interactions:batch", batch, IdempotencyHeader, "batch-9", ClientHeader, "phone-7")
	if c1.EventIDs[0] == b1.EventIDs[0] || c1.EventIDs[1] == b1.EventIDs[1] {
		t.Fatalf("two clients' keys gave the same ids: %v %v", c1.EventIDs, b1.EventIDs)
	}
	// The key with another body: 409, nothing published.
	calls = f.pub.Calls()
	wantError(t, f.do(http.MethodPost, "/v1/interactions:batch", "["+okEvent+"]", IdempotencyHeader, "batch-9"),
		http.StatusConflict, CodeIdempotencyKeyReused)
	if f.pub.Calls() != calls {
		t.Fatal("a reused key published")
	}
	wantError(t, f.do(http.MethodPost, "/v1/interactions", okEvent, ClientHeader, "a b"), http.StatusBadRequest, CodeInvalidClientID)

	// A key without event_time_ms: the server's clock, and the same ids on a
	// retry (the updater keeps the first copy of an id).
	noTime := strings.Replace(okEvent, `,"event_time_ms":1700000000123`, ``, 1)
	n1 := post("/v1/interactions", noTime, IdempotencyHeader, "no-time")
	if got := f.pub.events[len(f.pub.events)-1]; got.EventTimeMs != f.now.UnixMilli() || strconv.FormatUint(got.EventID, 10) != n1.EventIDs[0] {
		t.Fatalf("event without a time: %+v, answer %v", got, n1)
	}
	if n2 := post("/v1/interactions", noTime, IdempotencyHeader, "no-time"); n2.EventIDs[0] != n1.EventIDs[0] {
		t.Fatalf("retry ids %v, first %v", n2.EventIDs, n1.EventIDs)
	}
}

// Concurrent retries: while the first attempt is publishing, a retry gets 409
// idempotency_in_progress; once it is done, a retry gets its answer.
func TestIdempotencyConcurrentRetry(t *testing.T) {
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	f.pub.block, f.pub.entered = make(chan struct{}), make(chan struct{}, 1)
	first := make(chan int, 1)
	go func() { first <- f.do(http.MethodPost, "/v1/interactions", okEvent, IdempotencyHeader, "k1").Code }()
	<-f.pub.entered
	wantError(t, f.do(http.MethodPost, "/v1/interactions", okEvent, IdempotencyHeader, "k1"), http.StatusConflict, CodeIdempotencyInProgress)
	close(f.pub.block)
	if code := <-first; code != http.StatusAccepted {
		t.Fatalf("first attempt: %d", code)
	}
	f.pub.mu.Lock()
	f.pub.block = nil
	f.pub.mu.Unlock()
	w := f.do(http.MethodPost, "/v1/interactions", okEvent, IdempotencyHeader, "k1")
	if w.Code != http.StatusAccepted || w.Header().Get(ReplayedHeader) != "true" || f.pub.Calls() != 1 || len(f.pub.events) != 1 {
		t.Fatalf("after the first finished: %d, %d publishes", w.Code, f.pub.Calls())
	}
}

// A retry after a failed publish publishes the same ids again; so does a
// retry after Redis lost the record (a flush): the ids do not depend on it.
func TestIdempotencyRetryAfterFailureAndFlush(t *testing.T) {
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	body := "[" + okEvent + "," + okEvent + "]"
	f.pub.err = errors.New("broker down")
	wantError(t, f.do(http.MethodPost, "/v1/interactions:batch", body, IdempotencyHeader, "k2"), http.StatusServiceUnavailable, CodePublishFailed)
	f.pub.err = nil
	w := f.do(http.MethodPost, "/v1/interactions:batch", body, IdempotencyHeader, "k2")
	if w.Code != http.StatusAccepted || w.Header().Get(ReplayedHeader) != "" {
		t.Fatalf("retry after a failure: %d %q, want a fresh publish", w.Code, w.Header().Get(ReplayedHeader))
	}
	a := decode[Accepted](t, w)
	f.mr.FlushAll()
	w = f.do(http.MethodPost, "/v1/interactions:batch", body, IdempotencyHeader, "k2")
	if w.Code != http.StatusAccepted || w.Header().Get(ReplayedHeader) != "" {
		t.Fatalf("retry after a flush: %d", w.Code)
	}
	b := decode[Accepted](t, w)
	if len(f.pub.events) != 4 || a.EventIDs[0] != b.EventIDs[0] || a.EventIDs[1] != b.EventIDs[1] ||
		f.pub.events[0].EventID != f.pub.events[2].EventID || f.pub.events[1].EventID != f.pub.events[3].EventID {
		t.Fatalf("ids %v then %v; published %d events", a.EventIDs, b.EventIDs, len(f.pub.events))
	}
}

// Without a key, ids never collide: 4,096 events of one user in one
// millisecond get 4,096 distinct ids.
func TestEventIDsWithoutKeyDistinct(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBatch = 4096
	f := newFixture(t, 10, 4, 1, cfg)
	var b strings.Builder
	b.WriteString("[")
	for i := range 4096 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(okEvent)
	}
	b.WriteString("]")
	w := f.do(http.MethodPost, "/v1/interactions:batch", b.String())
	if w.Code != http.StatusAccepted {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
	seen := map[uint64]bool{}
	for _, e := range f.pub.events {
		if e.EventID == 0 || seen[e.EventID] {
			t.Fatalf("id %d repeated or zero", e.EventID)
		}
		seen[e.EventID] = true
	}
	if len(seen) != 4096 {
		t.Fatalf("%d distinct ids", len(seen))
	}
}

func TestKeyedEventIDs(t *testing.T) {
	seen := map[uint64]string{}
	for _, c := range []string{"anonymous", "a"} {
		for _, k := range []string{"k", "k0", "0"} {
			for i := range 100 {
				id := keyedEventID(c, k, i)
				what := c + "/" + k + "/" + strconv.Itoa(i)
				if prev, ok := seen[id]; ok || id == 0 {
					t.Fatalf("id %d of %s repeats %s", id, what, prev)
				}
				seen[id] = what
				if keyedEventID(c, k, i) != id {
					t.Fatal("not deterministic")
				}
			}
		}
	}
}

func TestPublishFailure(t *testing.T) {
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	f.pub.err = errors.New("broker down")
	wantError(t, f.do(http.MethodPost, "/v1/interactions", okEvent), http.StatusServiceUnavailable, CodePublishFailed)
	if !strings.Contains(f.metricsText(), `streamrec_api_interactions_rejected_total{reason="publish_failed"} 1`) {
		t.Error("publish failure not counted")
	}
	// A failed event does not count as watched.
	if got := f.srv.watched.Get(42, nil); len(got) != 0 {
		t.Fatalf("watched %v", got)
	}
}

func TestInteractionBadInput(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBodyBytes = 2048
	cfg.MaxBatch = 3
	f := newFixture(t, 10, 4, 1, cfg)
	ev := func(old, new string) string { return strings.Replace(okEvent, old, new, 1) }
	for _, tc := range []struct {
		name, path, body string
		hdr              []string
		status           int
		code, field      string
	}{
		{"no content type", "/v1/interactions", okEvent, []string{"Content-Type", ""}, 415, CodeUnsupportedMediaType, ""},
		{"text content type", "/v1/interactions", okEvent, []string{"Content-Type", "text/plain"}, 415, CodeUnsupportedMediaType, ""},
		{"oversized body", "/v1/interactions", `{"user_id":1` + strings.Repeat(" ", 3000) + `}`, nil, 413, CodeBodyTooLarge, ""},
		{"oversized body, no length", "/v1/interactions", `{"user_id":1` + strings.Repeat(" ", 3000) + `}`, []string{"X-Chunked", "1"}, 413, CodeBodyTooLarge, ""},
		{"empty body", "/v1/interactions", " ", nil, 400, CodeInvalidJSON, ""},
		{"malformed", "/v1/interactions", `{"user_id":`, nil, 400, CodeInvalidJSON, ""},
		{"NaN literal", "/v1/interactions", ev(`"watch_ratio":0.5`, `"watch_ratio":NaN`), nil, 400, CodeInvalidJSON, ""},
		{"Infinity literal", "/v1/interactions", ev(`"watch_ratio":0.5`, `"watch_ratio":Infinity`), nil, 400, CodeInvalidJSON, ""},
		{"NaN string", "/v1/interactions", ev(`"watch_ratio":0.5`, `"watch_ratio":"NaN"`), nil, 400, CodeInvalidField, "watch_ratio"},
		{"watch ratio overflows float64", "/v1/interactions", ev(`"watch_ratio":0.5`, `"watch_ratio":1e400`), nil, 400, CodeInvalidField, "watch_ratio"},
		{"negative watch ratio", "/v1/interactions", ev(`"watch_ratio":0.5`, `"watch_ratio":-0.1`), nil, 400, CodeInvalidEvent, "watch_ratio"},
		{"unknown field", "/v1/interactions", ev(`{`, `{"origin":"replay",`), nil, 400, CodeUnknownField, "origin"},
		{"client event id", "/v1/interactions", ev(`{`, `{"event_id":5,`), nil, 400, CodeUnknownField, "event_id"},
		{"a field's name in another case", "/v1/interactions", `{"user_id":1,"video_id":2,"play_dUration_ms":3,"video_duration_ms":4}`, nil, 400, CodeUnknownField, "play_dUration_ms"},
		{"user id above uint32", "/v1/interactions", ev(`"user_id":42`, `"user_id":4294967296`), nil, 400, CodeInvalidField, "user_id"},
		{"negative user id", "/v1/interactions", ev(`"user_id":42`, `"user_id":-1`), nil, 400, CodeInvalidField, "user_id"},
		{"string user id", "/v1/interactions", ev(`"user_id":42`, `"user_id":"42"`), nil, 400, CodeInvalidField, "user_id"},
		{"fractional video id", "/v1/interactions", ev(`"video_id":7`, `"video_id":7.5`), nil, 400, CodeInvalidField, "video_id"},
		{"null user id", "/v1/interactions", ev(`"user_id":42`, `"user_id":null`), nil, 400, CodeMissingField, "user_id"},
		{"missing video id", "/v1/interactions", ev(`"video_id":7,`, ``), nil, 400, CodeMissingField, "video_id"},
		{"missing durations", "/v1/interactions", `{"user_id":1,"video_id":2}`, nil, 400, CodeMissingField, "play_duration_ms"},
		{"negative play duration", "/v1/interactions", ev(`"play_duration_ms":5000`, `"play_duration_ms":-1`), nil, 400, CodeInvalidEvent, "play_duration_ms"},
		{"zero video duration", "/v1/interactions", ev(`"video_duration_ms":10000`, `"video_duration_ms":0`), nil, 400, CodeInvalidEvent, "video_duration_ms"},
		{"negative event time", "/v1/interactions", ev(`"event_time_ms":1700000000123`, `"event_time_ms":-5`), nil, 400, CodeInvalidEvent, "event_time_ms"},
		{"absurd event time", "/v1/interactions", ev(`"event_time_ms":1700000000123`, `"event_time_ms":9223372036854775807`), nil, 400, CodeInvalidField, "event_time_ms"},
		{"trailing data", "/v1/interactions", okEvent + `{}`, nil, 400, CodeInvalidJSON, ""},
		{"array to the single endpoint", "/v1/interactions", "[" + okEvent + "]", nil, 400, CodeInvalidJSON, ""},
		{"null event time", "/v1/interactions", ev(`"event_time_ms":1700000000123`, `"event_time_ms":null`), nil, 400, CodeInvalidField, "event_time_ms"},
		{"null watch ratio", "/v1/interactions", ev(`"watch_ratio":0.5`, `"watch_ratio":null`), nil, 400, CodeInvalidField, "watch_ratio"},
		{"idempotency key with a space", "/v1/interactions", okEvent, []string{IdempotencyHeader, "a b"}, 400, CodeInvalidIdempotency, IdempotencyHeader},
		{"idempotency key too long", "/v1/interactions", okEvent, []string{IdempotencyHeader, strings.Repeat("k", 201)}, 400, CodeInvalidIdempotency, IdempotencyHeader},
		{"batch: object", "/v1/interactions:batch", okEvent, nil, 400, CodeInvalidJSON, ""},
		{"batch: empty", "/v1/interactions:batch", `[]`, nil, 400, CodeEmptyBatch, ""},
		{"batch: too many", "/v1/interactions:batch", "[" + strings.Repeat(okEvent+",", 3) + okEvent + "]", nil, 413, CodeBatchTooLarge, ""},
		{"batch: one invalid", "/v1/interactions:batch", "[" + okEvent + "," + ev(`"play_duration_ms":5000`, `"play_duration_ms":-1`) + "]", nil, 400, CodeInvalidEvent, "play_duration_ms"},
		{"batch: one unknown field", "/v1/interactions:batch", "[" + okEvent + "," + ev(`{`, `{"x":1,`) + "]", nil, 400, CodeUnknownField, "x"},
		{"batch: a field's name in another case", "/v1/interactions:batch", "[" + okEvent + "," + ev(`{`, `{"Source":"api",`) + "]", nil, 400, CodeUnknownField, "Source"},
		{"batch: unclosed", "/v1/interactions:batch", "[" + okEvent, nil, 400, CodeInvalidJSON, ""},
		{"batch: trailing data", "/v1/interactions:batch", "[" + okEvent + "] x", nil, 400, CodeInvalidJSON, ""},
		{"GET on intake", "/v1/interactions", "", nil, 405, CodeMethodNotAllowed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.pub.Calls()
			method := http.MethodPost
			if tc.status == 405 {
				method = http.MethodGet
			}
			hdr := tc.hdr
			if len(hdr) == 2 && hdr[0] == "X-Chunked" {
				hdr = nil
			}
			w := f.doChunked(method, tc.path, tc.body, len(tc.hdr) == 2 && tc.hdr[0] == "X-Chunked", hdr...)
			d := wantError(t, w, tc.status, tc.code)
			if d.Field != tc.field {
				t.Errorf("field %q, want %q (message %q)", d.Field, tc.field, d.Message)
			}
			if f.pub.Calls() != before {
				t.Fatal("published despite the error")
			}
		})
	}
	if m := f.metricsText(); !strings.Contains(m, `streamrec_api_interactions_rejected_total{reason="unknown_field"} 5`) {
		t.Errorf("rejections not counted by reason")
	}
}

// The optional source field: api by default, simulator for the closed-loop
// simulator's events; anything else is refused by field name and loses nothing.
func TestPostInteractionSource(t *testing.T) {
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	for i, tc := range []struct {
		body string
		want stream.Source
	}{
		{okEvent, stream.SourceAPI},
		{strings.Replace(okEvent, `}`, `,"source":"api"}`, 1), stream.SourceAPI},
		{strings.Replace(okEvent, `}`, `,"source":"simulator"}`, 1), stream.SourceSimulator},
	} {
		if w := f.do(http.MethodPost, "/v1/interactions", tc.body); w.Code != http.StatusAccepted {
			t.Fatalf("%s: %d %s", tc.body, w.Code, w.Body)
		}
		if got := f.pub.events[i].Source; got != tc.want {
			t.Errorf("%s: source %v, want %v", tc.body, got, tc.want)
		}
	}
	for _, bad := range []string{`"replay"`, `""`, `1`} {
		w := f.do(http.MethodPost, "/v1/interactions", strings.Replace(okEvent, `}`, `,"source":`+bad+`}`, 1))
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"field":"source"`) {
			t.Errorf("source %s: %d %s, want 400 naming the field", bad, w.Code, w.Body)
		}
	}
	if len(f.pub.events) != 3 {
		t.Errorf("%d events published, want 3 (refused ones publish nothing)", len(f.pub.events))
	}
}
