package synth

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/streamrec/streamrec/internal/kuairec"
)

// measured is what a generated folder shows of the statistics it is calibrated
// to: the label's unevenness and the watch-ratio marginals of both matrices.
type measured struct {
	Label      kuairec.LabelStats
	Big, Small kuairec.MatrixStats
}

// measureFolder loads a generated folder the way `ingestor stats` does: the
// cleaned big matrix (positives per video, marginals) and the small matrix with
// every observed pair.
func measureFolder(t testing.TB, root string) measured {
	t.Helper()
	dir, err := kuairec.ResolveDataDir(root)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, kuairec.BigMatrixFile))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	big, rep, err := kuairec.ReadMatrix(f, kuairec.BigMatrixFile, st.Size(), 0, nil)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Bad() != 0 {
		t.Fatalf("big matrix: %d bad rows: %v", rep.Bad(), rep.Errors)
	}
	kuairec.Clean(big, rep, false)
	var m measured
	m.Big = kuairec.ComputeStats(big)
	pos := kuairec.CountPositives(big, kuairec.PositiveThreshold)
	big = nil
	ev, _, err := kuairec.LoadEval(root, kuairec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.Small = kuairec.ComputeStats(ev)
	m.Label = kuairec.ComputeLabelStats(ev, pos, kuairec.PositiveThreshold)
	return m
}

// labelBands checks s against the real KuaiRec's label statistics: each
// p50/p90/p99 of the per-video and per-user shares within +-rel (relative),
// each Gini within +-abs, and the Spearman correlation within +-spearAbs
// (not checked when spearAbs < 0).
func labelBands(t *testing.T, s kuairec.LabelStats, rel, abs, spearAbs float64) {
	t.Helper()
	real := kuairec.RealLabelStats
	for i, l := range kuairec.LabelQLevels {
		if l != 0.50 && l != 0.90 && l != 0.99 {
			continue
		}
		for _, c := range []struct {
			name      string
			got, want []float64
		}{{"per-video share", s.VideoShareQ, real.VideoShareQ}, {"per-user share", s.UserShareQ, real.UserShareQ}} {
			got, want := c.got[i], c.want[i]
			if !(math.Abs(got-want) <= rel*want) {
				t.Errorf("%s p%g = %.4f, real %.4f: outside +-%.0f%%", c.name, l*100, got, want, 100*rel)
			}
		}
	}
	for _, c := range []struct {
		name      string
		got, want float64
		abs       float64
	}{{"Gini of per-video shares", s.VideoGini, real.VideoGini, abs}, {"Gini of per-user shares", s.UserGini, real.UserGini, abs}, {"Spearman", s.Spearman, real.Spearman, spearAbs}} {
		if c.abs >= 0 && !(math.Abs(c.got-c.want) <= c.abs) {
			t.Errorf("%s = %.3f, real %.3f: outside +-%.2f", c.name, c.got, c.want, c.abs)
		}
	}
}

// marginalBands checks the STATS.md watch-ratio marginals of the full-size
// folder (the tiny test has looser ones).
func marginalBands(t *testing.T, m measured) {
	t.Helper()
	in := func(name string, x, lo, hi float64) {
		t.Helper()
		if !(x >= lo && x <= hi) {
			t.Errorf("%s = %.4f, want in [%v, %v]", name, x, lo, hi)
		}
	}
	// STATS.md: big median 0.7235 (0.7255 dedup), >=0.8 45.35%, >=1 33.82%,
	// >5 ~0.92%, p99 4.79 (dedup); small median 0.769, >=0.8 47.44%, >=1
	// 32.40%, >5 ~0.49%; >=2 ~4.95% on the real small-matrix sample.
	// The bands are about +-0.045 around the real values: the body moves by
	// about 0.02 between seeds.
	in("big median watch_ratio", m.Big.WatchQ[2], 0.68, 0.77)
	in("big share >= 0.8", m.Big.Share08, 0.42, 0.49)
	in("big share >= 1", m.Big.Share1, 0.30, 0.37)
	in("big share >= 2", m.Big.Share2, 0.035, 0.07)
	in("big share > 5", m.Big.Share5, 0.004, 0.014)
	in("small median watch_ratio", m.Small.WatchQ[2], 0.72, 0.82)
	in("small share >= 0.8", m.Small.Share08, 0.44, 0.51)
	in("small share >= 1", m.Small.Share1, 0.29, 0.36)
	in("small share >= 2", m.Small.Share2, 0.035, 0.06)
	in("small share > 5", m.Small.Share5, 0.002, 0.01)
	in("small base rate (> 2)", m.Label.MeanShare, 0.040, 0.052)
}

