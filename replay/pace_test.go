package main

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestSpeedDue(t *testing.T) {
	// 1000x: one hour of event time is 3.6 s of wall time.
	if got := speedDue(t0, 5_000, 5_000+3_600_000, 1000).Sub(t0); got != 3600*time.Millisecond {
		t.Fatalf("got %v", got)
	}
	if got := speedDue(t0, 0, 1, 0.5).Sub(t0); got != 2*time.Millisecond {
		t.Fatalf("slow-down: got %v", got)
	}
}

func TestPacerOff(t *testing.T) {
	p := newPacer(0, 0, 0)
	if p.active() {
		t.Fatal("active with no speedup and no rate")
	}
}

func TestPacerSpeedup(t *testing.T) {
	p := newPacer(100, 0, 0)
	now := t0
	// Events every 1 s of event time are due every 10 ms.
	for i := int64(0); i < 5; i++ {
		at := p.next(1_600_000_000_000+i*1000, now)
		if want := t0.Add(time.Duration(i) * 10 * time.Millisecond); !at.Equal(want) {
			t.Fatalf("event %d due %v, want %v", i, at.Sub(t0), want.Sub(t0))
		}
	}
	// Lagging behind the schedule: due now, not in the past.
	late := t0.Add(time.Second)
	if at := p.next(1_600_000_000_000+5000, late); !at.Equal(late) {
		t.Fatalf("late event due %v, want now", at.Sub(t0))
	}
}

func TestPacerRate(t *testing.T) {
	p := newPacer(0, 1000, 10) // 1000/s, burst 10
	var ats []time.Duration
	for i := 0; i < 15; i++ {
		ats = append(ats, p.next(int64(i+1), t0).Sub(t0)) // all offered at t0
	}
	for i := 0; i < 10; i++ {
		if ats[i] != 0 {
			t.Fatalf("burst event %d at %v", i, ats[i])
		}
	}
	for i := 10; i < 15; i++ {
		if want := time.Duration(i-9) * time.Millisecond; ats[i] != want {
			t.Fatalf("event %d at %v, want %v", i, ats[i], want)
		}
	}
	// Idle for a second refills the bucket (to 10, not more).
	now := t0.Add(time.Second)
	for i := 0; i < 10; i++ {
		if at := p.next(100, now); !at.Equal(now) {
			t.Fatalf("refilled event %d at %v", i, at.Sub(now))
		}
	}
	if at := p.next(100, now); at.Sub(now) != time.Millisecond {
		t.Fatalf("11th after refill at %v", at.Sub(now))
	}
}

func TestPacerRateAndSpeedup(t *testing.T) {
	// Speed-up would allow everything at once; the rate spreads it out.
	p := newPacer(1e9, 100, 1)
	for i := 0; i < 5; i++ {
		if at := p.next(1000+int64(i), t0); at.Sub(t0) != time.Duration(i)*10*time.Millisecond {
			t.Fatalf("event %d at %v", i, at.Sub(t0))
		}
	}
	// The rate allows everything; the speed-up holds events back.
	p = newPacer(10, 1e6, 1000)
	if at := p.next(0+1, t0); !at.Equal(t0) {
		t.Fatal("first event not due at once")
	}
	if at := p.next(1+1000, t0); at.Sub(t0) != 100*time.Millisecond {
		t.Fatalf("second at %v", at.Sub(t0))
	}
}
