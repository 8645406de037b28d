package towers

// FullSizeSampleBudget is the serving model's training budget on full-size
// KuaiRec (about 11.5M big-matrix interactions after cleaning), in rows.
// Placeholder until measured; see the package benchmarks.
const FullSizeSampleBudget = 6_000_000

// SeedMaxEpochs bounds the seed baseline's epochs over its 2M-row sample
// (early stopping with patience 5 usually ends it sooner).
const SeedMaxEpochs = 10
