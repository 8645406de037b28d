package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/online/eval"
	"github.com/streamrec/streamrec/internal/stream"
)

// onlineServer rebuilds f's server with the online evaluation wired to f's store.
func onlineServer(t *testing.T, f *fixture, queue int) {
	t.Helper()
	srv, err := New(DefaultConfig(), Deps{Items: f.items, Store: f.store, Publisher: f.pub, Now: func() time.Time { return f.now },
		Online: &Online{Log: f.store, Windows: f.store, Group: "g", Window: time.Minute, CountWindow: 100, Partitions: 4, Queue: queue}})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
}

func TestOnlineMetricsOff(t *testing.T) {
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	w := f.do(http.MethodGet, "/v1/metrics/online", "")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), CodeOnlineOff) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

func TestServedListsReachTheLog(t *testing.T) {
	f := newFixture(t, 30, 4, 2, DefaultConfig())
	// The log drops lists older than its retention by the Redis server's clock.
	f.now = time.UnixMilli(time.Now().UnixMilli())
	onlineServer(t, f, 16)
	for _, u := range []string{"1", "999"} {
		if w := f.do(http.MethodGet, "/v1/users/"+u+"/recommendations?k=5", ""); w.Code != http.StatusOK {
			t.Fatalf("recs %s: %d %s", u, w.Code, w.Body)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.srv.RunServedLog(ctx, time.Second) }()
	cancel() // the queued lists are drained before it returns
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user     uint32
		fallback string
		vec      bool
	}{{1, "", true}, {999, FallbackPopularity, false}} {
		p := int32(stream.PartitionFor(c.user, 4))
		recs, bad, err := f.store.ServedInPartition(context.Background(), p, 0, f.now.UnixMilli())
		if err != nil || bad != 0 {
			t.Fatal(err, bad)
		}
		var got *cache.ServedRecord
		for i := range recs {
			if recs[i].User == c.user {
				got = &recs[i]
			}
		}
		if got == nil {
			t.Fatalf("user %d: no list in partition %d (%d lists there: %+v)", c.user, p, len(recs), recs)
		}
		if got.Fallback != c.fallback || (len(got.UserVec) == 4) != c.vec || len(got.Slots) != 5 || got.K != 5 || got.ServedMS != f.now.UnixMilli() || got.Version != "v1" {
			t.Errorf("user %d: %+v", c.user, got)
		}
	}
	// With the log on, the request path writes nothing to Redis for the list.
	if _, ok, err := f.store.GetServed(context.Background(), 1); ok || err != nil {
		t.Errorf("the synchronous served-list record was written (%v, %v)", ok, err)
	}
	if !strings.Contains(f.metricsText(), `streamrec_api_served_log_total{result="written"} 2`) {
		t.Errorf("written counter:\n%s", grepLines(f.metricsText(), "served_log"))
	}
}

