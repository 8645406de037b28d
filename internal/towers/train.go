package towers

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// TrainConfig is the training loop's configuration, shared by the serving
// model and the seed baseline. DefaultTrainConfig and SeedTrainConfig give
// every field a value; a zero field is never silently replaced.
type TrainConfig struct {
	// Epochs is the maximum number of passes over the training rows.
	Epochs int
	// MaxSamples is the sample budget: training stops once this many rows
	// have been processed (across epochs). <= 0 means no budget beyond Epochs.
	MaxSamples int64
	// Batch is the number of rows per optimiser step.
	Batch int
	// LR is Adam's learning rate for the dense parameters.
	LR float64
	// VecLR and VecL2 are the LazyAdam learning rate and L2 penalty of the
	// per-user and per-item vectors (serving model only).
	VecLR, VecL2 float64
	// Seed seeds every random choice (initialisation, shuffles, negatives,
	// dropout, the training sample). A run is deterministic for a given
	// (Seed, Workers) pair.
	Seed uint64
	// Workers is the number of data-parallel workers: each step's batch is
	// split into Workers fixed parts whose gradients are summed in worker
	// order, so the result does not depend on scheduling.
	Workers int
	// Patience stops training when the validation MSE has not improved for
	// this many epochs, and restores the best epoch's parameters. <= 0
	// disables early stopping (the last epoch's parameters are kept).
	Patience int
	// TargetCap caps the watch-ratio targets of the loss (and of the global
	// mean). <= 0 means no cap.
	TargetCap float64
	// ValMax evaluates at most this many validation rows per epoch (a fixed
	// random subset). <= 0 means all.
	ValMax int
	// SampleSize trains on a fixed random sample of this many training rows
	// (the seed trains on 2M). <= 0 means all rows.
	SampleSize int
	// ProgressEvery calls the progress callback every this many steps (and
	// at the end of each epoch).
	ProgressEvery int
	// CurveEvery records a point of the training curve (History.Points) every
	// this many rows; 0 records none.
	CurveEvery int64
	// Reference reproduces the trainer as it was before issue 17, the
	// reference of BenchmarkTrainThroughput: gonum's blas64.Gemm in every
	// layer and the embedding tables updated one after the other. false (the
	// default) uses the AVX2 + FMA kernels (gemm.go) and updates the tables
	// concurrently. Both give the same model up to rounding.
	Reference bool
}

// DefaultTrainConfig is the serving model's training configuration. Its
// MaxSamples is the documented full-size budget (see budget.go).
func DefaultTrainConfig() TrainConfig {
	return TrainConfig{Epochs: 3, MaxSamples: FullSizeSampleBudget, Batch: 512, LR: 0.001,
		VecLR: 0.002, VecL2: 1e-4, Seed: 1, Workers: 2, Patience: 2, TargetCap: 5,
		ValMax: 200_000, ProgressEvery: 50, CurveEvery: 50_000}
}

// SeedTrainConfig is the seed baseline's: Adam lr 0.001, batch 512, early
// stopping with patience 5 on a 2M-row sample; MaxEpochs bounds the time
// (see budget.go).
func SeedTrainConfig() TrainConfig {
	return TrainConfig{Epochs: SeedMaxEpochs, MaxSamples: 0, Batch: 512, LR: 0.001,
		Seed: 1, Workers: 2, Patience: 5, TargetCap: 5, ValMax: 200_000,
		SampleSize: 2_000_000, ProgressEvery: 50, CurveEvery: 50_000}
}

func (c *TrainConfig) validate() error {
	switch {
	case c.Epochs <= 0:
		return fmt.Errorf("train config: epochs %d <= 0", c.Epochs)
	case c.Batch <= 0:
		return fmt.Errorf("train config: batch %d <= 0", c.Batch)
	case c.Workers <= 0 || c.Workers > c.Batch:
		return fmt.Errorf("train config: workers %d not in [1, batch]", c.Workers)
	case !(c.LR > 0):
		return fmt.Errorf("train config: lr %v <= 0", c.LR)
	case c.ProgressEvery <= 0:
		return fmt.Errorf("train config: progress-every %d <= 0", c.ProgressEvery)
	case c.CurveEvery < 0:
		return fmt.Errorf("train config: curve-every %d < 0", c.CurveEvery)
	}
	return nil
}

// Progress is passed to the progress callback during training.
type Progress struct {
	Model          string // "twotower" or "seed"
	Epoch, Epochs  int    // 1-based current epoch, maximum epochs
	Samples, Total int64  // rows processed so far, planned (budget or epochs)
	Loss           float64
	Elapsed        time.Duration
	Rate           float64 // rows per second since the start
}

