package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/synth"
	"github.com/streamrec/streamrec/internal/towers"
)

// envRedis opts in to the real-Redis integration test.
const envRedis = "STREAMREC_TEST_REDIS"

// genTiny writes a tiny synthetic KuaiRec folder (synthesised side files, so
// the test needs nothing outside the repository) and returns its root.
func genTiny(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if _, err := synth.Generate(root, synth.GenConfig{Scale: synth.Scales["tiny"], Seed: 1}); err != nil {
		t.Fatal(err)
	}
	return root
}

// runTrain runs the train subcommand in-process and returns its stdout.
func runTrain(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := trainMain(t.Context(), append(args, "--quiet", "--log-level", "warn"), &stdout, &stderr); err != nil {
		t.Fatalf("train %v: %v\nstderr:\n%s", args, err, stderr.String())
	}
	return stdout.String()
}

// The whole command on tiny synthetic data with a cut: the report has every
// name other tools read, the cut is recorded in the report and in the model
// file, and the serving model beats popularity against the ground truth.
func TestTrainTinySynthetic(t *testing.T) {
	root := genTiny(t)
	out := t.TempDir()
	cut := time.Date(2020, 8, 30, 0, 0, 0, 0, cst) // about 88% of the log's span
	report, model := filepath.Join(out, "report.json"), filepath.Join(out, "m", "model.srm")
	stdout := runTrain(t, "--data", filepath.Join(root, "KuaiRec 2.0"), "--no-publish", "--report", report,
		"--model-out", model, "--cut", cut.Format(time.RFC3339), "--model-version", "tiny-v1",
		"--lr-grid", "0.003,0.01", "--vec-l2-grid", "0.0001,0.01", "--folds", "2")
	t.Log("\n" + stdout)

	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("report does not parse: %v", err)
	}
	num := func(path ...string) float64 {
		t.Helper()
		var cur any = r
		for _, p := range path {
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("report: %v: %q is not under an object", path, p)
			}
			if cur, ok = m[p]; !ok {
				t.Fatalf("report: missing %v", path)
			}
		}
		x, ok := cur.(float64)
		if !ok || math.IsNaN(x) {
			t.Fatalf("report: %v = %v, not a number", path, cur)
		}
		return x
	}
	for _, k := range []string{"model", "seed", "mean_baseline", "median_baseline", "oracle", "oracle_expected"} {
		if x := num("metrics", "mae", k); !(x > 0) {
			t.Errorf("mae.%s = %v", k, x)
		}
	}
	// The conditional median minimises the absolute error: its MAE is below
	// the expected value's and below every model and baseline.
	if o := num("metrics", "mae", "oracle"); o > num("metrics", "mae", "oracle_expected") || o > num("metrics", "mae", "median_baseline") || o > num("metrics", "mae", "model") {
		t.Errorf("MAE oracle (median) %v is not the smallest MAE", o)
	}
	ranks := []string{"ndcg@25", "precision@25", "recall@25"}
	for _, lv := range []string{"at_0.8", "at_2.0"} {
		if x := num("metrics", lv, "base_rate"); !(x > 0 && x < 1) {
			t.Errorf("%s.base_rate = %v", lv, x)
		}
		if a := num("metrics", lv, "item_knn_fit", "alpha"); !(a >= 0 && a < 1) {
			t.Errorf("%s.item_knn_fit.alpha = %v", lv, a)
		}
		for _, who := range []string{"model", "seed", "popularity", "item_knn", "oracle"} {
			for _, k := range ranks {
				if x := num("metrics", lv, who, k); !(x >= 0 && x <= 1) {
					t.Errorf("%s.%s.%s = %v", lv, who, k, x)
				}
			}
		}
	}
	for _, who := range []string{"model", "seed", "popularity", "item_knn"} {
		for _, k := range ranks {
			num("metrics", "truth", who, k)
		}
	}
	for _, k := range []string{"load", "features", "train_twotower", "train_seed", "evaluate", "total"} {
		num("timings", k)
	}
	if n := num("data", "train_rows"); !(n > 1000) {
		t.Errorf("data.train_rows = %v", n)
	}
	if n := num("data", "after_cut"); !(n > 100) {
		t.Errorf("data.after_cut = %v: the cut left nothing for replay", n)
	}
	if c := num("data", "cut_ms"); c != float64(cut.UnixMilli()) {
		t.Errorf("data.cut_ms = %v, want %d", c, cut.UnixMilli())
	}
	if last := num("data", "last_train_ms"); !(last < float64(cut.UnixMilli())) {
		t.Errorf("last training event %v is not before the cut %d", last, cut.UnixMilli())
	}
	if n := num("data", "user_features", "kept"); !(n > 0) {
		t.Errorf("user PCA dims %v", n)
	}

	model08, pop08 := num("metrics", "truth", "model", "ndcg@25"), num("metrics", "truth", "popularity", "ndcg@25")
	if !(model08 > pop08) {
		t.Errorf("ground truth: model NDCG@25 %.4f does not beat popularity %.4f", model08, pop08)
	}
	if mm, mb := num("metrics", "mae", "model"), num("metrics", "mae", "mean_baseline"); !(mm < mb) {
		t.Errorf("MAE %.4f does not beat the mean baseline %.4f", mm, mb)
	}
	if mm, mb := num("metrics", "mae", "model"), num("metrics", "mae", "median_baseline"); !(mm < mb) {
		t.Errorf("MAE %.4f does not beat the median baseline %.4f", mm, mb)
	}
	// Tiny data: the cross-fit ran. The calibration was fit out of fold on
	// the training rows; each of its steps can only lower the out-of-fold
	// MAE (the map's grid holds the identity slope, and no shift is among
	// the shrinkages tried). Two rates, then one more penalty at the best.
	cal := r["model"].(map[string]any)["calibration"].(map[string]any)
	if cal["method"] != "cross-fit" || num("model", "calibration", "folds") != 2 {
		t.Errorf("calibration method %v, folds %v; want cross-fit, 2", cal["method"], cal["folds"])
	}
	cv, _ := cal["cv_mae"].([]any)
	if len(cv) != 4 {
		t.Fatalf("calibration.cv_mae = %v, want 4 figures", cal["cv_mae"])
	}
	for k := 1; k < 4; k++ {
		if !(cv[k].(float64) <= cv[k-1].(float64)) || !(cv[k].(float64) > 0) {
			t.Errorf("out-of-fold MAE rose at step %d: %v", k, cv)
		}
	}
	trials, _ := r["model"].(map[string]any)["lr_search"].([]any)
	if len(trials) != 3 {
		t.Fatalf("lr_search = %v, want 3 settings (2 rates, then vec-l2 0.01 at the best)", trials)
	}
	bestCV := math.Inf(1)
	for _, tr := range trials {
		m := tr.(map[string]any)
		if x, ok := m["cv_mae"].(float64); !ok || !(x > 0) {
			t.Errorf("lr_search entry %v: no out-of-fold MAE", m)
		} else {
			bestCV = min(bestCV, x)
		}
	}
	if bestCV != cv[3].(float64) {
		t.Errorf("kept setting's out-of-fold MAE %v is not the search's best %v", cv[3], bestCV)
	}
	if lr, l2 := num("model", "lr"), num("model", "vec_l2"); !(lr == 0.003 || lr == 0.01) || !(l2 == 0.0001 || l2 == 0.01) {
		t.Errorf("kept lr %v, vec-l2 %v: not from the grids", lr, l2)
	}

	// The model file carries the cut for the replay tool.
	got, err := towers.LoadModel(model)
	if err != nil {
		t.Fatal(err)
	}
	tt, ok := got.(*towers.TwoTower)
	if !ok {
		t.Fatalf("model file holds %T", got)
	}
	if tt.Version != "tiny-v1" || tt.Meta[towers.MetaCutMS] != float64(cut.UnixMilli()) {
		t.Errorf("model file: version %q, meta %v", tt.Version, tt.Meta)
	}
	if st, err := os.Stat(filepath.Join(out, "m", "model.png")); err != nil || st.Size() == 0 {
		t.Errorf("training curve: %v", err)
	}
}

