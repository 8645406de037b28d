package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/streamrec/streamrec/internal/progress"
)

// status draws the replay's progress line on w: the progress bar (acknowledged
// events, events/s, ETA) followed by the event-time position (the latest
// acknowledged event time). On a terminal it redraws in place every 200 ms;
// otherwise it prints a line every 5 s.
type status struct {
	w    io.Writer
	bar  *progress.Bar
	pub  *publisher
	term bool
	done chan struct{}
	wg   sync.WaitGroup
}

func startStatus(w io.Writer, total int64, pub *publisher) *status {
	quiet := false
	s := &status{w: w, pub: pub, term: progress.IsTerminal(w), done: make(chan struct{}),
		// The bar only renders; this loop draws (with the event-time position).
		bar: progress.NewWithOptions(io.Discard, "events", total, progress.Options{Terminal: &quiet, QuietInterval: time.Hour})}
	interval := 5 * time.Second
	if s.term {
		interval = 200 * time.Millisecond
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				s.draw(false)
			}
		}
	}()
	return s
}

func (s *status) line() string {
	s.bar.Set(s.pub.published.Load())
	return s.bar.Line() + "  event time " + fmtMs(s.pub.lastTimeMs.Load())
}

func (s *status) draw(final bool) {
	switch {
	case s.term && final:
		fmt.Fprintf(s.w, "\r\033[K%s\n", s.line())
	case s.term:
		fmt.Fprintf(s.w, "\r\033[K%s", s.line())
	default:
		fmt.Fprintln(s.w, s.line())
	}
}

// finish stops the loop and prints the final line.
func (s *status) finish() {
	close(s.done)
	s.wg.Wait()
	s.draw(true)
	s.bar.Finish()
}