// EpochStats is one row of the training history.
type EpochStats struct {
	Epoch     int
	Samples   int64 // rows trained in this epoch
	TrainLoss float64
	TrainMSE  float64
	TrainRank float64 // serving model only
	ValMSE    float64 // NaN without validation rows
	ValMAE    float64
	Duration  time.Duration
}

// History is the per-epoch record of a Fit, with the epoch whose parameters
// were kept (1-based).
type History struct {
	Epochs  []EpochStats
	Best    int
	Stopped string // why training ended: "epochs", "budget", "early-stop"
	// Points is the training curve within epochs: the training MSE over each
	// window of TrainConfig.CurveEvery rows.
	Points []CurvePoint
}

// CurvePoint is one point of the training curve.
type CurvePoint struct {
	Samples  int64   // rows trained so far (across epochs)
	TrainMSE float64 // weighted MSE over the rows since the previous point
}

// fitter adapts one model to the shared training loop.
type fitter interface {
	dense() []float64
	tables() []*vecTable
	// step computes worker w's share of a step into grad (and its sparse
	// rows); val computes losses only, in evaluation mode.
	step(w int, part []int32, mseNorm, rankNorm float64, grad []float64) lossParts
	val(w int, part []int32) lossParts
	sparse(w int) []*sparseRows
	rankPositive(k int32) bool
}

// vecTable is an embedding table trained by LazyAdam from sparse rows.
type vecTable struct {
	data    []float64
	dim     int
	opt     *LazyAdam
	grad    []float64
	mark    []bool
	touched []int32
}

func newVecTable(data []float64, dim int, lr, l2 float64) *vecTable {
	rows := len(data) / dim
	return &vecTable{data: data, dim: dim, opt: NewLazyAdam(rows, dim, lr, l2),
		grad: make([]float64, len(data)), mark: make([]bool, rows)}
}

// apply sums the workers' sparse rows (in worker order), steps LazyAdam on the
// touched rows and clears the accumulated gradient.
func (t *vecTable) apply(parts []*sparseRows) {
	t.touched = t.touched[:0]
	d := t.dim
	for _, s := range parts {
		for k, r := range s.rows {
			if !t.mark[r] {
				t.mark[r] = true
				t.touched = append(t.touched, r)
			}
			axpy(t.grad[int(r)*d:(int(r)+1)*d], 1, s.vals[k*d:(k+1)*d])
		}
	}
	t.opt.Step(t.data, t.grad, t.touched)
	for _, r := range t.touched {
		t.mark[r] = false
		clear(t.grad[int(r)*d : (int(r)+1)*d])
	}
}

