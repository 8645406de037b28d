// Package kuairec is streamrec's KuaiRec 2.0 data layer: it reads every file of a
// KuaiRec 2.0 folder (the layout of the official "KuaiRec 2.0/data/"), cleans the
// interaction matrices the way the seed notebook did and reports what it dropped,
// builds the user, item and engagement features the two-tower model trains on.
//
// KuaiRec (Gao et al., "KuaiRec: A Fully-observed Dataset and Insights for
// Evaluating Recommender Systems", CIKM 2022) is licensed CC BY-SA 4.0; keep that
// attribution wherever its files, or data derived from them, are shipped.
//
// # Loading
//
//	dir, err := kuairec.ResolveDataDir(flagValue) // DIR, DIR/KuaiRec 2.0 or the data folder
//	ds, rep, err := kuairec.Load(dir, kuairec.Options{})
//	rep.WriteText(os.Stderr)
//
// Load returns the cleaned big matrix (ds.Big) with a global replay order
// (ds.Big.Order: indices sorted by timestamp, ties by user, then file order), the
// cleaned small matrix (ds.Small), users, videos, captions, daily item features
// and the social network. LoadEval returns the small matrix with every observed
// pair kept, including the rows without a timestamp, for evaluation over the fully
// observed matrix.
//
// # Errors and bad rows
//
// A malformed row never stops a load: it is skipped, counted by reason in the
// Report, and the first few are kept as *RowError values naming file, line and
// column. Only unreadable files, missing required files and wrong headers are
// errors.
//
// # Cleaning (the seed's preprocessing)
//
// Per matrix, in this order: drop rows with a missing value (any empty cell),
// drop rows with a non-positive timestamp, drop exact duplicates (rows identical in
// all 8 columns; the first in file order is kept). Re-watches (same user and video
// at another time) are kept. Counts per rule and per file are in the Report.
//
// # Features (what the trainer calls)
//
//	users, err := ds.UserFeatures() // *FeatureMatrix: Reduced is n x Kept (*mat.Dense), rows by ascending user id
//	items, err := ds.ItemFeatures() // the same for videos; users.Row(id) gives one row
//	pairs := ds.Big.Pairs()         // per (user, video): views, mean watch ratio, Engagement, Confidence
//	e := kuairec.ComputeEngagement(playMS, durMS, watchRatio) // one interaction
//
// Engagement and Confidence document the seed's engagement features (watch
// ratio capped at WatchRatioCap = 5, completion = min(play/duration, 1), replay =
// max(capped - 1, 0)) and its confidence score; BuildFeatures documents the user
// and item encodings (standardised, then PCA keeping 95% of the variance; Kept
// and Explained report the result). FeatureMatrix.Project maps the encoded row
// of a new user or video into the same PCA space. A Dataset is read-only after
// Load and safe for concurrent readers; its feature matrices are built once, on
// first use.
//
// # Memory
//
// Interactions are a struct of arrays, ~40 bytes per row with the replay order:
// the cleaned 11.6M-row big matrix takes ~460 MB. Parsing, cleaning and sorting
// a 12.5M-row (1.1 GB) big matrix peaks at ~0.9 GB RSS; GOMEMLIMIT trades GC
// time for a lower peak.
//
// # Synthetic data
//
// The synthetic generator and its ground truth are the package internal/synth,
// which imports this one (it writes the same files, in the formats of
// format.go); this package never imports the generator.
package kuairec
