package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/online"
	"github.com/streamrec/streamrec/internal/stream"
	"github.com/streamrec/streamrec/internal/towers"
)

// publishVersion publishes a model version with random items and random
// offline user vectors (both as the version's kept offline vectors and as its
// initial serving records, as the ingestor does), with the training cut cutMs
// (0: none). It returns the offline vectors.
func publishVersion(t *testing.T, e *env, version string, cutMs int64, r *rand.Rand) cache.OfflineUsers {
	t.Helper()
	return publishVersionOpt(t, e, version, cutMs, r, false)
}

// publishVersionOpt is publishVersion; with dense, the version also has a
// user tower and user features for users 0..testFeatUsers-1 (dense mode).
func publishVersionOpt(t *testing.T, e *env, version string, cutMs int64, r *rand.Rand, dense bool) cache.OfflineUsers {
	t.Helper()
	blob := []byte("w")
	if dense {
		mk := func(in, out int, relu bool) towers.LayerWeights {
			l := towers.LayerWeights{In: in, Out: out, ReLU: relu, W: make([]float32, in*out), B: make([]float32, out)}
			for i := range l.W {
				l.W[i] = float32(r.NormFloat64() * 0.3)
			}
			return l
		}
		blob = towers.EncodeTowers([]towers.NamedTower{{Name: "user", Layers: []towers.LayerWeights{mk(testFeatDim, 16, true), mk(16, testDim, false)}}})
		feats := cache.UserFeatures{Dim: testFeatDim}
		for uid := uint32(0); uid < testFeatUsers; uid++ {
			feats.IDs = append(feats.IDs, uid)
			for j := 0; j < testFeatDim; j++ {
				feats.Feats = append(feats.Feats, float32(r.NormFloat64()))
			}
		}
		if err := e.store.PutUserFeatures(t.Context(), version, feats); err != nil {
			t.Fatal(err)
		}
	}
	off := cache.OfflineUsers{Dim: testDim}
	var recs []cache.UserRecord
	for uid := uint32(0); uid < testUsers; uid++ {
		emb := make([]float32, testDim)
		for j := range emb {
			emb[j] = float32(r.NormFloat64() * 0.2)
		}
		emb[testDim-1] = 1
		bias := float32(r.NormFloat64() * 0.1)
		off.IDs, off.Biases, off.Vectors = append(off.IDs, uid), append(off.Biases, bias), append(off.Vectors, emb...)
		recs = append(recs, cache.UserRecord{UserID: uid, Embedding: slices.Clone(emb), Bias: bias, UpdatedAtMs: 1})
	}
	if err := e.store.PutUsers(t.Context(), version, recs); err != nil {
		t.Fatal(err)
	}
	if err := e.store.PutOfflineUsers(t.Context(), version, off); err != nil {
		t.Fatal(err)
	}
	cal := cache.Calibration{GlobalMean: 0.9, Scale: 1.3}
	if cutMs > 0 {
		cal.Extra = map[string]float64{towers.MetaCutMS: float64(cutMs)}
	}
	if _, err := e.store.Publish(t.Context(), cache.Model{Version: version, Dim: testDim, CreatedAtMs: 1,
		Calibration: cal, Items: randomItems(r), TowerWeights: blob}); err != nil {
		t.Fatal(err)
	}
	return off
}