// runLoop is the training loop shared by both models.
func runLoop(ctx context.Context, name string, ds *Dataset, cfg TrainConfig, f fitter, rows []int32, rng *rand.Rand, progress func(Progress)) (History, error) {
	var h History
	W := cfg.Workers
	params := f.dense()
	grads := make([][]float64, W)
	for w := range grads {
		grads[w] = make([]float64, len(params))
	}
	adam := NewAdam(len(params), cfg.LR)
	tables := f.tables()

	valRows := make([]int32, ds.Valid.Len())
	for k := range valRows {
		valRows[k] = int32(k)
	}
	rng.Shuffle(len(valRows), func(i, j int) { valRows[i], valRows[j] = valRows[j], valRows[i] })
	if cfg.ValMax > 0 && len(valRows) > cfg.ValMax {
		valRows = valRows[:cfg.ValMax]
	}

	total := int64(cfg.Epochs) * int64(len(rows))
	if cfg.MaxSamples > 0 && cfg.MaxSamples < total {
		total = cfg.MaxSamples
	}
	var (
		done     int64
		start    = time.Now()
		best     = math.Inf(1)
		bad      int
		snapshot []float64
		snapTabs [][]float64
		results  = make([]lossParts, W)
		steps    int
	)
	report := func(epoch int, loss float64) {
		if progress == nil {
			return
		}
		el := time.Since(start)
		progress(Progress{Model: name, Epoch: epoch, Epochs: cfg.Epochs, Samples: done, Total: total,
			Loss: loss, Elapsed: el, Rate: float64(done) / max(el.Seconds(), 1e-9)})
	}
	parallel := func(parts [][]int32, fn func(w int, part []int32)) {
		if W == 1 {
			fn(0, parts[0])
			return
		}
		var wg sync.WaitGroup
		for w := 1; w < W; w++ {
			wg.Go(func() { fn(w, parts[w]) })
		}
		fn(0, parts[0])
		wg.Wait()
	}
	split := func(b []int32) [][]int32 {
		parts := make([][]int32, W)
		for w := range parts {
			parts[w] = b[w*len(b)/W : (w+1)*len(b)/W]
		}
		return parts
	}
	h.Stopped = "epochs"
	var winMSE, winW float64 // the training curve's current window
	var lastPoint int64
	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		t0 := time.Now()
		rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		var sum lossParts
		var wsum, run float64
		var epochSamples int64
		budgetHit := false
		for lo := 0; lo < len(rows); lo += cfg.Batch {
			if err := ctx.Err(); err != nil {
				return h, err
			}
			hi := min(lo+cfg.Batch, len(rows))
			if cfg.MaxSamples > 0 && done+int64(hi-lo) > cfg.MaxSamples {
				hi = lo + int(cfg.MaxSamples-done)
				budgetHit = true
				if hi <= lo {
					break
				}
			}
			b := rows[lo:hi]
			mseNorm, rankNorm := 0.0, 0.0
			for _, k := range b {
				wt := ds.Train.weight(k)
				mseNorm += wt
				if f.rankPositive(k) {
					rankNorm += wt
				}
			}
			if mseNorm == 0 {
				continue
			}
			parallel(split(b), func(w int, part []int32) {
				clear(grads[w])
				results[w] = f.step(w, part, mseNorm, rankNorm, grads[w])
			})
			for w := 1; w < W; w++ {
				axpy(grads[0], 1, grads[w])
			}
			adam.Step(params, grads[0])
			applyTable := func(ti int) {
				parts := make([]*sparseRows, W)
				for w := range parts {
					parts[w] = f.sparse(w)[ti]
				}
				tables[ti].apply(parts)
			}
			if cfg.Reference || len(tables) < 2 {
				for ti := range tables {
					applyTable(ti)
				}
			} else {
				// The tables are independent (own rows, moments and
				// gradients): one goroutine each.
				var wg sync.WaitGroup
				for ti := 1; ti < len(tables); ti++ {
					wg.Go(func() { applyTable(ti) })
				}
				applyTable(0)
				wg.Wait()
			}
			var bl lossParts
			for _, r := range results {
				bl.mse += r.mse
				bl.rank += r.rank
				bl.n += r.n
			}
			sum.mse += bl.mse
			sum.rank += bl.rank
			wsum += mseNorm
			loss := bl.mse / mseNorm
			run = 0.98*run + 0.02*loss
			if steps == 0 {
				run = loss
			}
			done += int64(len(b))
			epochSamples += int64(len(b))
			steps++
			winMSE += bl.mse
			winW += mseNorm
			if cfg.CurveEvery > 0 && done-lastPoint >= cfg.CurveEvery {
				h.Points = append(h.Points, CurvePoint{Samples: done, TrainMSE: winMSE / winW})
				winMSE, winW, lastPoint = 0, 0, done
			}
			if steps%cfg.ProgressEvery == 0 {
				report(epoch, run)
			}
			if budgetHit {
				break
			}
		}
		st := EpochStats{Epoch: epoch, Samples: epochSamples, ValMSE: math.NaN(), ValMAE: math.NaN()}
		if wsum > 0 {
			st.TrainMSE = sum.mse / wsum
			st.TrainRank = sum.rank / wsum
			st.TrainLoss = st.TrainMSE + st.TrainRank
		}
		if len(valRows) > 0 {
			var vs lossParts
			vw := 0.0
			for lo := 0; lo < len(valRows); lo += cfg.Batch {
				hi := min(lo+cfg.Batch, len(valRows))
				parallel(split(valRows[lo:hi]), func(w int, part []int32) { results[w] = f.val(w, part) })
				for _, r := range results {
					vs.mse += r.mse
					vs.absErr += r.absErr
				}
				for _, k := range valRows[lo:hi] {
					vw += ds.Valid.weight(k)
				}
			}
			st.ValMSE, st.ValMAE = vs.mse/vw, vs.absErr/vw
		}
		st.Duration = time.Since(t0)
		h.Epochs = append(h.Epochs, st)
		report(epoch, run)

		score := st.ValMSE
		if math.IsNaN(score) {
			score = st.TrainMSE
		}
		if score < best {
			best, bad, h.Best = score, 0, epoch
			if cfg.Patience > 0 {
				snapshot = append(snapshot[:0], params...)
				snapTabs = snapTabs[:0]
				for _, t := range tables {
					snapTabs = append(snapTabs, append([]float64(nil), t.data...))
				}
			}
		} else {
			bad++
		}
		if budgetHit || (cfg.MaxSamples > 0 && done >= cfg.MaxSamples) {
			h.Stopped = "budget"
			break
		}
		if cfg.Patience > 0 && bad >= cfg.Patience {
			h.Stopped = "early-stop"
			break
		}
	}
	if cfg.Patience > 0 && snapshot != nil && h.Best != len(h.Epochs) {
		copy(params, snapshot)
		for i, t := range tables {
			copy(t.data, snapTabs[i])
		}
	} else {
		h.Best = len(h.Epochs)
	}
	return h, nil
}
