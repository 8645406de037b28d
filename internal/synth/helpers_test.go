package synth

import (
	"github.com/streamrec/streamrec/internal/kuairec"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// realSideDir is the folder with the real KuaiRec side files, or "" (tests skip).
func realSideDir(t testing.TB) string {
	t.Helper()
	for _, d := range []string{"../../../shared/kuairec", "/work/shared/kuairec"} {
		if _, err := os.Stat(filepath.Join(d, kuairec.ItemCategoryFile)); err == nil {
			return d
		}
	}
	t.Skip("real KuaiRec side files not found (../shared/kuairec)")
	return ""
}

var (
	tinyOnce sync.Once
	tinyRoot string
	tinyErr  error
)

// tinyFolder generates the tiny synthetic folder once per test binary (seed 7,
// real side files when present, two drifts).
func tinyFolder(t testing.TB) string {
	t.Helper()
	tinyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kuairec-tiny-")
		if err != nil {
			tinyErr = err
			return
		}
		tinyRoot = dir
		_, tinyErr = Generate(dir, tinyConfig(sideOrEmpty()))
	})
	if tinyErr != nil {
		t.Fatal(tinyErr)
	}
	return tinyRoot
}

func sideOrEmpty() string {
	for _, d := range []string{"../../../shared/kuairec", "/work/shared/kuairec"} {
		if _, err := os.Stat(filepath.Join(d, kuairec.ItemCategoryFile)); err == nil {
			return d
		}
	}
	return ""
}

var (
	driftPrefsMS = SpanStartMS + 40*86400000
	driftNewMS   = SpanStartMS + 30*86400000
)

func tinyConfig(side string) GenConfig {
	return GenConfig{Scale: Scales["tiny"], Seed: 7, SideDir: side, Drifts: []Drift{
		{Kind: DriftPrefs, AtMS: driftPrefsMS, Share: 0.3},
		{Kind: DriftNewVideos, AtMS: driftNewMS, Count: 20},
	}}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tinyRoot != "" {
		os.RemoveAll(tinyRoot)
	}
	os.Exit(code)
}
