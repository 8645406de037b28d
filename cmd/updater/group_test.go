package main

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Two updaters in one consumer group share the partitions; one is killed with
// SIGKILL mid-stream, the other takes its partitions over, restores their users
// from the changelog, and the final embeddings equal the in-process
// application of every event, bit for bit.
func TestIntegrationGroupTakeover(t *testing.T) {
	e := newEnv(t, "")
	publishModel(t, e)
	evs := makeEvents(40000, 6)
	want := expected(t, e, evs)
	bin := buildUpdater(t)
	start := func(log *lockedBuffer) *exec.Cmd {
		cmd := exec.Command(bin, e.args("--max-batch", "64", "--log-level", "info")...)
		cmd.Stderr = log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	var logA, logB lockedBuffer
	a, b := start(&logA), start(&logB)
	defer func() {
		b.Process.Signal(os.Interrupt)
		b.Wait()
	}()
	// Both members own partitions in the same generation before the stream:
	// under load one member can join first and take all four, and if the
	// other's join were still pending when A is killed, there would be no
	// takeover to test (a CI run failed that way).
	for end := time.Now().Add(60 * time.Second); ; {
		ga, na := lastAssignment(logA.String())
		gb, nb := lastAssignment(logB.String())
		if ga > 0 && ga == gb && na > 0 && nb > 0 {
			t.Logf("generation %d: A owns %d partitions, B %d", ga, na, nb)
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the members did not share the partitions in one generation in 60s (A: generation %d, %d partitions; B: %d, %d)", ga, na, gb, nb)
		}
		time.Sleep(20 * time.Millisecond)
	}
	pubErr := make(chan error, 1)
	go func() { pubErr <- publish(context.Background(), e, evs, 500) }()
	// Kill A once the group made progress, at a random moment.
	for end := time.Now().Add(30 * time.Second); committed(t, e) < 2000 && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
	a.Process.Kill()
	a.Wait()
	c := committed(t, e)
	t.Logf("member A killed with %d of %d events committed", c, len(evs))
	if c >= int64(len(evs)) {
		t.Fatal("the kill landed after the end of the stream: the test proved nothing")
	}
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	// A may have written most of its users to Redis before its offsets were
	// committed, so Redis can match before B took A's partitions over (that
	// waits for A's session to time out). Wait for the takeover itself, then
	// check Redis again: B re-applies A's uncommitted tail, and the result
	// must still equal the in-process application of every event.
	waitRedis(t, e, want, 120*time.Second)
	restores := func() int { return strings.Count(logB.String(), `"msg":"state restored from the changelog"`) }
	for end := time.Now().Add(60 * time.Second); restores() < 2; {
		if time.Now().After(end) {
			var lines []string
			for _, l := range strings.Split(logB.String(), "\n") {
				if strings.Contains(l, "assigned") || strings.Contains(l, "restored") || strings.Contains(l, "group") {
					lines = append(lines, l)
				}
			}
			t.Fatalf("member B restored state %d times in 60s after A was killed; want at least 2 (its start and the takeover); its log:\n%s",
				restores(), strings.Join(lines, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitCommittedEnd(t, e, 120*time.Second)
	waitRedis(t, e, want, 120*time.Second)
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lastAssignment reads the generation and the number of partitions of the
// last "partitions assigned" line of an updater's JSON log (0, 0: none).
func lastAssignment(log string) (gen, parts int) {
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, `"msg":"partitions assigned"`) {
			continue
		}
		var rec struct {
			Generation int   `json:"generation"`
			Partitions []int `json:"partitions"`
		}
		if json.Unmarshal([]byte(l), &rec) == nil {
			gen, parts = rec.Generation, len(rec.Partitions)
		}
	}
	return gen, parts
}
