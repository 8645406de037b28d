package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/modellog"
	"github.com/streamrec/streamrec/internal/stream"
	"github.com/streamrec/streamrec/internal/towers"
)

// publishFullVersion publishes a version with everything the ingestor
// publishes (serving records and offline vectors of users 0..testUsers-1,
// user features, popularity, a candidate set, a tower blob bigger than
// Kafka's default message limit), all at createdAtMs as publishModel does.
func publishFullVersion(t *testing.T, e *env, version string, seed uint64, createdAtMs int64) {
	t.Helper()
	ctx := t.Context()
	r := rand.New(rand.NewPCG(seed, 12))
	off := cache.OfflineUsers{Dim: testDim}
	var recs []cache.UserRecord
	for uid := uint32(0); uid < testUsers; uid++ {
		emb := make([]float32, testDim)
		for j := range emb {
			emb[j] = float32(r.NormFloat64() * 0.2)
		}
		emb[testDim-1] = 1
		bias := float32(r.NormFloat64() * 0.1)
		recs = append(recs, cache.UserRecord{UserID: uid, Embedding: emb, Bias: bias, UpdatedAtMs: createdAtMs})
		off.IDs, off.Biases, off.Vectors = append(off.IDs, uid), append(off.Biases, bias), append(off.Vectors, emb...)
	}
	uf := cache.UserFeatures{Dim: 5, IDs: off.IDs}
	for range len(off.IDs) * uf.Dim {
		uf.Feats = append(uf.Feats, float32(r.NormFloat64()))
	}
	// An item tower (the API embeds registered videos with it) and a big
	// layer beside it: the blob is > 1 MB, three pieces in the log.
	item := towers.LayerWeights{In: 4, Out: testDim, W: make([]float32, 4*testDim), B: make([]float32, testDim)}
	pad := towers.LayerWeights{In: 640, Out: 640, W: make([]float32, 640*640), B: make([]float32, 640)}
	for _, w := range [][]float32{item.W, pad.W} {
		for i := range w {
			w[i] = float32(r.NormFloat64())
		}
	}
	tower := towers.EncodeTowers([]towers.NamedTower{{Name: "item", Layers: []towers.LayerWeights{item}}, {Name: "pad", Layers: []towers.LayerWeights{pad}}})
	items := randomItems(r)
	pop := cache.Popularity{Label: "watch_ratio>=0.8", IDs: items.IDs[:50]}
	for i := range pop.IDs {
		pop.Counts = append(pop.Counts, uint32(100-i))
	}
	for _, err := range []error{
		e.store.PutUsers(ctx, version, recs),
		e.store.PutOfflineUsers(ctx, version, off),
		e.store.PutUserFeatures(ctx, version, uf),
		e.store.PutPopularity(ctx, version, pop),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.store.Publish(ctx, cache.Model{Version: version, Dim: testDim, CreatedAtMs: createdAtMs,
		Calibration: cache.Calibration{GlobalMean: 0.9, Scale: 1.3, Extra: map[string]float64{"target_cap": 5}}, Items: items,
		TowerWeights: tower, CandidateSets: map[string][]uint32{"small_matrix": items.IDs[10:60]}}); err != nil {
		t.Fatal(err)
	}
}

// redisImage reads every key of the namespace that must survive a flush
// (the model versions and their registry, user records, watch histories)
// as key -> a printable rendering of its value.
func redisImage(t *testing.T, rdb *redis.Client, ns string) map[string]string {
	t.Helper()
	ctx := t.Context()
	out := map[string]string{}
	for _, pattern := range []string{ns + ":model:*", ns + ":user:*", ns + ":watched:*"} {
		iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			k := iter.Val()
			if k == ns+":model:events" {
				// The history of version flips is not rebuilt (README): a
				// restore starts it anew with its own "restore" event.
				continue
			}
			switch typ := rdb.Type(ctx, k).Val(); typ {
			case "string":
				out[k] = rdb.Get(ctx, k).Val()
			case "hash":
				h := rdb.HGetAll(ctx, k).Val()
				fs := make([]string, 0, len(h))
				for f, v := range h {
					fs = append(fs, f+"="+v)
				}
				sort.Strings(fs)
				out[k] = "hash:" + strings.Join(fs, "\x00")
			case "zset":
				z := rdb.ZRangeWithScores(ctx, k, 0, -1).Val()
				out[k] = fmt.Sprintf("zset:%v", z)
			case "none":
			default:
				t.Fatalf("key %s: type %s", k, typ)
			}
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// diffImages returns the keys of want whose value in got differs (or is
// missing), and the keys of got that want lacks, skipping keys skip says.
func diffImages(want, got map[string]string, skip func(string) bool) (differ []string) {
	for k, v := range want {
		if !skip(k) && got[k] != v {
			differ = append(differ, k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && !skip(k) {
			differ = append(differ, k+" (extra)")
		}
	}
	slices.Sort(differ)
	return differ
}

// apiProc is a running cmd/api binary.
type apiProc struct {
	base string
	cmd  *exec.Cmd
}

func buildAPI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "api")
	if out, err := exec.Command("go", "build", "-o", bin, "../api").CombinedOutput(); err != nil {
		t.Fatalf("building the api: %v\n%s", err, out)
	}
	return bin
}

func startAPI(t *testing.T, e *env, bin string, extra ...string) *apiProc {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(bin, append([]string{"--listen", addr, "--brokers", e.brokers, "--topic", e.topic, "--redis-addr", e.redisAddr,
		"--namespace", e.ns, "--model-poll", "200ms", "--rate-limit", "0", "--log-level", "warn"}, extra...)...)
	cmd.Stderr = &prefixWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &apiProc{base: "http://" + addr, cmd: cmd}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := http.Get(p.base + "/healthz"); err == nil {
			resp.Body.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatal("the api did not listen within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// get returns the status and body of GET path.
func (p *apiProc) get(path string) (int, []byte, error) {
	resp, err := http.Get(p.base + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// load requests recommendations of random users (known, new and unknown)
// from p until stop, and counts the answers by status and fallback.
type load struct {
	mu       sync.Mutex
	statuses map[int]int
	kinds    map[string]int
	errs     []string
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startLoad(p *apiProc, workers int) *load {
	l := &load{statuses: map[int]int{}, kinds: map[string]int{}, stop: make(chan struct{})}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 99))
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				code, body, err := p.get(fmt.Sprintf("/v1/users/%d/recommendations?k=10", r.IntN(testUsers+40)))
				var rec struct {
					Fallback string `json:"fallback"`
				}
				_ = json.Unmarshal(body, &rec)
				l.mu.Lock()
				l.statuses[code]++
				l.kinds[rec.Fallback]++
				if err != nil || code >= 500 {
					l.errs = append(l.errs, fmt.Sprintf("%d %v %s", code, err, body))
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) end() { close(l.stop); l.wg.Wait() }

// TestIntegrationFlushAllRebuild: FLUSHALL of Redis under load (its own
// redis-server): an API serving all along answers every request (fallbacks,
// never a 5xx); an API started during the gap starts, is not ready and
// answers 503 no_model until the model is back, then serves it; a video
// registered through the API while no restorer ran is in the model log (the
// API wrote it); the
// restorer (started after the flush, as a restarted process reading the
// whole model log) writes back both model versions, the registered video,
// the pointers and the untouched users' offline records, and the updater
// rewrites the users it holds from its changelog; events published during
// the gap are applied. Every key is then bit-exact with the image before the
// flush (users with events during the gap: bit-exact with the in-process
// application). Then a second FLUSHALL with the restorer following.
func TestIntegrationFlushAllRebuild(t *testing.T) {
	addr := privateRedis(t)
	e := newEnv(t, addr)
	ctx := t.Context()
	const created = 1700000000000
	publishFullVersion(t, e, "v0", 21, created-1000)
	publishFullVersion(t, e, "v1", 11, created) // current; v0 is previous
	vec := make([]float32, testDim)
	vec[0] = 0.5
	if err := e.store.RegisterItem(ctx, "v1", 7777, 0.1, vec); err != nil {
		t.Fatal(err)
	}
	topic := e.ns + ".models"
	newRestorer := func() *modellog.Restorer {
		l, err := modellog.New([]string{e.brokers}, topic)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return &modellog.Restorer{Store: e.store, Log: l, Every: 100 * time.Millisecond}
	}
	runRestorer := func(r *modellog.Restorer) (stop func()) {
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		return func() { cancel(); <-done }
	}
	stopR1 := runRestorer(newRestorer())

	evs := makeEvents(4000, 5)
	// During the gap only even users get events.
	second := slices.DeleteFunc(slices.Clone(evs[3000:]), func(ev stream.Event) bool { return ev.UserID%2 == 1 })
	first := evs[:3000]
	want := expected(t, e, append(slices.Clone(first), second...))
	half := expected(t, e, first)
	publishEvents(t, e, first)
	stopU := runInProcess(t, e)
	defer stopU()
	waitRedis(t, e, half, 60*time.Second)
	waitCommittedEnd(t, e, 60*time.Second)

	// The log holds both versions, the registered video and the pointers.
	check := newRestorer()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if err := check.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
		if held := check.Held(); slices.Equal(held, []string{"v0", "v1"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the model log holds %v, want v0 and v1", check.Held())
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopR1() // down at the flush: a restarted restorer brings Redis back

	bin := buildAPI(t)
	const token = "integration-admin-token"
	api1 := startAPI(t, e, bin, "--model-topic", topic, "--admin-token", token)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if code, _, _ := api1.get("/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("api 1 not ready within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A video registered through the API while no restorer runs: the API
	// writes it to the model log itself before answering.
	req, _ := http.NewRequest(http.MethodPost, api1.base+"/v1/admin/videos", strings.NewReader(`{"video_id":8888,"features":[1,-0.5,0.25,2]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("registering video 8888: %d %s", resp.StatusCode, body)
	}
	if n, _ := e.store.RegisteredCount(ctx, "v1"); n != 2 {
		t.Fatalf("%d videos registered under v1, want 2", n)
	}
	time.Sleep(300 * time.Millisecond) // every recent write settled (the image must not move)
	before := redisImage(t, e.rdb, e.ns)
	ld := startLoad(api1, 4)
	time.Sleep(500 * time.Millisecond)

	flushed := time.Now()
	if err := e.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// An API started during the gap starts, is not ready, answers 503 no_model.
	api2 := startAPI(t, e, bin)
	for range 5 {
		code, body, err := api2.get("/v1/users/3/recommendations")
		if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(string(body), `"no_model"`) {
			t.Fatalf("api 2 during the gap: %d %s %v, want 503 no_model", code, body, err)
		}
		if code, _, _ := api2.get("/readyz"); code != http.StatusServiceUnavailable {
			t.Fatalf("api 2 during the gap: readyz %d, want 503", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
	publishEvents(t, e, second)
	restarted := time.Now()
	r2 := newRestorer()
	stopR2 := runRestorer(r2)
	defer stopR2()

	// Users with events during the gap have moved on: they are checked
	// against the in-process application; every other key must be back as
	// it was, bit for bit.
	moved := map[uint32]bool{}
	for _, ev := range second {
		moved[ev.UserID] = true
	}
	skip := func(k string) bool {
		for uid := range moved {
			s := fmt.Sprint(uid)
			if k == e.ns+":user:v1:"+s || k == e.ns+":watched:"+s {
				return true
			}
		}
		return false
	}
	var modelBack time.Duration
	waitImage := func(within time.Duration) time.Duration {
		t0 := time.Now()
		for deadline := t0.Add(within); ; {
			if modelBack == 0 {
				if cur, _, _ := e.store.Versions(ctx); cur == "v1" {
					modelBack = time.Since(t0)
				}
			}
			diff := diffImages(before, redisImage(t, e.rdb, e.ns), skip)
			if len(diff) == 0 {
				return time.Since(t0)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v after the restorer started, %d keys differ from before the flush, first: %v", within, len(diff), diff[:min(10, len(diff))])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	all := waitImage(30 * time.Second)
	waitRedis(t, e, want, 30*time.Second)
	t.Logf("flush 1 (restorer restarted %v after it): model back %v and every key %v after the restorer started (%d keys)",
		restarted.Sub(flushed).Round(time.Millisecond), modelBack, all, len(before))

	// api 2 picks the model up.
	for deadline := time.Now().Add(10 * time.Second); ; {
		code, body, _ := api2.get("/v1/users/3/recommendations")
		if code == http.StatusOK && strings.Contains(string(body), `"model_version":"v1"`) {
			if c, _, _ := api2.get("/readyz"); c == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("api 2 did not serve the restored model: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Flush 2, with the restorer following: back within its interval.
	waitCommittedEnd(t, e, 30*time.Second)
	before = redisImage(t, e.rdb, e.ns)
	skip = func(string) bool { return false }
	modelBack = 0
	if err := e.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	all = waitImage(30 * time.Second)
	t.Logf("flush 2 (restorer following): model back %v, every key %v after the flush (%d keys)", modelBack, all, len(before))

	time.Sleep(300 * time.Millisecond)
	ld.end()
	ld.mu.Lock()
	defer ld.mu.Unlock()
	t.Logf("load on api 1: statuses %v, fallbacks %v", ld.statuses, ld.kinds)
	if len(ld.errs) > 0 {
		t.Fatalf("%d requests failed or answered 5xx, first: %s", len(ld.errs), ld.errs[0])
	}
	if ld.kinds[""] == 0 || ld.kinds["feature_tower"]+ld.kinds["popularity"] == 0 {
		t.Fatalf("want model lists and fallbacks under the load, got %v", ld.kinds)
	}
}
