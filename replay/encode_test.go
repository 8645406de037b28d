package main

import (
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/stream"
)

func TestChunkEncode(t *testing.T) {
	p := newPlan(fabricated(rows))
	c := &chunk{}
	for i := 0; i < p.Len(); i++ {
		var e stream.Event
		if err := p.event(i, p.seqAt(i), &e); err != nil {
			t.Fatal(err)
		}
		c.events = append(c.events, e)
		c.pos = append(c.pos, int32(i+1_000_000))
	}
	now := time.UnixMicro(1_764_000_000_123_456)
	for round := 0; round < 2; round++ { // buffers are reused
		msgs := c.encode([]byte("0123456789abcdef"), now)
		if len(msgs) != p.Len() {
			t.Fatalf("%d messages", len(msgs))
		}
		for i, m := range msgs {
			var got stream.Event
			if err := stream.DecodeEvent(m.Value, &got); err != nil {
				t.Fatalf("msg %d: %v (%q)", i, err, m.Value)
			}
			want := c.events[i]
			want.ProducedAtUs = now.UnixMicro()
			if got != want {
				t.Fatalf("msg %d: %+v, want %+v", i, got, want)
			}
			if string(m.Key) != strconv.FormatUint(uint64(want.UserID), 10) || !m.Time.Equal(now) {
				t.Fatalf("msg %d: key %q time %v", i, m.Key, m.Time)
			}
			h, ok, err := headFromMessage(m)
			if err != nil || !ok || h.Pos != int64(i+1_000_000) || h.Run != "0123456789abcdef" {
				t.Fatalf("msg %d: head %+v %v %v", i, h, ok, err)
			}
		}
	}
}

func TestParseTime(t *testing.T) {
	cases := []struct {
		in string
		ms int64
	}{
		{"2020-08-01T00:00:00+08:00", 1596211200000},
		{"2020-07-31T16:00:00Z", 1596211200000},
		{"2020-07-31T16:00:00.25Z", 1596211200250},
		{"1596211200", 1596211200000},
		{"1596211200.5", 1596211200500},
	}
	for _, c := range cases {
		got, err := parseTime(c.in)
		if err != nil || got != c.ms {
			t.Errorf("parseTime(%q) = %d, %v; want %d", c.in, got, err, c.ms)
		}
	}
	for _, bad := range []string{"", "2020-08-01", "2020-08-01T00:00:00", "yesterday", "-5", "0", "NaN", "Inf", "1e9"} {
		if _, err := parseTime(bad); err == nil {
			t.Errorf("parseTime(%q) accepted", bad)
		}
	}
}

func TestParseOptions(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	o, err := parseOptions([]string{"--data", "d", "--brokers", "a:1, b:2", "--cut", "1596211200", "--max-rate", "5000"}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Brokers) != 2 || o.Cut.ms != 1596211200000 || o.Burst != 50 || o.Topic != "interactions" || o.Partitions != 8 {
		t.Fatalf("got %+v", o)
	}
	for _, bad := range [][]string{
		{},
		{"--data", "d", "--speedup", "-1"},
		{"--data", "d", "--from", "1596211200", "--until", "1596211100"},
		{"--data", "d", "--batch", "0"},
		{"--data", "d", "--cut", "tomorrow"},
		{"--data", "d", "extra"},
	} {
		if _, err := parseOptions(bad, io.Discard, noEnv); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	env := map[string]string{"STREAMREC_BROKERS": "k:9", "STREAMREC_TOPIC": "t2"}
	o, err = parseOptions([]string{"--data", "d"}, io.Discard, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil || len(o.Brokers) != 1 || o.Brokers[0] != "k:9" || o.Topic != "t2" {
		t.Fatalf("from the environment: %+v %v", o, err)
	}
}
