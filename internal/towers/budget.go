package towers

// Training budget on full-size data, chosen from measured throughput.
//
// Measured on the 2-core development machine with
//
//	go test -run XXX -bench TrainThroughput -benchtime 3x -benchmem ./internal/towers/
//
// (32 features per side, batch 512, full-size table shapes): the serving model
// trains about 35,000 rows/s and the seed baseline about 33,000 rows/s, with
// one or two workers alike, because gonum's matrix kernels already use both
// cores. A full pass over the ~11.5M cleaned big-matrix interactions would
// take about 330 s for the serving model alone, which with ingest (~1-2 min),
// the seed baseline and evaluation would not fit the 10-minute ingest+train
// target. So:
//
//   - the serving model trains on a budget of FullSizeSampleBudget rows
//     (about half an epoch of full-size data, ~170 s at the measured rate);
//     on smaller data the budget allows several epochs (DefaultTrainConfig
//     has Epochs 3);
//   - the seed baseline trains on its 2M-row sample for at most SeedMaxEpochs
//     epochs (~60 s each): early stopping with patience 5 is kept, but the
//     epoch cap ends it first on full-size data.
//
// Expected total: ingest ~90 s + serving ~170 s + seed ~180 s + evaluation
// ~20 s, about 460 s.
const FullSizeSampleBudget = 6_000_000

// SeedMaxEpochs bounds the seed baseline's epochs over its 2M-row sample.
const SeedMaxEpochs = 3
