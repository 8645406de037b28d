package stream

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func sampleEvent() Event {
	return Event{
		EventID:         MakeEventID(1593878903438, 0),
		UserID:          7175,
		VideoID:         10389,
		PlayDurationMs:  12263,
		VideoDurationMs: 14304,
		EventTimeMs:     1593878903438,
		WatchRatio:      0.8573126398210291,
		Source:          SourceReplay,
		ProducedAtUs:    1764180000123456,
	}
}

func TestCodecRoundTrip(t *testing.T) {
	cases := []Event{sampleEvent()}
	e := sampleEvent()
	e.WatchRatio = 573.4571
	e.Source = SourceAPI
	cases = append(cases, e)
	e = sampleEvent()
	e.UserID, e.VideoID, e.EventID = math.MaxUint32, 0, math.MaxUint64
	e.PlayDurationMs, e.WatchRatio, e.Source = 0, 0, SourceSimulator
	cases = append(cases, e)
	for _, r := range []float64{1e-300, 5e-324, 1.5e6, 1e21, 0.5, 10, 1.7976931348623157e308} {
		e = sampleEvent()
		e.WatchRatio = r
		cases = append(cases, e)
	}
	for _, want := range cases {
		b := AppendEvent(nil, &want)
		var got Event
		if err := DecodeEvent(b, &got); err != nil {
			t.Fatalf("decode %q: %v", b, err)
		}
		if got != want {
			t.Fatalf("round trip of %q: got %+v, want %+v", b, got, want)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good := string(AppendEvent(nil, ptr(sampleEvent())))
	parts := strings.Split(good, ",")
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, ",")
	}
	tests := []struct {
		name, msg, field, reason string
	}{
		{"empty", "", "", "empty message"},
		{"not ours", `{"user_id":1}`, "version", "not a streamrec event"},
		{"future version", with(0, "v2"), "version", "unsupported schema version"},
		{"missing field", strings.Join(parts[:9], ","), "", "want 10 fields, got 9"},
		{"extra field", good + ",x", "", "too many fields"},
		{"empty user", with(2, ""), "user_id", "missing"},
		{"negative user", with(2, "-1"), "user_id", "out of range"},
		{"user over uint32", with(2, "4294967296"), "user_id", "out of range"},
		{"video over uint32", with(3, "99999999999"), "video_id", "out of range"},
		{"event id over uint64", with(1, "18446744073709551616"), "event_id", "out of range"},
		{"non numeric user", with(2, "abc"), "user_id", "not a decimal integer"},
		{"signed user", with(2, "+5"), "user_id", "not a decimal integer"},
		{"space", with(2, " 5"), "user_id", "not a decimal integer"},
		{"leading zero", with(2, "05"), "user_id", "leading zero"},
		{"negative play", with(4, "-1"), "play_duration_ms", "negative duration"},
		{"zero duration", with(5, "0"), "video_duration_ms", "must be positive"},
		{"negative duration", with(5, "-5"), "video_duration_ms", "must be positive"},
		{"zero time", with(6, "0"), "event_time_ms", "must be positive"},
		{"NaN", with(7, "NaN"), "watch_ratio", "not a finite decimal number"},
		{"Inf", with(7, "+Inf"), "watch_ratio", "not a finite decimal number"},
		{"overflow to inf", with(7, "1e400"), "watch_ratio", "not a finite decimal number"},
		{"negative ratio", with(7, "-0.5"), "watch_ratio", "negative"},
		{"hex float", with(7, "0x1p-2"), "watch_ratio", "not a finite decimal number"},
		{"unknown source", with(8, "kafka"), "source", "unknown source"},
		{"zero produced", with(9, "0"), "produced_at_us", "must be positive"},
		{"zero event id", with(1, "0"), "event_id", "zero"},
		{"plus ratio", with(7, "+1"), "watch_ratio", "not a finite decimal number"},
		{"negative zero ratio", with(7, "-0"), "watch_ratio", "negative zero"},
		{"negative zero ratio with fraction", with(7, "-0.0"), "watch_ratio", "negative zero"},
		{"leading zeros ratio", with(7, "007.5"), "watch_ratio", "leading zero"},
		{"bare fraction", with(7, ".5"), "watch_ratio", "not a finite decimal number"},
		{"bare point", with(7, "5."), "watch_ratio", "not a finite decimal number"},
		{"empty exponent", with(7, "5e"), "watch_ratio", "not a finite decimal number"},
		{"underscore", with(7, "1_0"), "watch_ratio", "not a finite decimal number"},
		{"negative zero time", with(6, "-0"), "event_time_ms", "negative zero"},
		{"negative zero play", with(4, "-0"), "play_duration_ms", "negative zero"},
		{"too long", good + strings.Repeat("0", MaxEventSize), "", "message too long"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e Event
			err := DecodeEvent([]byte(tc.msg), &e)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("DecodeEvent(%q) = %v, want a *DecodeError", tc.msg, err)
			}
			if de.Field != tc.field || de.Reason != tc.reason {
				t.Fatalf("DecodeEvent(%q) = field %q reason %q, want %q %q", tc.msg, de.Field, de.Reason, tc.field, tc.reason)
			}
		})
	}
}

