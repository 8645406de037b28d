package towers

// Training budget on full-size data, chosen from measured throughput.
//
// Measured on the 2-core development machine with
//
//	go test -run '^$' -bench TrainThroughput -benchtime 3x -benchmem ./internal/towers/
//
// (32 features per side, batch 512, full-size table shapes): the serving model
// trained about 36,000 rows/s and the seed baseline about 33,000 rows/s on a
// quiet machine, and about 21,000 and 20,000-27,000 rows/s while other builds
// shared the two cores. One or two workers made no difference, because
// gonum's matrix kernels already use both cores. A full pass over the ~11.5M
// cleaned big-matrix interactions would take 320-550 s for the serving model
// alone, which with ingest, the seed baseline and evaluation would not fit
// the 10-minute ingest+train target. So:
//
//   - the serving model trains on a budget of FullSizeSampleBudget rows
//     (about 0.43 epoch of full-size data: 140 s quiet, 240 s loaded); on
//     smaller data the budget allows several epochs (DefaultTrainConfig has
//     Epochs 3);
//   - the seed baseline trains on its 2M-row sample for at most SeedMaxEpochs
//     epochs (60-100 s each): early stopping with patience 5 is kept, but the
//     epoch cap ends it first on full-size data.
//
// Expected total: ingest ~90 s (not measured here) + serving 140-240 s + seed
// 120-200 s + evaluation ~20 s, about 370-550 s.
//
// Those rates were measured with the sampled-softmax ranking loss on; the
// tuned defaults train without it and faster (see tuning.go). All of the
// above is the trainer before issue 17 (TrainConfig.Reference); the fast
// path (gemm.go) trained the serving model at 60,000 rows/s and the seed at
// 57,000 rows/s in a full-size run at load average 2-3.5 (README, "The
// serving model's training"), so the budget is kept and the whole command
// takes about 4 minutes.
const FullSizeSampleBudget = 5_000_000

// SeedMaxEpochs bounds the seed baseline's epochs over its 2M-row sample.
const SeedMaxEpochs = 2
