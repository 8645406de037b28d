// Package progress draws progress bars with rates and ETAs for long-running work
// (data loading, generation, training, replay) on an io.Writer, usually os.Stderr.
//
// A Bar is driven by a ticker: workers call Add (safe for concurrent use, one atomic
// add) and the bar redraws itself on its own goroutine. On a terminal it redraws one
// line in place with \r; otherwise (a log file, a pipe, CI) it is quiet and prints a
// plain line every few seconds, so logs are not flooded. Call Finish (or Stop) when
// the work ends: it stops the ticker and prints the final line.
//
//	bar := progress.New(os.Stderr, "rows", total)
//	for ... { bar.Add(1) }
//	bar.Finish()
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune a Bar. The zero value is usable: terminal detection on the writer,
// redraw every 200 ms on a terminal, a line every 5 s otherwise.
type Options struct {
	// Terminal forces terminal (true) or quiet (false) mode; nil detects it from
	// the writer (an *os.File that is a character device).
	Terminal *bool
	// Interval between redraws on a terminal. Default: 200ms.
	Interval time.Duration
	// QuietInterval between lines when not on a terminal. Default: 5s.
	QuietInterval time.Duration
	// Width of the bar in characters. Default: 30.
	Width int
	// Prefix is printed before the bar, e.g. the file being read.
	Prefix string
	// Now replaces time.Now in tests.
	Now func() time.Time
}

// Bar is a progress bar. Create it with New or NewWithOptions; all methods are
// safe for concurrent use.
type Bar struct {
	w     io.Writer
	label string
	total atomic.Int64
	n     atomic.Int64
	opt   Options
	term  bool
	start time.Time

	mu       sync.Mutex
	lastLine time.Time
	done     chan struct{}
	stopped  sync.WaitGroup
	once     sync.Once
}

// New starts a bar counting unit (e.g. "rows") towards total; total <= 0 means
// unknown (no percentage, no ETA).
func New(w io.Writer, unit string, total int64) *Bar {
	return NewWithOptions(w, unit, total, Options{})
}

// NewWithOptions is New with explicit Options.
func NewWithOptions(w io.Writer, unit string, total int64, opt Options) *Bar {
	if opt.Interval <= 0 {
		opt.Interval = 200 * time.Millisecond
	}
	if opt.QuietInterval <= 0 {
		opt.QuietInterval = 5 * time.Second
	}
	if opt.Width <= 0 {
		opt.Width = 30
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	b := &Bar{w: w, label: unit, opt: opt, done: make(chan struct{})}
	b.total.Store(total)
	if opt.Terminal != nil {
		b.term = *opt.Terminal
	} else {
		b.term = IsTerminal(w)
	}
	b.start = opt.Now()
	b.lastLine = b.start
	interval := opt.Interval
	if !b.term {
		interval = opt.QuietInterval
	}
	b.stopped.Add(1)
	go b.loop(interval)
	return b
}

// IsTerminal reports whether w is an *os.File attached to a character device.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil {
		return false
	}
	return st.Mode()&os.ModeCharDevice != 0
}

func (b *Bar) loop(interval time.Duration) {
	defer b.stopped.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
			b.draw(false)
		}
	}
}

// Add counts n more units done.
func (b *Bar) Add(n int64) { b.n.Add(n) }

// Set sets the count of units done.
func (b *Bar) Set(n int64) { b.n.Store(n) }

// SetTotal changes the total (for work whose size is learnt on the way).
func (b *Bar) SetTotal(total int64) { b.total.Store(total) }

// Count returns the units done so far.
func (b *Bar) Count() int64 { return b.n.Load() }

// Finish stops the bar and prints its final line (with a newline). It is
// idempotent.
func (b *Bar) Finish() {
	b.once.Do(func() {
		close(b.done)
		b.stopped.Wait()
		b.draw(true)
	})
}

// Stop is Finish; it exists so that a Bar fits `defer bar.Stop()`.
func (b *Bar) Stop() { b.Finish() }

// Line renders the current state as one line, without \r or newline.
func (b *Bar) Line() string {
	return b.render(b.opt.Now())
}

func (b *Bar) render(now time.Time) string {
	n, total := b.n.Load(), b.total.Load()
	el := now.Sub(b.start)
	rate := 0.0
	if s := el.Seconds(); s > 0 {
		rate = float64(n) / s
	}
	var sb strings.Builder
	if b.opt.Prefix != "" {
		sb.WriteString(b.opt.Prefix)
		sb.WriteByte(' ')
	}
	if total > 0 {
		frac := float64(n) / float64(total)
		if frac > 1 {
			frac = 1
		}
		fill := int(frac * float64(b.opt.Width))
		sb.WriteByte('[')
		sb.WriteString(strings.Repeat("=", fill))
		sb.WriteString(strings.Repeat(" ", b.opt.Width-fill))
		sb.WriteString("] ")
		fmt.Fprintf(&sb, "%5.1f%% %s/%s %s", 100*frac, Human(float64(n)), Human(float64(total)), b.label)
	} else {
		fmt.Fprintf(&sb, "%s %s", Human(float64(n)), b.label)
	}
	fmt.Fprintf(&sb, "  %s %s/s  elapsed %s", Human(rate), b.label, el.Round(time.Second))
	if total > 0 && rate > 0 && n < total {
		eta := time.Duration(float64(total-n) / rate * float64(time.Second))
		fmt.Fprintf(&sb, "  ETA %s", eta.Round(time.Second))
	}
	return sb.String()
}

func (b *Bar) draw(final bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.opt.Now()
	line := b.render(now)
	switch {
	case b.term && final:
		fmt.Fprintf(b.w, "\r\033[K%s\n", line)
	case b.term:
		fmt.Fprintf(b.w, "\r\033[K%s", line)
	default:
		fmt.Fprintln(b.w, line)
	}
	b.lastLine = now
}

// Human formats a count with a k/M/G suffix: 1234567 -> "1.23M".
func Human(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2fG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}
