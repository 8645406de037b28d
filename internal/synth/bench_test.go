package synth

import (
	"os"
	"testing"
)

// BenchmarkGenerateFull: full-size synthetic generation (all seven files and
// the truth) into a temporary folder. Needs STREAMREC_BENCH_FULL (writes ~1.5 GB).
func BenchmarkGenerateFull(b *testing.B) {
	if os.Getenv("STREAMREC_BENCH_FULL") == "" {
		b.Skip("set STREAMREC_BENCH_FULL=1 to generate a full-size folder (~1.5 GB) per iteration")
	}
	side := sideOrEmpty()
	for b.Loop() {
		dir := b.TempDir()
		res, err := Generate(dir, GenConfig{Scale: Scales["full"], Seed: 1, SideDir: side})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(res.BigRows+res.SmallRows), "rows")
		os.RemoveAll(dir)
	}
}

// BenchmarkGenerateTiny: the tiny folder the unit tests use.
func BenchmarkGenerateTiny(b *testing.B) {
	side := sideOrEmpty()
	for b.Loop() {
		if _, err := Generate(b.TempDir(), GenConfig{Scale: Scales["tiny"], Seed: 1, SideDir: side}); err != nil {
			b.Fatal(err)
		}
	}
}
