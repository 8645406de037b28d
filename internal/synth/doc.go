// Package synth generates a synthetic KuaiRec 2.0 folder, with the same files,
// headers, value formats and quirks as the real one (read back by the loaders
// of internal/kuairec), drawn from a latent model whose ground truth it writes
// beside the data.
//
// Generate writes ROOT/"KuaiRec 2.0"/data/*.csv and ROOT/truth; LoadTruth reads
// the truth back, so that tests and the closed-loop simulator can ask for the
// true expected watch ratio of any (user, video) at any time
// (Truth.ExpectedWatchRatio), its conditional median (Truth.MedianWatchRatio,
// the MAE oracle) and each small-matrix user's true top-25 (Truth.SmallTopK,
// Truth.TopK). Scales names the sizes: "tiny" (unit tests, 300 users x 400
// videos, well under a second) and "full" (7,176 x 10,728, ~12.5M big-matrix
// rows). The same GenConfig gives the same bytes, whatever the number of
// workers.
//
// KuaiRec (Gao et al., CIKM 2022) is licensed CC BY-SA 4.0: when the real side
// files are given, the users and videos are KuaiRec's, and the attribution is
// written into the truth.
package synth