func TestMakeEventIDOrders(t *testing.T) {
	a := MakeEventID(1000, MaxEventSeq)
	b := MakeEventID(1001, 0)
	if !(a < b) || EventIDTime(a) != 1000 || EventIDTime(b) != 1001 {
		t.Fatalf("ids not ordered by time: %d %d", a, b)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("MakeEventID accepted a seq out of range")
		}
	}()
	MakeEventID(1, MaxEventSeq+1)
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	b := AppendEvent(nil, ptr(sampleEvent()))
	var e Event
	allocs := testing.AllocsPerRun(100, func() {
		if err := DecodeEvent(b, &e); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("DecodeEvent allocates %v times per event", allocs)
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add(AppendEvent(nil, ptr(sampleEvent())))
	f.Add([]byte("v1,1,2,3,4,5,6,0.5,api,7"))
	f.Add([]byte("v1,,,,,,,,,"))
	f.Add([]byte("v1,1,2,3,4,5,6,NaN,api,7"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Event
		if err := DecodeEvent(b, &e); err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error is not a *DecodeError: %v", err)
			}
			return
		}
		// Whatever decodes must be valid and re-encode to an equal event.
		if err := e.Validate(); err != nil {
			t.Fatalf("decoded an invalid event: %v", err)
		}
		var again Event
		if err := DecodeEvent(AppendEvent(nil, &e), &again); err != nil || again != e {
			t.Fatalf("re-encode of %q: %v, %+v != %+v", b, err, again, e)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// jsonEvent is the same event as encoding/json would carry it, for the benchmark
// reference.
type jsonEvent struct {
	EventID         uint64  `json:"event_id"`
	UserID          uint32  `json:"user_id"`
	VideoID         uint32  `json:"video_id"`
	PlayDurationMs  int64   `json:"play_duration_ms"`
	VideoDurationMs int64   `json:"video_duration_ms"`
	EventTimeMs     int64   `json:"event_time_ms"`
	WatchRatio      float64 `json:"watch_ratio"`
	Source          string  `json:"source"`
	ProducedAtUs    int64   `json:"produced_at_us"`
}

func benchEvents() []Event {
	evs := make([]Event, 1024)
	for i := range evs {
		e := sampleEvent()
		e.UserID = uint32(i * 7)
		e.VideoID = uint32(i * 13 % 10728)
		e.EventTimeMs += int64(i) * 997
		e.EventID = MakeEventID(e.EventTimeMs, 0)
		e.WatchRatio = float64(i%500) / 173.0
		evs[i] = e
	}
	return evs
}

// BenchmarkCodec measures encode+decode of one event (the figure: >= 2M
// events/s on one core), beside encoding/json on the same events.
func BenchmarkCodec(b *testing.B) {
	evs := benchEvents()
	b.Run("streamrec-v1", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, MaxEventSize)
		var e Event
		for i := 0; b.Loop(); i++ {
			buf = AppendEvent(buf[:0], &evs[i&1023])
			if err := DecodeEvent(buf, &e); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		js := make([]jsonEvent, len(evs))
		for i, e := range evs {
			js[i] = jsonEvent{e.EventID, e.UserID, e.VideoID, e.PlayDurationMs, e.VideoDurationMs, e.EventTimeMs, e.WatchRatio, e.Source.String(), e.ProducedAtUs}
		}
		var out jsonEvent
		for i := 0; b.Loop(); i++ {
			buf, err := json.Marshal(&js[i&1023])
			if err != nil {
				b.Fatal(err)
			}
			if err := json.Unmarshal(buf, &out); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
