package main

import (
	"testing"

	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/stream"
)

// fabricated builds a cleaned matrix from rows (user, time ms) in file order and
// sets Order like kuairec.Clean: ascending time, ties by user, then file order.
func fabricated(rows [][2]int64) *kuairec.Interactions {
	m := &kuairec.Interactions{}
	for i, r := range rows {
		m.User = append(m.User, uint32(r[0]))
		m.Video = append(m.Video, uint32(100+i))
		m.PlayMS = append(m.PlayMS, int32(1000+i))
		m.DurMS = append(m.DurMS, 2000)
		m.TimeMS = append(m.TimeMS, r[1])
		m.Date = append(m.Date, 20200705)
		m.WatchRatio = append(m.WatchRatio, float64(1000+i)/2000)
	}
	order := make([]uint32, len(rows))
	for i := range order {
		order[i] = uint32(i)
	}
	// insertion sort: stable, by (time, user)
	for i := 1; i < len(order); i++ {
		for j := i; j > 0; j-- {
			a, b := order[j-1], order[j]
			if m.TimeMS[a] < m.TimeMS[b] || (m.TimeMS[a] == m.TimeMS[b] && m.User[a] <= m.User[b]) {
				break
			}
			order[j-1], order[j] = b, a
		}
	}
	m.Order = order
	return m
}

var rows = [][2]int64{
	{7, 1000}, {3, 1000}, {7, 1000}, {7, 999}, {3, 1000}, {7, 1001}, {7, 1000}, {5, 1002}, {3, 1002},
}

func TestOrderAndTiebreak(t *testing.T) {
	p := newPlan(fabricated(rows))
	type ev struct {
		user uint32
		ms   int64
		seq  uint32
		file int // row in file order (video-100)
	}
	want := []ev{
		{7, 999, 0, 3},
		{3, 1000, 0, 1}, {3, 1000, 1, 4},
		{7, 1000, 0, 0}, {7, 1000, 1, 2}, {7, 1000, 2, 6},
		{7, 1001, 0, 5},
		{3, 1002, 0, 8}, {5, 1002, 0, 7},
	}
	if p.Len() != len(want) {
		t.Fatalf("len %d, want %d", p.Len(), len(want))
	}
	var prev uint32
	for i, w := range want {
		seq := p.seqAt(i)
		if i > 0 {
			if got := p.nextSeq(i, prev); got != seq {
				t.Fatalf("pos %d: nextSeq %d, seqAt %d", i, got, seq)
			}
		}
		prev = seq
		var e stream.Event
		if err := p.event(i, seq, &e); err != nil {
			t.Fatal(err)
		}
		if e.UserID != w.user || e.EventTimeMs != w.ms || seq != w.seq || e.VideoID != uint32(100+w.file) {
			t.Fatalf("pos %d: got user %d ms %d seq %d video %d, want %+v", i, e.UserID, e.EventTimeMs, seq, e.VideoID, w)
		}
		if e.EventID != stream.MakeEventID(w.ms, w.seq) || e.Source != stream.SourceReplay ||
			e.PlayDurationMs != int64(1000+w.file) || e.VideoDurationMs != 2000 || e.WatchRatio != float64(1000+w.file)/2000 {
			t.Fatalf("pos %d: bad event %+v", i, e)
		}
		e.ProducedAtUs = 1
		if err := e.Validate(); err != nil {
			t.Fatalf("pos %d: %v", i, err)
		}
	}
	// Per user, ids strictly increase along the order.
	last := map[uint32]uint64{}
	for i := range want {
		var e stream.Event
		if err := p.event(i, p.seqAt(i), &e); err != nil {
			t.Fatal(err)
		}
		if e.EventID <= last[e.UserID] {
			t.Fatalf("user %d: id %d not above %d", e.UserID, e.EventID, last[e.UserID])
		}
		last[e.UserID] = e.EventID
	}
}

func TestTiebreakOverflow(t *testing.T) {
	var rs [][2]int64
	for range stream.MaxEventSeq + 2 {
		rs = append(rs, [2]int64{1, 5000})
	}
	p := newPlan(fabricated(rs))
	var e stream.Event
	if err := p.event(stream.MaxEventSeq, stream.MaxEventSeq, &e); err != nil {
		t.Fatal(err)
	}
	if err := p.event(stream.MaxEventSeq+1, p.seqAt(stream.MaxEventSeq+1), &e); err == nil {
		t.Fatal("no error for a tiebreak past MaxEventSeq")
	}
}

func TestWindow(t *testing.T) {
	p := newPlan(fabricated(rows)) // times: 999, 1000 x5, 1001, 1002 x2
	cases := []struct {
		cut, from, until int64
		start, end       int
	}{
		{0, 0, 0, 0, 9},
		{1000, 0, 0, 1, 9},
		{1000, 1001, 0, 6, 9},
		{1001, 1000, 0, 6, 9},
		{0, 0, 1001, 0, 6},
		{0, 1000, 1002, 1, 7},
		{5000, 0, 0, 9, 9},
		{1002, 0, 1001, 7, 7},
	}
	for _, c := range cases {
		s, e := p.window(c.cut, c.from, c.until)
		if s != c.start || e != c.end {
			t.Errorf("window(%d,%d,%d) = %d,%d, want %d,%d", c.cut, c.from, c.until, s, e, c.start, c.end)
		}
	}
}

func TestRunID(t *testing.T) {
	p := newPlan(fabricated(rows))
	a, b := p.runID(0), p.runID(0)
	if a != b || len(a) != 16 {
		t.Fatalf("runID not stable: %q %q", a, b)
	}
	if p.runID(1000) == a {
		t.Fatal("runID ignores the cut")
	}
	m := fabricated(rows)
	m.WatchRatio[4] += 1e-9
	if newPlan(m).runID(0) == a {
		t.Fatal("runID ignores a changed watch ratio")
	}
	// A change before the cut does not change the run.
	m = fabricated(rows)
	m.Video[3]++ // the 999 ms row
	if newPlan(m).runID(1000) != p.runID(1000) {
		t.Fatal("runID depends on events before the cut")
	}
}

func TestPartitioner(t *testing.T) {
	pt := newPartitioner(8)
	for _, u := range []uint32{0, 1, 7175, 65535, 65536, 1 << 31, 4294967295} {
		for range 2 {
			if got, want := pt.of(u), stream.PartitionFor(u, 8); got != want {
				t.Fatalf("user %d: %d, want %d", u, got, want)
			}
		}
	}
}