// TestFullScaleCalibration generates the full-size folder (seed 1, real side
// files; STREAMREC_TEST_FULL_SEED picks another seed) and holds it to the real KuaiRec's label statistics: p50/p90/p99 of
// the per-video and per-user positive shares within +-15%, Ginis and the
// Spearman correlation within +-0.05, and the STATS.md marginals. It writes
// ~1.2 GB and takes ~40 s without -race, so it runs only when
// STREAMREC_TEST_FULL is set (the test command sets it for one step without
// -race).
func TestFullScaleCalibration(t *testing.T) {
	if os.Getenv("STREAMREC_TEST_FULL") == "" {
		t.Skip("set STREAMREC_TEST_FULL=1 to generate and check the full-size folder (~40 s, 1.2 GB in the temp dir)")
	}
	side := sideOrEmpty()
	if side == "" {
		t.Skip("the real side files (../shared/kuairec) are needed for the full-size calibration")
	}
	seed := uint64(1)
	if s := os.Getenv("STREAMREC_TEST_FULL_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("STREAMREC_TEST_FULL_SEED=%q: %v", s, err)
		}
	}
	root := t.TempDir()
	// The folder takes ~1.2 GB; on a machine without the room, say so rather
	// than fail half-way through writing it.
	var fs syscall.Statfs_t
	if err := syscall.Statfs(root, &fs); err == nil {
		if free := fs.Bavail * uint64(fs.Bsize); free < 3<<30 {
			t.Skipf("only %d MB free in %s: the full-size folder needs ~1.2 GB (3 GB asked for)", free>>20, root)
		}
	}
	if _, err := Generate(root, GenConfig{Scale: Scales["full"], Seed: seed, SideDir: side}); err != nil {
		t.Fatal(err)
	}
	m := measureFolder(t, root)
	m.Label.WriteText(testWriter{t}, fmt.Sprintf("full, seed %d", seed), kuairec.RealLabelStats)
	m.Big.WriteText(testWriter{t}, "big matrix (cleaned)")
	m.Small.WriteText(testWriter{t}, "small matrix (all pairs)")
	labelBands(t, m.Label, 0.15, 0.05, 0.05)
	marginalBands(t, m)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestTinyLabelBands holds the tiny folder (100 small users x 200 small videos,
// ~19.5k big rows) to a looser band, documented here: each p50/p90/p99 within
// +-50% of the real value, each Gini within +-0.10, and the Spearman
// correlation within [0.3, 0.9] (a tiny video has only a handful of big-matrix
// positives). Seeds 1 to 7 gave Spearman 0.37-0.60, Ginis 0.50-0.58 and quantiles up to 40% off.
func TestTinyLabelBands(t *testing.T) {
	m := measureFolder(t, tinyFolder(t))
	m.Label.WriteText(testWriter{t}, "tiny, seed 7", kuairec.RealLabelStats)
	labelBands(t, m.Label, 0.50, 0.10, -1)
	if !(m.Label.Spearman >= 0.3 && m.Label.Spearman <= 0.9) {
		t.Errorf("tiny Spearman %.3f, want in [0.3, 0.9]", m.Label.Spearman)
	}
}
