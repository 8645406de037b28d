package main

import (
	"math"
	"time"
)

// pacer decides when each event may be published: no earlier than its
// speed-up due time (event time runs Speedup times faster than wall time from the
// first paced event) and within a token bucket of MaxRate events/s with Burst
// tokens (GCRA form). It is pure: the caller passes the clock. A zero Speedup and
// a zero MaxRate mean no pacing at all.
//
// When publishing lags behind the speed-up schedule (the broker is slower than
// X times real time), events go out as fast as the rate limit allows until the
// schedule is caught up; the rate limit is never exceeded beyond Burst.
type pacer struct {
	speedup float64 // 0: off
	rate    float64 // events/s, 0: off
	burst   float64 // tokens, >= 1 when rate > 0

	started  bool
	wall0    time.Time // wall time of the first paced event
	event0Ms int64     // its event time
	tat      time.Time // GCRA theoretical arrival time
}

func newPacer(speedup, rate float64, burst int) *pacer {
	p := &pacer{speedup: speedup, rate: rate, burst: float64(burst)}
	if p.rate > 0 && p.burst < 1 {
		p.burst = 1
	}
	return p
}

// active reports whether the pacer ever delays anything.
func (p *pacer) active() bool { return p != nil && (p.speedup > 0 || p.rate > 0) }

// speedDue is the wall time at which an event at eventMs is due under the
// speed-up, given that the schedule started at wall0 with event0Ms.
func speedDue(wall0 time.Time, event0Ms, eventMs int64, speedup float64) time.Time {
	d := float64(eventMs-event0Ms) * float64(time.Millisecond) / speedup
	if d > math.MaxInt64/2 {
		d = math.MaxInt64 / 2
	}
	return wall0.Add(time.Duration(d))
}

// next returns the earliest wall time at which the event at eventMs may be
// published, given that it is offered at now, and books it (the caller then
// publishes it at or after the returned time). Calls must be in event order.
func (p *pacer) next(eventMs int64, now time.Time) time.Time {
	if !p.started {
		p.started = true
		p.wall0, p.event0Ms = now, eventMs
		p.tat = now
	}
	at := now
	if p.speedup > 0 {
		if due := speedDue(p.wall0, p.event0Ms, eventMs, p.speedup); due.After(at) {
			at = due
		}
	}
	if p.rate > 0 {
		t := time.Duration(float64(time.Second) / p.rate) // emission interval
		tau := time.Duration(float64(t) * (p.burst - 1))  // burst tolerance
		if earliest := p.tat.Add(-tau); earliest.After(at) {
			at = earliest
		}
		if p.tat.Before(at) {
			p.tat = at
		}
		p.tat = p.tat.Add(t)
	}
	return at
}
