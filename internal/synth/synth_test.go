package synth

import (
	"bytes"
	"github.com/streamrec/streamrec/internal/kuairec"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestGenerateDeterministic(t *testing.T) {
	side := sideOrEmpty()
	a, b := t.TempDir(), t.TempDir()
	ca, cb := tinyConfig(side), tinyConfig(side)
	ca.Workers, cb.Workers = 1, 4 // the output must not depend on the worker count
	if _, err := Generate(a, ca); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(b, cb); err != nil {
		t.Fatal(err)
	}
	files := []string{kuairec.BigMatrixFile, kuairec.SmallMatrixFile, kuairec.UserFeaturesFile, kuairec.ItemCategoryFile, kuairec.ItemDailyFile, kuairec.SocialNetworkFile, kuairec.CaptionFile}
	for _, f := range files {
		fa, err := os.ReadFile(filepath.Join(filepath.Join(a, kuairec.DataSubdir), f))
		if err != nil {
			t.Fatal(err)
		}
		fb, _ := os.ReadFile(filepath.Join(filepath.Join(b, kuairec.DataSubdir), f))
		if !bytes.Equal(fa, fb) {
			t.Errorf("%s differs between two runs with the same seed", f)
		}
	}
	for _, f := range []string{"manifest.json", "user_factors.csv", "video_factors.csv", "small_top25.csv"} {
		fa, _ := os.ReadFile(filepath.Join(a, TruthDir, f))
		fb, _ := os.ReadFile(filepath.Join(b, TruthDir, f))
		if len(fa) == 0 || !bytes.Equal(fa, fb) {
			t.Errorf("truth %s differs or is empty", f)
		}
	}
	// Another seed gives another big matrix.
	cc := tinyConfig(side)
	cc.Seed = 8
	c := t.TempDir()
	if _, err := Generate(c, cc); err != nil {
		t.Fatal(err)
	}
	fa, _ := os.ReadFile(filepath.Join(filepath.Join(a, kuairec.DataSubdir), kuairec.BigMatrixFile))
	fc, _ := os.ReadFile(filepath.Join(filepath.Join(c, kuairec.DataSubdir), kuairec.BigMatrixFile))
	if bytes.Equal(fa, fc) {
		t.Error("seeds 7 and 8 gave the same big matrix")
	}
}

func TestGenerateSynthesisedSideFiles(t *testing.T) {
	root := t.TempDir()
	if _, err := Generate(root, GenConfig{Scale: Scales["tiny"], Seed: 3}); err != nil {
		t.Fatal(err)
	}
	ds, rep, err := kuairec.Load(root, kuairec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Files {
		if f.Missing || f.Bad() != 0 {
			t.Errorf("%s: missing %v, bad %v", f.File, f.Missing, f.Errors)
		}
	}
	if len(ds.Users) != 300 || len(ds.Videos) != 400 || ds.Daily == nil || len(ds.Social) == 0 {
		t.Errorf("users %d videos %d daily %d social %d", len(ds.Users), len(ds.Videos), len(ds.Daily), len(ds.Social))
	}
	if _, err := kuairec.BuildFeatures(ds, kuairec.FeatureOptions{}); err != nil {
		t.Fatal(err)
	}
}

// The tiny folder passes the real loaders and lands in the STATS.md bands where
// the sample is big enough to mean something.
func TestTinyLoadsAndMatchesStats(t *testing.T) {
	root := tinyFolder(t)
	ds, rep, err := kuairec.Load(root, kuairec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Files {
		if f.Missing || f.Bad() != 0 {
			t.Errorf("%s: missing %v, bad %v", f.File, f.Missing, f.Errors)
		}
	}
	big := rep.File(kuairec.BigMatrixFile)
	if share := float64(big.DroppedDuplicates) / float64(big.Rows); share < 0.05 || share > 0.11 {
		t.Errorf("exact duplicates %.3f of big rows, want ~0.077", share)
	}
	if len(ds.Users) != 300 || len(ds.Videos) != 400 {
		t.Errorf("users %d videos %d", len(ds.Users), len(ds.Videos))
	}
	bs := kuairec.ComputeStats(ds.Big)
	t.Logf("big: rows %d median %.3f >=0.8 %.3f >=1 %.3f >=2 %.3f dur p50 %.0f", bs.Rows, bs.WatchQ[2], bs.Share08, bs.Share1, bs.Share2, bs.DurQ[2])
	in := func(name string, x, lo, hi float64) {
		if x < lo || x > hi {
			t.Errorf("%s = %.4f, want in [%v, %v]", name, x, lo, hi)
		}
	}
	in("big median watch_ratio", bs.WatchQ[2], 0.64, 0.82)
	in("big share >= 0.8", bs.Share08, 0.40, 0.51)
	in("big share >= 1", bs.Share1, 0.27, 0.39)
	in("big share >= 2", bs.Share2, 0.03, 0.08)
	in("big duration median", bs.DurQ[2], 8000, 11500)
	in("big pair density", bs.PairDensity, 0.09, 0.2)
	if bs.First.Before(SpanStartTime()) || bs.Last.After(SpanEndTime()) {
		t.Errorf("time span %v .. %v", bs.First, bs.Last)
	}
	ev, evRep, err := kuairec.LoadEval(root, kuairec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ss := kuairec.ComputeStats(ev)
	in("small density", ss.Density, 0.99, 1)
	in("small untimed share", float64(ss.Untimed)/float64(ss.Rows), 0.025, 0.055)
	in("small median watch_ratio", ss.WatchQ[2], 0.68, 0.86)
	in("small share >= 2", ss.Share2, 0.025, 0.085)
	if ss.Users != 100 || ss.Videos != 200 || evRep.DroppedDuplicates != 0 {
		t.Errorf("small %d x %d, dups %d", ss.Users, ss.Videos, evRep.DroppedDuplicates)
	}
	// Big and small pairs are disjoint.
	pairs := map[uint64]bool{}
	for i := range ev.Len() {
		pairs[uint64(ev.User[i])<<32|uint64(ev.Video[i])] = true
	}
	for i := range ds.Big.Len() {
		if pairs[uint64(ds.Big.User[i])<<32|uint64(ds.Big.Video[i])] {
			t.Fatalf("pair (%d, %d) in both matrices", ds.Big.User[i], ds.Big.Video[i])
		}
	}
	// Replay order is sorted.
	o := ds.Big.Order
	if len(o) != ds.Big.Len() {
		t.Fatalf("order has %d of %d rows", len(o), ds.Big.Len())
	}
	for k := 1; k < len(o); k++ {
		a, b := o[k-1], o[k]
		ta, tb := ds.Big.TimeMS[a], ds.Big.TimeMS[b]
		if ta > tb || (ta == tb && (ds.Big.User[a] > ds.Big.User[b] || (ds.Big.User[a] == ds.Big.User[b] && a > b))) {
			t.Fatalf("order broken at %d", k)
		}
	}
}

func TestTruth(t *testing.T) {
	root := tinyFolder(t)
	tr, err := LoadTruth(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Users) != 300 || len(tr.Videos) != 400 || len(tr.Manifest.SmallUsers) != 100 || len(tr.Manifest.SmallVideos) != 200 {
		t.Fatalf("truth sizes %d %d %d %d", len(tr.Users), len(tr.Videos), len(tr.Manifest.SmallUsers), len(tr.Manifest.SmallVideos))
	}
	// ExpectedWatchRatio is the mean, and MedianWatchRatio the median, of the
	// generator's sampler (Monte Carlo), for pairs of low, middling and high
	// replay propensity.
	g := &genModel{wp: tr.Manifest.Watch}
	r := rand.New(rand.NewPCG(1, 2))
	pairs := []struct{ u, v uint32 }{{0, 0}, {5, 17}, {42, 300}}
	lo, hi := pairs[0], pairs[0]
	for u := range uint32(len(tr.Users)) {
		for v := range uint32(len(tr.Videos)) {
			rp := tr.Replay(u, v, SpanStartMS)
			if rp < tr.Replay(lo.u, lo.v, SpanStartMS) {
				lo = struct{ u, v uint32 }{u, v}
			}
			if rp > tr.Replay(hi.u, hi.v, SpanStartMS) {
				hi = struct{ u, v uint32 }{u, v}
			}
		}
	}
	pairs = append(pairs, lo, hi)
	samples := make([]float64, 400000)
	for _, c := range pairs {
		s, rp := tr.Score(c.u, c.v, SpanStartMS), tr.Replay(c.u, c.v, SpanStartMS)
		dur := tr.Videos[c.v].DurationMS
		sum := 0.0
		for i := range samples {
			samples[i] = float64(g.samplePlay(r, s, rp, dur)) / float64(dur)
			sum += samples[i]
		}
		want := tr.ExpectedWatchRatio(c.u, c.v, SpanStartMS)
		if got := sum / float64(len(samples)); math.Abs(got-want) > 0.03*want+0.01 {
			t.Errorf("user %d video %d (replay %.2f): Monte Carlo mean %.4f, ExpectedWatchRatio %.4f", c.u, c.v, rp, got, want)
		}
		slices.Sort(samples)
		med := tr.MedianWatchRatio(c.u, c.v, SpanStartMS)
		// The sample median's quantile under the true CDF is 1/2 within a few
		// standard errors (sd of a quantile estimate: sqrt(1/4/n) = 0.0008).
		q := tr.Manifest.Watch.cdf(samples[len(samples)/2], s, rp, dur)
		if math.Abs(q-0.5) > 0.004 || math.Abs(samples[len(samples)/2]-med) > 0.01*med+0.002 {
			t.Errorf("user %d video %d: sample median %.4f (CDF %.4f), MedianWatchRatio %.4f", c.u, c.v, samples[len(samples)/2], q, med)
		}
	}
	top := tr.SmallTopK(25, tr.Manifest.EndMS)
	if len(top) != 100 {
		t.Fatalf("top-k users %d", len(top))
	}
	for u, vs := range top {
		if len(vs) != 25 {
			t.Fatalf("user %d top-k %d", u, len(vs))
		}
		for k := 1; k < len(vs); k++ {
			if tr.ExpectedWatchRatio(u, vs[k-1], tr.Manifest.EndMS) < tr.ExpectedWatchRatio(u, vs[k], tr.Manifest.EndMS) {
				t.Fatalf("user %d top-k not sorted", u)
			}
		}
	}
	// The realised small matrix agrees with the truth: true top-25 videos are
	// watched more than the average small video.
	ev, _, err := kuairec.LoadEval(root, kuairec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	topSet := map[uint64]bool{}
	for u, vs := range top {
		for _, v := range vs {
			topSet[uint64(u)<<32|uint64(v)] = true
		}
	}
	var inTop, all float64
	var nTop float64
	for i := range ev.Len() {
		w := min(ev.WatchRatio[i], kuairec.WatchRatioCap)
		all += w
		if topSet[uint64(ev.User[i])<<32|uint64(ev.Video[i])] {
			inTop += w
			nTop++
		}
	}
	if inTop/nTop < 1.3*all/float64(ev.Len()) {
		t.Errorf("mean watch ratio in true top-25 %.3f vs all %.3f", inTop/nTop, all/float64(ev.Len()))
	}
}

func TestDrift(t *testing.T) {
	root := tinyFolder(t)
	tr, err := LoadTruth(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Manifest.Drifts) != 2 || tr.Manifest.PrefsDriftMS != driftPrefsMS {
		t.Fatalf("drifts %+v", tr.Manifest.Drifts)
	}
	drifted, changed := 0, 0
	for u := range tr.Users {
		if !tr.Users[u].Drifted {
			if tr.Score(uint32(u), 3, driftPrefsMS-1) != tr.Score(uint32(u), 3, driftPrefsMS) {
				t.Fatalf("undrifted user %d changed", u)
			}
			continue
		}
		drifted++
		if tr.Score(uint32(u), 3, driftPrefsMS-1) != tr.Score(uint32(u), 3, driftPrefsMS) {
			changed++
		}
	}
	if drifted < 60 || drifted > 120 || changed != drifted {
		t.Errorf("drifted users %d (want ~90 of 300), changed %d", drifted, changed)
	}
	released := map[uint32]int64{}
	for _, v := range tr.Videos {
		if v.ReleaseMS != 0 {
			released[v.ID] = v.ReleaseMS
		}
	}
	if len(released) != 20 {
		t.Fatalf("new videos %d, want 20", len(released))
	}
	ds, _, err := kuairec.Load(root, kuairec.Options{SkipSmall: true})
	if err != nil {
		t.Fatal(err)
	}
	after := 0
	for i := range ds.Big.Len() {
		if at, ok := released[ds.Big.Video[i]]; ok {
			if ds.Big.TimeMS[i] < at {
				t.Fatalf("new video %d watched at %d before its release %d", ds.Big.Video[i], ds.Big.TimeMS[i], at)
			}
			after++
		}
	}
	if after == 0 {
		t.Error("new videos never watched after release")
	}
}

func TestFeaturesTinyDeterministic(t *testing.T) {
	root := tinyFolder(t)
	load := func() *kuairec.Features {
		ds, _, err := kuairec.Load(root, kuairec.Options{})
		if err != nil {
			t.Fatal(err)
		}
		f, err := kuairec.BuildFeatures(ds, kuairec.FeatureOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	a, b := load(), load()
	for _, p := range [][2]*kuairec.FeatureMatrix{{a.Users, b.Users}, {a.Items, b.Items}} {
		x, y := p[0], p[1]
		if !slices.Equal(x.Reduced.RawMatrix().Data, y.Reduced.RawMatrix().Data) {
			t.Error("features differ between two builds")
		}
		if x.Explained < 0.95 {
			t.Errorf("explained %v", x.Explained)
		}
		// Project of an encoded row equals its Reduced row.
		enc, ok := x.EncodedRow(x.IDs[3])
		if !ok {
			t.Fatal("no encoded row")
		}
		got, want := x.Project(enc), x.Row(x.IDs[3])
		for k := range got {
			if math.Abs(got[k]-want[k]) > 1e-9 {
				t.Fatalf("Project %v != Row %v", got[:3], want[:3])
			}
		}
	}
	if r, _ := a.Items.Reduced.Dims(); r != 400 {
		t.Errorf("item rows %d", r)
	}
	hasDaily := false
	for _, n := range a.Items.Names {
		hasDaily = hasDaily || n == "mean_play_progress"
	}
	if !hasDaily {
		t.Errorf("item features lack the daily aggregates: %v", a.Items.Names)
	}
}

// Truth.Exposure is the weight the generator draws a user's big-matrix
// videos with, before and after each drift.
func TestExposureIsTheGeneratorsWeight(t *testing.T) {
	cfg := tinyConfig("")
	cfg.Drifts = append(cfg.Drifts, Drift{Kind: DriftPopularity, AtMS: driftPrefsMS + 86400000, Share: 0.5})
	side, err := prepareSide(cfg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	g := newGenModel(cfg, side, DefaultWatchParams)
	tr := g.truth
	for _, tMS := range []int64{SpanStartMS, driftPrefsMS, driftNewMS, driftPrefsMS + 86400000} {
		for u := range uint32(20) {
			ut := &tr.Users[u]
			p := &ut.Factor
			if ut.Drifted && tMS >= tr.Manifest.PrefsDriftMS {
				p = &ut.After
			}
			for v := range uint32(len(tr.Videos)) {
				vt := &tr.Videos[v]
				want := 0.0
				if vt.ReleaseMS == 0 || tMS >= vt.ReleaseMS {
					dot := 0.0
					for k := range LatentDim {
						dot += p[k] * vt.Factor[k]
					}
					x := g.popW[v]
					if tMS >= tr.Manifest.PopDriftMS {
						x = g.popWAfter[v]
					}
					want = x * math.Exp(expoAffinity*dot)
				}
				if got := tr.Exposure(u, v, tMS); math.Abs(got-want) > 1e-12*max(1, want) {
					t.Fatalf("user %d video %d at %d: Exposure %v, generator %v", u, v, tMS, got, want)
				}
			}
		}
	}
}