func TestServedLogQueueFullDrops(t *testing.T) {
	f := newFixture(t, 30, 4, 1, DefaultConfig())
	onlineServer(t, f, 1)
	for range 3 {
		if w := f.do(http.MethodGet, "/v1/users/1/recommendations", ""); w.Code != http.StatusOK {
			t.Fatalf("%d", w.Code)
		}
	}
	if !strings.Contains(f.metricsText(), `streamrec_api_served_log_total{result="dropped"} 2`) {
		t.Errorf("dropped counter:\n%s", grepLines(f.metricsText(), "served_log"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestOnlineMetricsSeries(t *testing.T) {
	f := newFixture(t, 40, 4, 1, DefaultConfig())
	onlineServer(t, f, 16)
	ctx := context.Background()
	idx := f.now.UnixMilli() / 60000
	deltas := []cache.WindowDelta{
		{Kind: cache.WindowByTime, Index: idx - 1, Field: "interactions", Delta: 10},
		{Kind: cache.WindowByTime, Index: idx - 1, Field: "hits", Delta: 3},
		{Kind: cache.WindowByTime, Index: idx - 1, Field: "interactions|source=api", Delta: 4},
		{Kind: cache.WindowByTime, Index: idx - 1, Field: "hits|source=api", Delta: 1},
		{Kind: cache.WindowByTime, Index: idx, Field: "interactions", Delta: 5},
		{Kind: cache.WindowByTime, Index: idx, Field: "lists", Delta: 2},
		{Kind: cache.WindowByTime, Index: idx, Field: "served_videos", Distinct: true, Member: 1000},
		{Kind: cache.WindowByTime, Index: idx, Field: "served_videos", Distinct: true, Member: 1007},
		{Kind: cache.WindowByCount, Index: 0, Field: "interactions", Delta: 15},
	}
	if _, err := f.store.ApplyWindows(ctx, "g", []cache.OffsetRange{{Partition: 0, From: 0, To: 14}}, deltas); err != nil {
		t.Fatal(err)
	}
	get := func(q string) OnlineSeries {
		t.Helper()
		w := f.do(http.MethodGet, "/v1/metrics/online"+q, "")
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", q, w.Code, w.Body)
		}
		var s OnlineSeries
		if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := get("")
	if s.Kind != "time" || s.WindowMs != 60000 || len(s.Points) != 2 || s.Points[0].Index != idx-1 || *s.Points[0].StartMs != (idx-1)*60000 {
		t.Fatalf("series %+v", s)
	}
	if v := s.Points[0].Values; v["hit_rate"] != 0.3 || v["interactions"] != 10 {
		t.Errorf("window %d values %v", idx-1, v)
	}
	if v := s.Points[1].Values; v["coverage"] != 2.0/40 || v["lists"] != 2 {
		t.Errorf("window %d values %v", idx, v)
	}
	if v, ok := s.Points[1].Values["hit_rate"]; !ok || v != 0 {
		t.Errorf("hit rate of a window with interactions and no hit: %v, %v (want 0)", v, ok)
	}
	if _, ok := s.Points[1].Values["abs_err"]; ok {
		t.Error("abs_err defined in a window without a joined hit")
	}
	if s := get("?metric=hit_rate&source=api&since=" + itoa64((idx-1)*60000)); len(s.Points) != 2 || s.Points[0].Values["hit_rate"] != 0.25 || len(s.Points[0].Values) != 1 || s.Tag != "source=api" {
		t.Errorf("api hit rate: %+v", s)
	}
	if s := get("?since=" + itoa64(idx*60000+5)); len(s.Points) != 1 || s.Points[0].Index != idx {
		t.Errorf("since: %+v", s)
	}
	if s := get("?kind=count&metric=interactions"); s.Kind != "count" || s.CountWindow != 100 || len(s.Points) != 1 || s.Points[0].Values["interactions"] != 15 {
		t.Errorf("count windows: %+v", s)
	}
	if s := get("?limit=1"); len(s.Points) != 1 || s.Points[0].Index != idx {
		t.Errorf("limit: %+v", s)
	}
	for _, q := range []string{"?kind=hourly", "?metric=nope", "?limit=0", "?limit=1001", "?since=abc", "?source=api&fallback=none", "?source=tv", "?fallback=x", "?bogus=1"} {
		w := f.do(http.MethodGet, "/v1/metrics/online"+q, "")
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), CodeInvalidParameter) {
			t.Errorf("%s: %d %s", q, w.Code, w.Body)
		}
	}
	f.now = f.now.Add(2 * time.Minute) // the window idx is now the last closed one
	if m := f.metricsText(); !strings.Contains(m, `streamrec_online_last_window{metric="lists"} 2`) {
		t.Errorf("prometheus export:\n%s", grepLines(m, "online_last"))
	}
}

func itoa64(x int64) string { b, _ := json.Marshal(x); return string(b) }

func TestIndexScorer(t *testing.T) {
	f := newFixture(t, 20, 4, 1, DefaultConfig())
	sc := IndexScorer{Items: f.items}
	ix := f.items.Index()
	vec := f.users[1].Embedding
	// The top video of TopK ranks 1, and the predictions are the API's.
	top := ix.TopK(nil, vec, 20, cache.TopKOptions{UseBias: true})
	for i, it := range top {
		r, ok := sc.Rank(vec, it.ID, "")
		if !ok || (i == 0 && r != 1) || r < 1 || r > 20 {
			t.Fatalf("rank of the %d-th video: %d, %v", i, r, ok)
		}
		p, ok := sc.Predict(vec, 0.5, it.ID)
		if want := testMu + 0.5 + float64(it.Score); !ok || p-want > 1e-6 || want-p > 1e-6 {
			t.Fatalf("predict %v, want %v", p, want)
		}
	}
	if r, _ := sc.Rank(vec, top[len(top)-1].ID, ""); r < 15 {
		t.Errorf("the last of TopK ranks %d", r)
	}
	if _, ok := sc.Predict([]float32{1}, 0, top[0].ID); ok {
		t.Error("a vector of another dimension was scored")
	}
	if _, ok := sc.Rank(vec, 4242, ""); ok {
		t.Error("an unknown video was ranked")
	}
}

func TestIndexPopularity(t *testing.T) {
	f := newFixture(t, 5, 2, 0, DefaultConfig())
	// A second version whose items have distinct biases: 1003 most popular.
	m := cache.Model{Version: "v2", Dim: 2, CreatedAtMs: 2, Items: cache.Items{IDs: []uint32{1001, 1002, 1003, 1004},
		Biases: []float32{0.1, -0.5, 2, 0.3}, Vectors: make([]float32, 8)}}
	ctx := context.Background()
	if _, err := f.store.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	p := &IndexPopularity{Items: f.items}
	_ = p.Percentile(1000) // a table for v1, replaced below
	if _, err := f.items.Refresh(ctx, f.store); err != nil || f.items.Index().Version() != "v2" {
		t.Fatalf("refresh: %v", err)
	}
	for video, want := range map[uint32]float64{1003: 1, 1004: 2.0 / 3, 1001: 1.0 / 3, 1002: 0, 4242: 0} {
		if got := p.Percentile(video); got != want {
			t.Errorf("video %d: percentile %v, want %v", video, got, want)
		}
	}
}

func TestRecommendationsOverACandidateSet(t *testing.T) {
	f := newFixture(t, 60, 4, 2, DefaultConfig())
	ctx := context.Background()
	// v2: the same items, a candidate set of every third one, and the users
	// under it.
	m := f.model
	m.Version, m.CreatedAtMs = "v2", 2
	var set []uint32
	for i, id := range m.Items.IDs {
		if i%3 == 0 {
			set = append(set, id)
		}
	}
	m.CandidateSets = map[string][]uint32{"small_matrix": set}
	var recs []cache.UserRecord
	for _, u := range f.users {
		u.ModelVersion = "v2"
		recs = append(recs, u)
	}
	if err := f.store.PutUsers(ctx, "v2", recs); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, err := f.items.Refresh(ctx, f.store); err != nil {
		t.Fatal(err)
	}
	in := map[uint32]bool{}
	for _, id := range set {
		in[id] = true
	}
	get := func(q string) Recommendations {
		t.Helper()
		w := f.do(http.MethodGet, "/v1/users/"+q, "")
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", q, w.Code, w.Body)
		}
		var r Recommendations
		if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	full := get("1/recommendations?k=60")
	sub := get("1/recommendations?k=10&candidates=small_matrix")
	var want []RecItem
	for _, it := range full.Items {
		if in[it.VideoID] && len(want) < 10 {
			want = append(want, it)
		}
	}
	if sub.Candidates != "small_matrix" || full.Candidates != "" || len(sub.Items) != 10 {
		t.Fatalf("candidates field %q / %q, %d items", sub.Candidates, full.Candidates, len(sub.Items))
	}
	for i := range want {
		if sub.Items[i] != want[i] {
			t.Fatalf("rank %d: %+v, want %+v (the full ranking restricted to the set)", i, sub.Items[i], want[i])
		}
	}
	fb := get("999/recommendations?k=5&candidates=small_matrix")
	if fb.Fallback != FallbackPopularity || len(fb.Items) != 5 {
		t.Fatalf("fallback over the set: %+v", fb)
	}
	for _, it := range fb.Items {
		if !in[it.VideoID] {
			t.Errorf("the popularity fallback served %d, not in the set", it.VideoID)
		}
	}
	for _, q := range []string{"candidates=nope", "candidates=small_matrix&candidates=small_matrix", "candidates="} {
		w := f.do(http.MethodGet, "/v1/users/1/recommendations?"+q, "")
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "small_matrix") {
			t.Errorf("%s: %d %s", q, w.Code, w.Body)
		}
	}
}

// The feedback-to-effect histogram sums the applied time-window buckets
// (untagged only) and exports them cumulative, in seconds.
func TestEffectHistogram(t *testing.T) {
	h := NewEffectHistogram()
	h.Observe([]cache.WindowDelta{
		{Kind: cache.WindowByTime, Field: "f2e_n", Delta: 3},
		{Kind: cache.WindowByTime, Field: "f2e_sum_ms", Delta: 660},
		{Kind: cache.WindowByTime, Field: "f2e_le_10", Delta: 1},
		{Kind: cache.WindowByTime, Field: "f2e_le_50", Delta: 1},
		{Kind: cache.WindowByTime, Field: "f2e_le_inf", Delta: 1},
		{Kind: cache.WindowByTime, Field: "f2e_n|source=api", Delta: 3}, // a tag: not summed
		{Kind: cache.WindowByCount, Field: "f2e_n", Delta: 3},           // the count window's copy: not summed
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(h)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 {
		t.Fatalf("gather: %v, %d families", err, len(mfs))
	}
	hist := mfs[0].GetMetric()[0].GetHistogram()
	if hist.GetSampleCount() != 3 || hist.GetSampleSum() != 0.66 {
		t.Fatalf("count %d sum %v, want 3 and 0.66", hist.GetSampleCount(), hist.GetSampleSum())
	}
	want := map[float64]uint64{0.001: 0, 0.005: 0, 0.01: 1, 0.02: 1, 0.05: 2, 60: 2}
	for _, b := range hist.GetBucket() {
		if w, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
	}
	if n := len(hist.GetBucket()); n != len(eval.F2EBucketsMS) {
		t.Errorf("%d buckets, want %d", n, len(eval.F2EBucketsMS))
	}
}
