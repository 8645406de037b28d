package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/online"
	"github.com/streamrec/streamrec/internal/stream"
	"github.com/streamrec/streamrec/internal/towers"
)

// Fencing: member A pauses inside a flush (it holds a batch in flight) and
// is stopped (SIGSTOP: a GC pause, a stopped VM); member B takes its
// partitions over, re-applies A's uncommitted batch and advances. A
// resumes: Redis refuses its writes (asserted from A's log), so no user's
// record regresses there, while A's stale states do land in the changelog
// (Kafka cannot refuse them). A new member's restore finds them, ignores
// them and writes the true states again (asserted), and after a forced
// compaction of the changelog (segments of 200 ms, dirty ratio 0.01) the
// record that compaction keeps for every user is the true state, bit for
// bit the in-process application of every event.
func TestIntegrationFencing(t *testing.T) {
	e := newEnv(t, "")
	publishModel(t, e)
	evs := makeEvents(6000, 17)
	want := expected(t, e, evs)
	// The changelog, created here so that the broker compacts it within
	// seconds (the updater leaves an existing topic as it is).
	spec := stream.CompactedTopic(e.changelog, testPartitions)
	spec.Configs["segment.ms"], spec.Configs["min.cleanable.dirty.ratio"] = "200", "0.01"
	spec.Configs["delete.retention.ms"] = "0"
	if err := stream.EnsureTopics(t.Context(), []string{e.brokers}, spec); err != nil {
		t.Fatal(err)
	}
	pause := filepath.Join(t.TempDir(), "pause")
	var logA, logB, logC lockedBuffer
	a := startUpdater(t, e, &logA, "--log-level", "info", "--test-pause-flush", pause)
	defer a.Process.Kill()
	publishEvents(t, e, evs[:3000])
	waitCommittedEnd(t, e, 60*time.Second)

	// A pauses in its next flush, with the batch applied and not written.
	if err := os.WriteFile(pause, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	publishEvents(t, e, evs[3000:4000])
	waitLog(t, &logA, "flush paused by --test-pause-flush", 1, 30*time.Second)
	if err := a.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	b := startUpdater(t, e, &logB, "--log-level", "info")
	publishEvents(t, e, evs[4000:])
	waitCommittedEnd(t, e, 90*time.Second) // B owns everything once A's session expired
	waitRedis(t, e, want, 60*time.Second)

	// A resumes its flush: its changelog records land, Redis refuses them.
	os.Remove(pause)
	if err := a.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitLog(t, &logA, "Redis refused user writes from an older epoch", 1, 30*time.Second)
	a.Process.Kill()
	a.Wait()
	waitRedis(t, e, want, 10*time.Second) // nothing regressed in Redis

	// A new member restores: it ignores A's stale records and writes the
	// true states again, so that compaction keeps those.
	stopUpdater(b)
	c := startUpdater(t, e, &logC, "--log-level", "info")
	defer stopUpdater(c)
	waitLog(t, &logC, "users written again: their latest changelog record was a stale writer's", 1, 60*time.Second)

	// Compaction: wait until the broker has removed records, then check the
	// record it keeps for every user.
	scale := float32(1.3)
	deadline := time.Now().Add(90 * time.Second)
	written := -1
	for {
		latest, n := readLatest(t, e)
		if written < 0 {
			written = n
		}
		if n < written {
			bad := 0
			for uid, w := range want {
				s, ok := latest[uid]
				if !ok {
					t.Fatalf("user %d: no record left in the changelog", uid)
				}
				emb := make([]float32, len(s.Base))
				bias := towers.UserEmbedding(emb, s.Base, s.Vec, scale)
				if !slices.Equal(emb, w.Embedding) || bias != w.Bias {
					bad++
				}
			}
			if bad > 0 {
				t.Fatalf("after compaction (%d of %d records left), %d of %d users' kept changelog record is not their true state", n, written, bad, len(want))
			}
			t.Logf("compacted: %d of %d records left; every user's kept record is its true state", n, written)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broker did not compact the changelog in 90s (%d records)", n)
		}
		time.Sleep(time.Second)
	}
}

// readLatest reads the whole changelog topic and returns each user's latest
// record (what compaction keeps) and the number of records read.
func readLatest(t *testing.T, e *env) (map[uint32]*online.UserState, int) {
	t.Helper()
	log := stream.NewStateLog([]string{e.brokers}, e.changelog, 1<<20)
	defer log.Close()
	parts := make([]int, testPartitions)
	for i := range parts {
		parts[i] = i
	}
	out := map[uint32]*online.UserState{}
	n := 0
	err := log.Read(t.Context(), parts, func(_ int, _ int64, key, value []byte) error {
		n++
		uid, err := strconv.ParseUint(string(key), 10, 32)
		if err != nil {
			return err
		}
		s := &online.UserState{UserID: uint32(uid)}
		if err := online.DecodeState(value, s); err != nil {
			return err
		}
		out[s.UserID] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, n
}

func waitLog(t *testing.T, log *lockedBuffer, msg string, n int, within time.Duration) {
	t.Helper()
	for end := time.Now().Add(within); strings.Count(log.String(), msg) < n; {
		if time.Now().After(end) {
			t.Fatalf("%q not logged %d times in %v:\n%s", msg, n, within, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
