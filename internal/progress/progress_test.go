package progress

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuf is a bytes.Buffer safe for the bar's goroutine and the test.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestBarQuietFinalLine(t *testing.T) {
	var buf syncBuf
	now := time.Unix(0, 0)
	clock := func() time.Time { return now }
	f := false
	b := NewWithOptions(&buf, "rows", 100, Options{Terminal: &f, QuietInterval: time.Hour, Now: clock})
	b.Add(40)
	now = now.Add(2 * time.Second)
	if got := b.Line(); !strings.Contains(got, "40.0%") || !strings.Contains(got, "20 rows/s") || !strings.Contains(got, "ETA 3s") {
		t.Fatalf("line = %q", got)
	}
	b.Add(60)
	b.Finish()
	b.Finish() // idempotent
	out := buf.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, "100.0%") || strings.Contains(out, "\r") {
		t.Fatalf("quiet output = %q", out)
	}
}

func TestBarTerminalRedraws(t *testing.T) {
	var buf syncBuf
	tr := true
	b := NewWithOptions(&buf, "rows", 0, Options{Terminal: &tr, Interval: time.Millisecond})
	b.Add(5)
	time.Sleep(20 * time.Millisecond)
	b.Finish()
	out := buf.String()
	if !strings.Contains(out, "\r") || !strings.HasSuffix(out, "\n") || !strings.Contains(out, "5 rows") {
		t.Fatalf("terminal output = %q", out)
	}
}

func TestHuman(t *testing.T) {
	for v, want := range map[float64]string{12: "12", 12345: "12.3k", 12.5e6: "12.50M", 3e9: "3.00G"} {
		if got := Human(v); got != want {
			t.Errorf("Human(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestBarPrefix(t *testing.T) {
	f := false
	b := NewWithOptions(&syncBuf{}, "B", 10, Options{Terminal: &f, Prefix: "big_matrix.csv", QuietInterval: time.Hour})
	defer b.Finish()
	if got := b.Line(); !strings.HasPrefix(got, "big_matrix.csv [") {
		t.Errorf("line %q", got)
	}
}