func TestParseCut(t *testing.T) {
	for _, tc := range []struct {
		in     string
		wantMS int64
		ok     bool
	}{
		{"2020-08-20T00:00:00+08:00", 1597852800000, true},
		{"2020-08-19T16:00:00Z", 1597852800000, true},
		{"1597852800", 1597852800000, true},
		{"2020-08-20", 0, false},
		{"2020-08-20T00:00:00", 0, false},
		{"soon", 0, false},
	} {
		got, err := parseCut(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got.UnixMilli() != tc.wantMS) {
			t.Errorf("parseCut(%q) = %v (%d), %v; want %d ok=%v", tc.in, got, got.UnixMilli(), err, tc.wantMS, tc.ok)
		}
	}
}

func TestTrainRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--report", "x.json"},
		{"--data", "d"},
		{"--data", "d", "--report", "r", "--cut", "tomorrow"},
		{"--data", "d", "--report", "r", "--valid-share", "0.9"},
		{"--data", "d", "--report", "r", "--recent-half-life", "-1h"},
	} {
		if err := trainMain(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("train %v: no error", args)
		}
	}
}

// publishAndCheck runs the command with a small budget, publishing to addr
// under namespace ns, and reads the version back through internal/cache.
func publishAndCheck(t *testing.T, rdb *redis.Client, addr, ns string) {
	t.Helper()
	root := genTiny(t)
	out := t.TempDir()
	cut := time.Date(2020, 8, 30, 0, 0, 0, 0, cst)
	runTrain(t, "--data", root, "--report", filepath.Join(out, "r.json"), "--model-out", filepath.Join(out, "model.srm"),
		"--redis-addr", addr, "--namespace", ns, "--model-version", "pub-v1", "--budget", "5000", "--seed-epochs", "1",
		"--cut", strconv.FormatInt(cut.Unix(), 10))
	cfg := cache.DefaultConfig()
	cfg.Namespace = ns
	st, err := cache.NewStore(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	cur, err := st.CurrentVersion(ctx)
	if err != nil || cur != "pub-v1" {
		t.Fatalf("current version %q, %v", cur, err)
	}
	meta, items, err := st.ItemEmbeddings(ctx, cur)
	if err != nil {
		t.Fatal(err)
	}
	m, err := towers.LoadModel(filepath.Join(out, "model.srm"))
	if err != nil {
		t.Fatal(err)
	}
	tt := m.(*towers.TwoTower)
	D := tt.Dim()
	if meta.Dim != D || len(items.IDs) != synth.Scales["tiny"].Videos || len(items.Vectors) != len(items.IDs)*D {
		t.Fatalf("items: dim %d, %d ids, %d floats; want dim %d, %d videos", meta.Dim, len(items.IDs), len(items.Vectors), D, synth.Scales["tiny"].Videos)
	}
	if meta.Calibration.Extra[towers.MetaCutMS] != float64(cut.UnixMilli()) || meta.Calibration.GlobalMean != tt.GlobalMean || meta.Calibration.Scale != tt.Scale() {
		t.Errorf("calibration %+v; want cut %d, mean %v, scale %v", meta.Calibration, cut.UnixMilli(), tt.GlobalMean, tt.Scale())
	}
	// The small matrix's videos are published as the candidate set small_matrix.
	ev, _, err := kuairec.LoadEval(root, kuairec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := meta.CandidateSets["small_matrix"], ev.SortedVideoIDs(); !slices.Equal(got, want) || len(got) != synth.Scales["tiny"].SmallVideos {
		t.Errorf("candidate set small_matrix: %d ids, want the %d small-matrix videos", len(got), len(want))
	}
	blob, err := st.TowerWeights(ctx, cur)
	if err != nil {
		t.Fatal(err)
	}
	tw, err := towers.DecodeTowers(blob)
	if err != nil || towers.FindTower(tw, "user") == nil || towers.FindTower(tw, "item") == nil {
		t.Fatalf("tower blob: %v, %d towers", err, len(tw))
	}
	// Rebuild the features (deterministic) to compare the published user and
	// item embeddings with the model file's.
	ds, _, err := kuairec.Load(root, kuairec.Options{DailyBefore: dailyDate(cut.UnixMilli())}) // as train did with --cut
	if err != nil {
		t.Fatal(err)
	}
	feats, err := kuairec.BuildFeatures(ds, kuairec.FeatureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	uid := uint32(7)
	rec, ok, err := st.GetUser(ctx, cur, uid)
	if err != nil || !ok {
		t.Fatalf("user %d: found %v, %v", uid, ok, err)
	}
	if len(rec.Embedding) != D || rec.InputNext != 0 || rec.ModelVersion != cur {
		t.Fatalf("user %d record: dim %d, input next %d, version %q", uid, len(rec.Embedding), rec.InputNext, rec.ModelVersion)
	}
	ue, ub := tt.UserEmbeddings(feats.Users.Reduced, []int32{rowIndex(feats.Users.IDs)[uid]})
	for j, v := range ue.Row(0) {
		if math.Abs(float64(rec.Embedding[j])-v) > 1e-5 {
			t.Fatalf("user %d embedding[%d] = %v, model %v", uid, j, rec.Embedding[j], v)
		}
	}
	if math.Abs(float64(rec.Bias)-ub[0]) > 1e-5 {
		t.Errorf("user %d bias %v, model %v", uid, rec.Bias, ub[0])
	}
	// The offline vectors (the frozen twin's) equal the serving records the
	// ingestor wrote, for every user.
	off, ok, err := st.GetOfflineUsers(ctx, cur)
	if err != nil || !ok || off.Dim != D || len(off.IDs) != len(feats.Users.IDs) {
		t.Fatalf("offline users: found %v, %v, dim %d, %d users", ok, err, off.Dim, len(off.IDs))
	}
	orow := rowIndex(off.IDs)[uid]
	if !slices.Equal(off.Vectors[int(orow)*D:(int(orow)+1)*D], rec.Embedding) || off.Biases[orow] != rec.Bias {
		t.Errorf("user %d offline vector differs from its published record", uid)
	}
	// The user features (dense mode's input): the published user tower on
	// them gives the model's dense output.
	uf, ok, err := st.GetUserFeatures(ctx, cur)
	if err != nil || !ok || uf.Dim != feats.Users.Reduced.RawMatrix().Cols || len(uf.IDs) != len(feats.Users.IDs) {
		t.Fatalf("user features: found %v, %v, dim %d, %d users", ok, err, uf.Dim, len(uf.IDs))
	}
	row := rowIndex(feats.Users.IDs)[uid]
	got := make([]float32, D)
	layers := towers.FindTower(tw, "user")
	towers.ApplyTower(got, layers, uf.Feats[int(row)*uf.Dim:(int(row)+1)*uf.Dim], make([]float32, 4096))
	want := make([]float32, D)
	tt.UserDense(want, feats.Users.Reduced, int(row))
	for j := range want {
		if math.Abs(float64(got[j]-want[j])) > 1e-4 {
			t.Fatalf("user tower on the published features [%d] = %v, model %v", j, got[j], want[j])
		}
	}
	ie := tt.ItemEmbeddings(feats.Items.Reduced, allRows32(len(feats.Items.IDs)))
	for r, id := range items.IDs {
		if id != feats.Items.IDs[r] {
			t.Fatalf("item row %d: id %d, want %d", r, id, feats.Items.IDs[r])
		}
		for j := 0; j < D; j++ {
			if math.Abs(float64(items.Vectors[r*D+j])-ie.Row(r)[j]) > 1e-5 {
				t.Fatalf("item %d embedding[%d] = %v, model %v", id, j, items.Vectors[r*D+j], ie.Row(r)[j])
			}
		}
	}
	_, found, err := st.GetUsers(ctx, cur, []uint32{0, 150, 299})
	if err != nil || !found[0] || !found[1] || !found[2] {
		t.Errorf("users 0, 150, 299: found %v, %v", found, err)
	}

	// A second version flips current and keeps the first for rollback; the
	// same version name again is refused before any user record is written.
	// train's popularity: positive counts of the training rows.
	if pop, ok, err := st.GetPopularity(ctx, cur); err != nil || !ok || pop.Label != PopularityLabel || len(pop.IDs) == 0 {
		t.Errorf("popularity of %s: found %v, %v, label %q, %d videos", cur, ok, err, pop.Label, len(pop.IDs))
	}
	tt.Version = "pub-v2"
	// Rows 0, 0, 1, 2 with watch ratios 1, 0.8, 0.79, 3: video 0 has two
	// positives, video 1 none (left out), video 2 one.
	train := []towers.Interactions{{User: []int32{0, 1, 0}, Item: []int32{0, 0, 1}, WatchRatio: []float32{1, 0.8, 0.79}},
		{User: []int32{2}, Item: []int32{2}, WatchRatio: []float32{3}}}
	if _, err := publishModel(ctx, st, tt, feats, train, nil, lineage{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	pv2, ok, err := st.GetPopularity(ctx, "pub-v2")
	wantPop := cache.Popularity{Label: PopularityLabel, IDs: []uint32{feats.Items.IDs[0], feats.Items.IDs[2]}, Counts: []uint32{2, 1}}
	if err != nil || !ok || !reflect.DeepEqual(pv2, wantPop) {
		t.Errorf("popularity of pub-v2: %+v, %v, %v; want %+v", pv2, ok, err, wantPop)
	}
	if c, p, err := st.Versions(ctx); c != "pub-v2" || p != "pub-v1" || err != nil {
		t.Errorf("versions after a second publish: %q, %q, %v", c, p, err)
	}
	if _, ok, err := st.GetUser(ctx, "pub-v2", uid); !ok || err != nil {
		t.Errorf("user %d under pub-v2: found %v, %v", uid, ok, err)
	}
	if _, err := publishModel(ctx, st, tt, feats, nil, nil, lineage{}, time.Now()); !errors.Is(err, cache.ErrVersionExists) {
		t.Errorf("publishing pub-v2 again: %v, want ErrVersionExists", err)
	}
}

func TestTrainPublishMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	publishAndCheck(t, rdb, mr.Addr(), "test-train")
}

// Integration: publish to a real Redis (opt-in: STREAMREC_TEST_REDIS) under a
// random namespace whose keys are deleted afterwards (never FLUSHALL).
func TestTrainPublishRealRedis(t *testing.T) {
	addr := os.Getenv(envRedis)
	if addr == "" {
		t.Skipf("real Redis not configured: set %s=host:port to run this integration test", envRedis)
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("%s=%s: %v", envRedis, addr, err)
	}
	ns := fmt.Sprintf("test-train-%016x", rand.Uint64())
	t.Cleanup(func() { deleteNamespace(t, rdb, ns) })
	publishAndCheck(t, rdb, addr, ns)
}

func deleteNamespace(t *testing.T, rdb *redis.Client, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, ns+":*", 1000).Result()
		if err != nil {
			t.Errorf("cleaning namespace %s: %v", ns, err)
			return
		}
		if len(keys) > 0 {
			if err := rdb.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("cleaning namespace %s: %v", ns, err)
				return
			}
		}
		if cursor = next; cursor == 0 {
			return
		}
	}
}

// Without a truth/ folder (real data) the report omits "oracle" and "truth"
// and the summary says so.
func TestTrainWithoutTruth(t *testing.T) {
	root := genTiny(t)
	if err := os.RemoveAll(filepath.Join(root, synth.TruthDir)); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	report := filepath.Join(out, "r.json")
	stdout := runTrain(t, "--data", filepath.Join(root, kuairec.DataSubdir), "--no-publish", "--report", report,
		"--model-out", filepath.Join(out, "model.srm"), "--budget", "5000", "--seed-epochs", "1", "--recent-half-life", "240h")
	if !strings.Contains(stdout, "oracle and ground-truth metrics omitted") {
		t.Errorf("summary does not say the oracle and truth are omitted:\n%s", stdout)
	}
	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Metrics map[string]json.RawMessage `json:"metrics"`
		Data    struct {
			TrainRows      float64 `json:"train_rows"`
			EffectiveRows  float64 `json:"effective_rows"`
			RecentHalfLife float64 `json:"recent_half_life_s"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	// --recent-half-life (also exercised here: the row times line up with the rows).
	if d := r.Data; !(d.EffectiveRows > 0 && d.EffectiveRows < d.TrainRows) || d.RecentHalfLife != 240*3600 {
		t.Errorf("--recent-half-life 240h: effective rows %v of %v, half-life %v s", d.EffectiveRows, d.TrainRows, d.RecentHalfLife)
	}
	if _, ok := r.Metrics["truth"]; ok {
		t.Error(`report has "truth" without a ground truth`)
	}
	for _, k := range []string{"mae", "at_0.8", "at_2.0"} {
		if _, ok := r.Metrics[k]; !ok {
			t.Errorf("report: no metrics.%s", k)
		}
		if bytes.Contains(r.Metrics[k], []byte(`"oracle"`)) {
			t.Errorf(`metrics.%s has "oracle" without a ground truth`, k)
		}
	}
}

// An unreachable Redis fails at once, before loading and training.
func TestTrainUnreachableRedisFailsFast(t *testing.T) {
	out := t.TempDir()
	start := time.Now()
	err := trainMain(t.Context(), []string{"--data", out, "--report", filepath.Join(out, "r.json"),
		"--redis-addr", "127.0.0.1:1", "--quiet"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--no-publish") {
		t.Fatalf("err = %v, want a Redis error suggesting --no-publish", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestDailyDate(t *testing.T) {
	for _, tc := range []struct {
		cut  string
		want int32
	}{{"2020-09-01T00:00:00+08:00", 20200901}, {"2020-08-31T23:00:00Z", 20200901}, {"2020-08-31T15:59:59Z", 20200831}} {
		c, err := parseCut(tc.cut)
		if err != nil {
			t.Fatal(err)
		}
		if got := dailyDate(c.UnixMilli()); got != tc.want {
			t.Errorf("dailyDate(%s) = %d, want %d", tc.cut, got, tc.want)
		}
	}
}

// --recent-half-life: the newest row weighs 1, a row one half-life older
// 1/2, ten half-lives older 1/1024; the sum is the effective row count; row
// times that do not match the rows are an error.
func TestWeightByRecency(t *testing.T) {
	const h = time.Hour
	last := int64(1_600_000_000_000)
	td := &trainData{ds: &towers.Dataset{}, lastMS: last,
		trainMS: []int64{last, last - h.Milliseconds(), last - 10*h.Milliseconds(), last - h.Milliseconds()/2}}
	for range td.trainMS {
		td.ds.Train.User = append(td.ds.Train.User, 0)
		td.ds.Train.Item = append(td.ds.Train.Item, 0)
		td.ds.Train.WatchRatio = append(td.ds.Train.WatchRatio, 1)
	}
	eff, err := td.weightByRecency(h)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1, 0.5, 1.0 / 1024, math.Sqrt(0.5)}
	sum := 0.0
	for k, w := range want {
		if got := float64(td.ds.Train.Weight[k]); math.Abs(got-w) > 1e-6 {
			t.Errorf("row %d: weight %v, want %v", k, got, w)
		}
		sum += w
	}
	if math.Abs(eff-sum) > 1e-5 {
		t.Errorf("effective rows %v, want %v", eff, sum)
	}
	td.trainMS = td.trainMS[:3]
	if _, err := td.weightByRecency(h); err == nil {
		t.Error("3 row times for 4 rows: no error")
	}
}
