package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/stream"
	"github.com/streamrec/streamrec/internal/synth"
)

// The broker restarted mid-replay: the replay tool and the updater both resume,
// every replayed event is in the topic exactly once (by event id), and the
// updater's embeddings equal the in-process application of those events. The
// test restarts a broker, so it runs its own Apache Kafka instance (port
// STREAMREC_TEST_RESTART_PORT, default 19192), started with scripts/kafka.sh.
func TestIntegrationBrokerRestart(t *testing.T) {
	if os.Getenv("STREAMREC_TEST_KAFKA") == "" || os.Getenv("STREAMREC_TEST_REDIS") == "" || testing.Short() {
		t.Skip("integration: set STREAMREC_TEST_KAFKA and STREAMREC_TEST_REDIS (and drop -short) to run")
	}
	port := os.Getenv("STREAMREC_TEST_RESTART_PORT")
	if port == "" {
		port = "19192"
	}
	runDir := t.TempDir()
	kafka := func(action string) {
		t.Helper()
		cmd := exec.Command("bash", "../../scripts/kafka.sh", action)
		cmd.Env = append(os.Environ(), "KAFKA_PORT="+port, "STREAMREC_RUN="+runDir, "KAFKA_HEAP=512m")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kafka.sh %s: %v\n%s", action, err, out)
		}
	}
	kafka("start")
	t.Cleanup(func() { kafka("stop") })
	t.Setenv("STREAMREC_TEST_KAFKA", "127.0.0.1:"+port)
	e := newEnv(t, "")

	data := t.TempDir()
	if _, err := synth.Generate(data, synth.GenConfig{Scale: synth.Scales["tiny"], Seed: 5}); err != nil {
		t.Fatal(err)
	}
	ds, _, err := kuairec.Load(data, kuairec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	total := len(ds.Big.Order)
	publishModel(t, e) // items 0..299: the tiny set's other videos are cold items
	offline := offlineUsers(t, e)

	bins := t.TempDir()
	for _, b := range [][2]string{{"updater", "."}, {"replay", "../../replay"}} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bins, b[0]), b[1]).CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", b[0], err, out)
		}
	}
	upd := exec.Command(filepath.Join(bins, "updater"), e.args()...)
	upd.Stderr = &prefixWriter{t: t}
	if err := upd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		upd.Process.Signal(os.Interrupt)
		upd.Wait()
	}()

	// Replay at a rate that spans several seconds; restart the broker in the
	// middle; run the replay again (it resumes) until one run succeeds.
	rate := fmt.Sprint(max(total/8, 1000))
	replay := func() error {
		cmd := exec.Command(filepath.Join(bins, "replay"), "--data", data, "--brokers", e.brokers, "--topic", e.topic,
			"--max-rate", rate, "--progress=false", "--log-level", "warn")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("replay run failed (%v): %s", err, lastLines(string(out), 3))
		}
		return err
	}
	done := make(chan error, 1)
	go func() { done <- replay() }()
	time.Sleep(3 * time.Second)
	t.Log("restarting the broker mid-replay")
	kafka("stop")
	kafka("start")
	err = <-done
	for i := 0; err != nil && i < 3; i++ {
		err = replay()
	}
	if err != nil {
		t.Fatalf("replay did not complete after the broker restart: %v", err)
	}

	// The topic holds every event exactly once by event id (a produce retried
	// across the restart may have written a message twice: same id).
	evs := readTopic(t, e)
	seen := map[[2]uint64]bool{}
	var distinct []stream.Event
	for _, ev := range evs {
		k := [2]uint64{uint64(ev.UserID), ev.EventID}
		if !seen[k] {
			seen[k] = true
			distinct = append(distinct, ev)
		}
	}
	t.Logf("topic: %d messages, %d distinct events, dataset: %d events", len(evs), len(distinct), total)
	if len(distinct) != total {
		t.Fatalf("%d distinct events in the topic, want exactly %d", len(distinct), total)
	}
	waitRedis(t, e, expectedFrom(t, e, offline, distinct, 0), 90*time.Second)
}

// readTopic reads every message of the test topic, partition by partition
// (each partition in order: a user's events stay in order).
func readTopic(t *testing.T, e *env) []stream.Event {
	t.Helper()
	counts, err := stream.PartitionCounts(t.Context(), []string{e.brokers}, e.topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []stream.Event
	for p := 0; p < counts[e.topic]; p++ {
		conn, err := kafkago.DialLeader(t.Context(), "tcp", e.brokers, e.topic, p)
		if err != nil {
			t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if last == 0 {
			continue
		}
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{e.brokers}, Topic: e.topic, Partition: p, MaxWait: 100 * time.Millisecond})
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				cancel()
				r.Close()
				t.Fatalf("reading partition %d: %v", p, err)
			}
			var ev stream.Event
			if err := stream.DecodeEvent(m.Value, &ev); err != nil {
				t.Fatalf("partition %d offset %d: %v", p, m.Offset, err)
			}
			out = append(out, ev)
			if m.Offset >= last-1 {
				break
			}
		}
		cancel()
		r.Close()
	}
	return out
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