// A version switch mid-stream, a rollback, then a switch back: each held
// user becomes the version's offline vector plus the online steps of exactly
// its events the version did not train on, in input order. Computed here
// from towers.OnlineStep alone; every user has fewer events than the ring
// holds, so the ring's bound never cuts. Redis must equal it bit for bit.
func TestIntegrationVersionHandover(t *testing.T) {
	e := newEnv(t, "")
	r := rand.New(rand.NewPCG(21, 22))
	evs := makeEvents(700, 9) // 100 users (80 with offline vectors): about 7 events each
	perUser := map[uint32]int{}
	for _, ev := range evs {
		if perUser[ev.UserID]++; perUser[ev.UserID] > online.RingSize {
			t.Fatalf("user %d has more events than the ring holds: the test would hit the bound", ev.UserID)
		}
	}
	publishVersion(t, e, "v1", 0, r)
	cut := evs[len(evs)/2].EventTimeMs // v2 trained on the first half of the stream (by event time)
	var items2 cache.Items
	{
		// v2 is published now but made current later: publish, then roll
		// back to v1 at once.
		publishVersion(t, e, "v2", cut, r)
		if _, err := e.store.Rollback(t.Context()); err != nil {
			t.Fatal(err)
		}
		_, it, err := e.store.ItemEmbeddings(t.Context(), "v2")
		if err != nil {
			t.Fatal(err)
		}
		items2 = it
	}
	off2, _, err := e.store.GetOfflineUsers(t.Context(), "v2")
	if err != nil {
		t.Fatal(err)
	}
	var log lockedBuffer
	cmd := startUpdater(t, e, &log, "--log-level", "info")
	defer stopUpdater(cmd)
	switched := func(n int) {
		t.Helper()
		for end := time.Now().Add(30 * time.Second); strings.Count(log.String(), `"msg":"switched to a new model version"`) < n; {
			if time.Now().After(end) {
				t.Fatalf("the updater did not switch versions %d times in 30s:\n%s", n, log.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	third := len(evs) / 3
	publishEvents(t, e, evs[:third])
	waitCommittedEnd(t, e, 60*time.Second)
	if _, err := e.store.Rollback(t.Context()); err != nil { // v1 -> v2, mid-stream
		t.Fatal(err)
	}
	switched(1)
	publishEvents(t, e, evs[third:2*third])
	if _, err := e.store.Rollback(t.Context()); err != nil { // v2 -> v1
		t.Fatal(err)
	}
	switched(2)
	publishEvents(t, e, evs[2*third:])
	if _, err := e.store.Rollback(t.Context()); err != nil { // v1 -> v2 again
		t.Fatal(err)
	}
	switched(3)
	waitCommittedEnd(t, e, 60*time.Second)

	// The rule, in process.
	table := online.NewOfflineTable(off2)
	want := map[uint32]cache.UserRecord{}
	p := towers.OnlineParams{LR: 0.05, L2: 0.001, GlobalMean: 0.9, Scale: 1.3, TargetCap: 5}
	base, vec := map[uint32][]float32{}, map[uint32][]float32{}
	replayed := 0
	for _, ev := range evs {
		b, ok := base[ev.UserID]
		if !ok {
			b, vec[ev.UserID] = make([]float32, testDim), make([]float32, testDim)
			if emb, bias, ok := table.Offline(ev.UserID); ok {
				for j := 0; j < testDim-1; j++ {
					b[j] = emb[j] / p.Scale
				}
				b[testDim-1] = bias
			}
			base[ev.UserID] = b
		}
		if ev.EventTimeMs < cut {
			continue // v2 trained on it
		}
		x, ok := v2Item(items2, ev.VideoID)
		if !ok {
			continue
		}
		towers.OnlineStep(vec[ev.UserID], b, x, float32(ev.WatchRatio), 1, p)
		replayed++
	}
	if replayed == 0 {
		t.Fatal("no event after the cut: the test proves nothing")
	}
	for uid, b := range base {
		emb := make([]float32, testDim)
		bias := towers.UserEmbedding(emb, b, vec[uid], p.Scale)
		want[uid] = cache.UserRecord{UserID: uid, Embedding: emb, Bias: bias}
	}
	waitRedisVersion(t, e, "v2", want, 60*time.Second)
}

// v2Item is the item vector as towers exports it (ItemIndex.Item's form).
func v2Item(items cache.Items, id uint32) ([]float32, bool) {
	i := slices.Index(items.IDs, id)
	if i < 0 {
		return nil, false
	}
	return items.Vectors[i*testDim : (i+1)*testDim], true
}

// startUpdater runs the updater binary on e with extra flags, its log into log.
func startUpdater(t *testing.T, e *env, log *lockedBuffer, extra ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(buildUpdater(t), e.args(extra...)...)
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func stopUpdater(cmd *exec.Cmd) {
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
}

// Dense mode, the same switch, rollback and switch back: exact counts. Under
// the final version every user has applied exactly its events the version
// did not train on, and the version's tower has taken exactly one step per
// such event of a user with features (the tower restarts from the version's
// published weights at each switch and re-applies the rings).
func TestIntegrationVersionHandoverDense(t *testing.T) {
	e := newEnv(t, "")
	r := rand.New(rand.NewPCG(23, 24))
	evs := makeEvents(700, 10)
	publishVersionOpt(t, e, "v1", 0, r, true)
	cut := evs[len(evs)/2].EventTimeMs
	publishVersionOpt(t, e, "v2", cut, r, true)
	if _, err := e.store.Rollback(t.Context()); err != nil { // v1 current
		t.Fatal(err)
	}
	var log lockedBuffer
	cmd := startUpdater(t, e, &log, "--log-level", "info", "--assign", "all", "--dense-lr", "0.01")
	defer stopUpdater(cmd)
	third := len(evs) / 3
	for i, part := range [][]stream.Event{evs[:third], evs[third : 2*third], evs[2*third:]} {
		publishEvents(t, e, part)
		waitCommittedEnd(t, e, 60*time.Second)
		if _, err := e.store.Rollback(t.Context()); err != nil {
			t.Fatal(err)
		}
		waitLog(t, &log, `"msg":"switched to a new model version"`, i+1, 30*time.Second)
	}
	// v2 is current again. Expected counts.
	applied := map[uint32]uint64{}
	var steps uint64
	for _, ev := range evs {
		if _, ok := applied[ev.UserID]; !ok {
			applied[ev.UserID] = 0
		}
		if ev.EventTimeMs < cut || ev.VideoID >= testItems {
			continue
		}
		applied[ev.UserID]++
		if ev.UserID < testFeatUsers {
			steps++
		}
	}
	cl := online.NewChangelog([]string{e.brokers}, e.changelog)
	defer cl.Close()
	for deadline := time.Now().Add(60 * time.Second); ; {
		states, err := cl.Read(t.Context(), []int{0, 1, 2, 3})
		cp, cerr := cl.ReadDense(t.Context())
		bad, example := 0, ""
		for uid, n := range applied {
			s, ok := states[uid]
			if !ok || s.ModelVersion != "v2" || s.Applied != n {
				bad++
				if ok && example == "" {
					example = fmt.Sprintf("user %d: %s applied %d, want v2 %d", uid, s.ModelVersion, s.Applied, n)
				}
			}
		}
		if err == nil && cerr == nil && bad == 0 && cp != nil && cp.Version == "v2" && cp.Steps == steps {
			t.Logf("v2: %d users, %d tower steps, as counted", len(applied), steps)
			return
		}
		if time.Now().After(deadline) {
			got := "none"
			if cp != nil {
				got = fmt.Sprintf("%s with %d steps", cp.Version, cp.Steps)
			}
			t.Fatalf("after 60s: %d of %d users off (%s); dense checkpoint %s, want v2 with %d steps (%v %v)", bad, len(applied), example, got, steps, err, cerr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
