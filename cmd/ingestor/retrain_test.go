package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/online"
	"github.com/streamrec/streamrec/internal/stream"
)

// A retrain from the log while traffic flows: v1 is trained on the files
// before the cut; the replayed events after it and some simulator events go
// through Kafka to a running updater; `train --from-log` trains v2 on the
// files plus the log (simulator events left out, as by default), publishes it
// with the offsets it trained through, and the updater takes it over live
// while more events arrive. Every event is applied exactly once per version:
// under v1 every event; under v2 exactly those v2 did not train on (the
// simulator events, re-applied from the ring at the switch, and the events
// published after the retrain's snapshot), read from the changelog's states.
func TestIntegrationRetrainFromLog(t *testing.T) {
	brokers, redisAddr := os.Getenv("STREAMREC_TEST_KAFKA"), os.Getenv(envRedis)
	if brokers == "" || redisAddr == "" || testing.Short() {
		t.Skip("integration: set STREAMREC_TEST_KAFKA and STREAMREC_TEST_REDIS (and drop -short) to run")
	}
	id := fmt.Sprintf("%08x", rand.Uint32())
	ns, topic := "test-retrain-"+id, "test-retrain-"+id
	changelog := topic + ".state"
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, ns+":*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		rdb.Close()
	})
	if err := stream.EnsureTopics(t.Context(), []string{brokers}, stream.InteractionsTopic(topic, 4)); err != nil {
		t.Fatal(err)
	}
	root := genTiny(t)
	data := filepath.Join(root, "KuaiRec 2.0")
	cut := time.Date(2020, 8, 30, 0, 0, 0, 0, cst)
	out := t.TempDir()
	common := []string{"--data", data, "--cut", cut.Format(time.RFC3339), "--redis-addr", redisAddr, "--namespace", ns,
		"--epochs", "2", "--folds", "0"}
	runTrain(t, append(common, "--report", filepath.Join(out, "r1.json"), "--model-out", filepath.Join(out, "m1.srm"),
		"--model-version", "v1")...)

	// Phase A: up to 8 replayed events per user after the cut, then two
	// simulator events for some of them (every user stays under the ring's 16).
	ds, _, err := kuairec.Load(data, kuairec.Options{SkipDaily: true})
	if err != nil {
		t.Fatal(err)
	}
	big := ds.Big
	perUser := map[uint32]int{}
	var phaseA []stream.Event
	for _, r := range big.Order {
		u := big.User[r]
		if big.TimeMS[r] < cut.UnixMilli() || perUser[u] >= 8 {
			continue
		}
		perUser[u]++
		phaseA = append(phaseA, stream.Event{EventID: stream.MakeEventID(big.TimeMS[r], uint32(perUser[u])), UserID: u, VideoID: big.Video[r],
			PlayDurationMs: int64(big.PlayMS[r]), VideoDurationMs: int64(big.DurMS[r]), EventTimeMs: big.TimeMS[r],
			WatchRatio: big.WatchRatio[r], Source: stream.SourceReplay})
	}
	if len(phaseA) < 100 {
		t.Fatalf("only %d events after the cut: the test proves little", len(phaseA))
	}
	now := time.Now().UnixMilli()
	live := func(uid uint32, i int, src stream.Source) stream.Event {
		v := big.Video[(int(uid)*7+i*13)%len(big.Video)]
		return stream.Event{EventID: uint64(1)<<63 | uint64(uid)<<20 | uint64(i)<<8 | uint64(src), UserID: uid, VideoID: v,
			PlayDurationMs: 1000, VideoDurationMs: 2000, EventTimeMs: now + int64(i), WatchRatio: 0.5, Source: src}
	}
	sim := map[uint32]int{}
	users := make([]uint32, 0, len(perUser))
	for u := range perUser {
		users = append(users, u)
	}
	for i, u := range users {
		if i%3 == 0 {
			phaseA = append(phaseA, live(u, 1, stream.SourceSimulator), live(u, 2, stream.SourceSimulator))
			sim[u] = 2
		}
	}
	publishAll(t, brokers, topic, phaseA)

	bin := filepath.Join(t.TempDir(), "updater")
	if b, err := exec.Command("go", "build", "-o", bin, "../updater").CombinedOutput(); err != nil {
		t.Fatalf("building the updater: %v\n%s", err, b)
	}
	var log lockedLog
	upd := exec.Command(bin, "--brokers", brokers, "--topic", topic, "--group", topic, "--changelog-topic", changelog,
		"--redis-addr", redisAddr, "--namespace", ns, "--metrics-addr", "", "--assign", "all",
		"--flush-interval", "5ms", "--log-level", "info", "--lr-control-topic", "none")
	upd.Stderr = &log
	if err := upd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { upd.Process.Signal(os.Interrupt); upd.Wait() }()
	countA := map[uint32]uint64{}
	for _, e := range phaseA {
		countA[e.UserID]++
	}
	waitStates(t, brokers, changelog, "v1", countA, &log)

	// The retrain, by hand, while the updater runs: v2 records the offsets.
	runTrain(t, append(common, "--report", filepath.Join(out, "r2.json"), "--model-out", filepath.Join(out, "m2.srm"),
		"--model-version", "v2", "--from-log", "--brokers", brokers, "--topic", topic)...)
	scfg := cache.DefaultConfig()
	scfg.Namespace = ns
	st, err := cache.NewStore(rdb, scfg)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := st.Meta(t.Context(), "v2")
	if err != nil {
		t.Fatal(err)
	}
	var trained int64
	for _, off := range meta.TrainedOffsets {
		trained += off + 1
	}
	if trained != int64(len(phaseA)) || len(meta.TrainedExcludedSources) != 1 || meta.TrainedExcludedSources[0] != "simulator" {
		t.Fatalf("v2 records offsets %v (%d events) and excluded %v; want the %d events of phase A and simulator",
			meta.TrainedOffsets, trained, meta.TrainedExcludedSources, len(phaseA))
	}
	// Phase B: live API events after the retrain's snapshot.
	var phaseB []stream.Event
	countB := map[uint32]uint64{}
	for u, n := range sim {
		countB[u] = uint64(n)
	}
	for i, u := range users {
		if i%2 == 0 {
			phaseB = append(phaseB, live(u, 3, stream.SourceAPI))
			countB[u]++
		}
	}
	for u := range countA {
		if _, ok := countB[u]; !ok {
			countB[u] = 0
		}
	}
	publishAll(t, brokers, topic, phaseB)
	waitStates(t, brokers, changelog, "v2", countB, &log)
}

func publishAll(t *testing.T, brokers, topic string, evs []stream.Event) {
	t.Helper()
	p, err := stream.NewProducer(stream.ProducerConfig{Brokers: []string{brokers}, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Publish(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
}

// waitStates polls the changelog until every user of want has a state under
// version with exactly want[u] events applied.
func waitStates(t *testing.T, brokers, changelog, version string, want map[uint32]uint64, log *lockedLog) {
	t.Helper()
	cl := online.NewChangelog([]string{brokers}, changelog)
	defer cl.Close()
	deadline := time.Now().Add(90 * time.Second)
	for {
		states, err := cl.Read(t.Context(), []int{0, 1, 2, 3})
		bad, example := 0, ""
		for u, n := range want {
			s, ok := states[u]
			if !ok || s.ModelVersion != version || s.Applied != n {
				bad++
				if ok && example == "" {
					example = fmt.Sprintf("user %d: %s applied %d, want %s %d", u, s.ModelVersion, s.Applied, version, n)
				}
			}
		}
		if err == nil && bad == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90s, %d of %d users do not have their events applied once under %s (%v; %s)\nupdater log:\n%s",
				bad, len(want), version, err, example, tail(log.String(), 4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
