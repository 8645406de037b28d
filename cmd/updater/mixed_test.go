package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/online"
	"github.com/streamrec/streamrec/internal/stream"
)

// mixedEvents interleaves, for the same users, replayed events (2020 event
// times, ids from stream.MakeEventID) and live ones (event times now, ids
// with no order, as the API hands them out), in random order, so that each
// user sees both "live then late replay" and "replay then live"; about one
// message in ten is a copy of one of the user's last few events published
// again (a producer retry, a re-POST). It returns what to publish and the
// distinct events in the order of their first copy. Every video has an
// embedding, so every distinct event is an applied SGD step.
func mixedEvents(n int, r *rand.Rand) (publish, distinct []stream.Event) {
	const users = 40
	replayTs := map[uint32]int64{}
	recent := map[uint32][]stream.Event{}
	now := time.Now().UnixMilli()
	for len(distinct) < n {
		uid := uint32(r.IntN(users))
		if prev := recent[uid]; len(prev) > 0 && r.IntN(10) == 0 {
			publish = append(publish, prev[r.IntN(len(prev))]) // a duplicate
			continue
		}
		dur := int64(1000 + r.IntN(20000))
		play := r.Int64N(2 * dur)
		e := stream.Event{UserID: uid, VideoID: uint32(r.IntN(testItems)), PlayDurationMs: play, VideoDurationMs: dur,
			WatchRatio: float64(play) / float64(dur)}
		if r.IntN(2) == 0 {
			replayTs[uid] = max(replayTs[uid]+1+int64(r.IntN(5000)), 1593878903438)
			e.EventTimeMs, e.EventID, e.Source = replayTs[uid], stream.MakeEventID(replayTs[uid], 0), stream.SourceReplay
		} else {
			e.EventTimeMs, e.EventID, e.Source = now-int64(r.IntN(60000)), r.Uint64()|1<<63, stream.SourceAPI
		}
		publish = append(publish, e)
		distinct = append(distinct, e)
		recent[uid] = append(recent[uid], e)
		if len(recent[uid]) > 8 {
			recent[uid] = recent[uid][1:]
		}
	}
	return publish, distinct
}

// Mixed traffic under kill -9: replayed and live events interleaved for the
// same users, duplicates published on purpose, the updater killed at random
// points. At the end, for every user, the changelog's state has applied
// exactly as many events as distinct ones were published for it, and the
// embedding in Redis is bit for bit the in-process application of the
// distinct events in order (counters die with kill -9: the test asserts on
// the state).
func TestIntegrationMixedTrafficKill9(t *testing.T) {
	e := newEnv(t, "")
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STREAMREC_KILL_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed: %d (rerun with STREAMREC_KILL_SEED=%d)", seed, seed)
	r := rand.New(rand.NewPCG(seed, 5))
	publishModel(t, e)
	pub, distinct := mixedEvents(30000, r)
	t.Logf("%d messages, %d distinct events, %d duplicates", len(pub), len(distinct), len(pub)-len(distinct))
	perUser := map[uint32]uint64{}
	for _, ev := range distinct {
		perUser[ev.UserID]++
	}
	want := expected(t, e, distinct)
	for uid := range want {
		if perUser[uid] == 0 {
			delete(want, uid) // offline users without events: not the updater's
		}
	}

	stop := killMidStream(t, e, buildUpdater(t), pub, 4, r, "--max-batch", "64")
	defer stop()
	waitRedis(t, e, want, 120*time.Second)
	waitCommittedEnd(t, e, 60*time.Second)

	parts := make([]int, testPartitions)
	for i := range parts {
		parts[i] = i
	}
	cl := online.NewChangelog([]string{e.brokers}, e.changelog)
	defer cl.Close()
	states, err := cl.Read(t.Context(), parts)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]uint32, 0, len(perUser))
	for uid := range perUser {
		ids = append(ids, uid)
	}
	slices.Sort(ids)
	for _, uid := range ids {
		s, ok := states[uid]
		if !ok {
			t.Fatalf("user %d: no state in the changelog", uid)
		}
		if s.Applied != perUser[uid] {
			t.Fatalf("user %d: the state applied %d events, want the %d distinct ones published", uid, s.Applied, perUser[uid])
		}
	}
}
