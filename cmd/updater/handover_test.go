package main

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/online"
	"github.com/streamrec/streamrec/internal/towers"
)

// publishVersion publishes a model version with random items and random
// offline user vectors (both as the version's kept offline vectors and as its
// initial serving records, as the ingestor does), with the training cut cutMs
// (0: none). It returns the offline vectors.
func publishVersion(t *testing.T, e *env, version string, cutMs int64, r *rand.Rand) cache.OfflineUsers {
	t.Helper()
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
		Calibration: cal, Items: randomItems(r), TowerWeights: []byte("w")}); err != nil {
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
