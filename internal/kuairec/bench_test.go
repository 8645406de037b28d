package kuairec_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/synth"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// fullBenchDir returns a full-size synthetic folder for the benchmarks:
// $STREAMREC_BENCH_DIR, else <repo>/.cache/kuairec-full (git-ignored). When
// the folder is absent it is generated if STREAMREC_BENCH_FULL is set, else the
// benchmark is skipped.
func fullBenchDir(b *testing.B) string {
	b.Helper()
	dir := os.Getenv("STREAMREC_BENCH_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", ".cache", "kuairec-full")
	}
	if _, err := os.Stat(filepath.Join(filepath.Join(dir, kuairec.DataSubdir), kuairec.BigMatrixFile)); err == nil {
		return dir
	}
	if os.Getenv("STREAMREC_BENCH_FULL") == "" {
		b.Skipf("no full-size folder at %s: run `go run ./cmd/ingestor synth --scale full --out .cache/kuairec-full` or set STREAMREC_BENCH_FULL=1", dir)
	}
	if _, err := synth.Generate(dir, synth.GenConfig{Scale: synth.Scales["full"], Seed: 1, SideDir: sideOrEmpty()}); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkBigParseCleanSort: parse + clean + global sort of the full-size big
// matrix (~12.5M rows, ~1 GB), the ingestion path of kuairec.Load.
func BenchmarkBigParseCleanSort(b *testing.B) {
	path := filepath.Join(filepath.Join(fullBenchDir(b), kuairec.DataSubdir), kuairec.BigMatrixFile)
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	rows := 0
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		m, rep, err := kuairec.ReadMatrix(f, kuairec.BigMatrixFile, st.Size(), 0, nil)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		kuairec.Clean(m, rep, false)
		rows = rep.Rows
		runtime.KeepAlive(m)
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkBigEncodingCSV: encoding/csv reading the same file (records only, no
// conversion), the baseline the hand-written parser is compared with.
func BenchmarkBigEncodingCSV(b *testing.B) {
	path := filepath.Join(filepath.Join(fullBenchDir(b), kuairec.DataSubdir), kuairec.BigMatrixFile)
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	rows := 0
	for b.Loop() {
		rows = csvCount(b, path, false)
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkBigEncodingCSVParse: encoding/csv plus strconv on every field.
func BenchmarkBigEncodingCSVParse(b *testing.B) {
	path := filepath.Join(filepath.Join(fullBenchDir(b), kuairec.DataSubdir), kuairec.BigMatrixFile)
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	rows := 0
	for b.Loop() {
		rows = csvCount(b, path, true)
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func csvCount(b *testing.B, path string, parse bool) int {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	cr := csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	cr.ReuseRecord = true
	n := 0
	var sink float64
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		if parse && n > 0 {
			for _, i := range []int{0, 1, 2, 3, 5} {
				v, _ := strconv.ParseInt(rec[i], 10, 64)
				sink += float64(v)
			}
			for _, i := range []int{6, 7} {
				v, _ := strconv.ParseFloat(rec[i], 64)
				sink += v
			}
		}
		n++
	}
	_ = sink
	return n - 1
}

// BenchmarkParseTinyBig: the matrix parser on the tiny big matrix (always runs).
func BenchmarkParseTinyBig(b *testing.B) {
	root := tinyFolder(b)
	data, err := os.ReadFile(filepath.Join(filepath.Join(root, kuairec.DataSubdir), kuairec.BigMatrixFile))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		m, rep, err := kuairec.ReadMatrix(bytes.NewReader(data), kuairec.BigMatrixFile, int64(len(data)), 0, nil)
		if err != nil {
			b.Fatal(err)
		}
		kuairec.Clean(m, rep, false)
	}
}
