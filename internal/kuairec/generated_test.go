package kuairec_test

// Tests of the loaders on a generated folder. They live in the external test
// package because the generator (internal/synth) imports the loaders: the
// loaders never import the generator.

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/synth"
)

var (
	tinyOnce sync.Once
	tinyRoot string
	tinyErr  error
)

// tinyFolder generates the tiny synthetic folder once per test binary (seed 7,
// real side files when present).
func tinyFolder(t testing.TB) string {
	t.Helper()
	tinyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kuairec-tiny-")
		if err != nil {
			tinyErr = err
			return
		}
		tinyRoot = dir
		_, tinyErr = synth.Generate(dir, synth.GenConfig{Scale: synth.Scales["tiny"], Seed: 7, SideDir: sideOrEmpty()})
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

func TestMain(m *testing.M) {
	code := m.Run()
	if tinyRoot != "" {
		os.RemoveAll(tinyRoot)
	}
	os.Exit(code)
}

func TestResolveDataDir(t *testing.T) {
	root := tinyFolder(t)
	want := filepath.Join(root, kuairec.DataSubdir)
	for _, p := range []string{root, root + "/KuaiRec 2.0", want} {
		got, err := kuairec.ResolveDataDir(p)
		if err != nil || got != want {
			t.Errorf("ResolveDataDir(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
	if _, err := kuairec.ResolveDataDir(t.TempDir()); err == nil {
		t.Error("empty folder resolved")
	}
}

// Small read chunks (lines split across chunks, many chunks in flight) give the
// same result as one chunk.
func TestReadMatrixSmallChunks(t *testing.T) {
	root := tinyFolder(t)
	data, err := os.ReadFile(filepath.Join(root, kuairec.DataSubdir, kuairec.BigMatrixFile))
	if err != nil {
		t.Fatal(err)
	}
	// Inject a bad line to check line numbers across chunks.
	lines := strings.SplitAfter(string(data), "\n")
	lines = slices.Insert(lines, 1000, "garbage\n")
	data = []byte(strings.Join(lines, ""))
	read := func(workers int) (*kuairec.Interactions, *kuairec.FileReport) {
		m, rep, err := kuairec.ReadMatrix(bytes.NewReader(data), kuairec.BigMatrixFile, int64(len(data)), workers, nil)
		if err != nil {
			t.Fatal(err)
		}
		return m, rep
	}
	want, wantRep := read(1)
	defer kuairec.SetChunkSizeForTest(97)()
	got, gotRep := read(3)
	if !slices.Equal(got.User, want.User) || !slices.Equal(got.TimeMS, want.TimeMS) || !slices.Equal(got.WatchRatio, want.WatchRatio) {
		t.Error("small chunks changed the parse")
	}
	if gotRep.Bad() != 1 || wantRep.Bad() != 1 || gotRep.Errors[0].Line != 1001 || wantRep.Errors[0].Line != 1001 {
		t.Errorf("bad line: %v / %v", gotRep.Errors, wantRep.Errors)
	}
}
