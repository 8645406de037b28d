package benchkit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/streamrec/streamrec/internal/cache"
)

// PublishSyntheticModel publishes, as version "bench", a model of items
// videos x dim (N(0, 0.1) entries, zero biases, global mean 0.9) and an
// offline record for each of users users (N(0, 0.1) entries, the last one
// 1: the item-bias coordinate), from a fixed seed: every harness and run
// sees the same model.
func PublishSyntheticModel(ctx context.Context, store *cache.Store, users, items, dim int) error {
	r := rand.New(rand.NewPCG(1, 1))
	it := cache.Items{}
	for id := uint32(0); id < uint32(items); id++ {
		it.IDs = append(it.IDs, id)
		it.Biases = append(it.Biases, 0)
		for j := 0; j < dim; j++ {
			it.Vectors = append(it.Vectors, float32(r.NormFloat64()*0.1))
		}
	}
	if _, err := store.Publish(ctx, cache.Model{Version: "bench", Dim: dim, CreatedAtMs: time.Now().UnixMilli(),
		Calibration: cache.Calibration{GlobalMean: 0.9, Scale: 1}, Items: it, TowerWeights: []byte("bench")}); err != nil {
		return err
	}
	recs := make([]cache.UserRecord, 0, 1000)
	for uid := uint32(0); uid < uint32(users); uid++ {
		e := make([]float32, dim)
		for j := range e {
			e[j] = float32(r.NormFloat64() * 0.1)
		}
		e[dim-1] = 1
		recs = append(recs, cache.UserRecord{UserID: uid, Embedding: e, UpdatedAtMs: 1})
		if len(recs) == cap(recs) || uid == uint32(users)-1 {
			if err := store.PutUsers(ctx, "bench", recs); err != nil {
				return err
			}
			recs = recs[:0]
		}
	}
	return nil
}

// VmHWM returns the peak resident set size of process pid ("29412 kB"), or
// "?" when /proc cannot tell.
func VmHWM(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// LoadAvg returns the 1, 5 and 15 minute load averages ("2.10 1.85 1.20"),
// or "?".
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
