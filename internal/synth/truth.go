package synth

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"
)

// TruthFormatVersion is the version of the truth folder this build writes and
// reads (2: replay propensities, the conditional median).
const TruthFormatVersion = 2

// LatentDim is the dimension of the synthetic user and video factors.
const LatentDim = 16

// DriftKind names a kind of drift the generator can inject.
type DriftKind string

// Drift kinds.
const (
	// DriftPrefs: a share of users switch to a new preference vector at the
	// drift time (UserTruth.After).
	DriftPrefs DriftKind = "prefs"
	// DriftNewVideos: Count videos are released at the drift time: never
	// shown before it, heavily promoted after it.
	DriftNewVideos DriftKind = "new-videos"
	// DriftPopularity: a share of videos get a new popularity (exposure) and
	// a new quality bias at the drift time.
	DriftPopularity DriftKind = "popularity"
)

// Drift is one injected change. At is Unix milliseconds.
type Drift struct {
	Kind  DriftKind `json:"kind"`
	AtMS  int64     `json:"at_ms"`
	At    string    `json:"at"` // RFC 3339 in UTC+8, for humans
	Share float64   `json:"share,omitempty"`
	Count int       `json:"count,omitempty"`
}

// WatchParams are the parameters of the synthetic watch-ratio model (see
// Truth.ExpectedWatchRatio for the formula).
type WatchParams struct {
	// Watch probability: sigmoid(A0 + A1*s - A2*d).
	A0, A1, A2 float64
	// Watch branch: lognormal, log-median MuW + BW*s - GW*d + r, log-sd SigmaW,
	// where r = r_u + r_v(t) is the pair's replay propensity.
	MuW, BW, GW, SigmaW float64
	// Skip branch: play time lognormal with median SkipMedianMS, log-sd
	// SigmaS; watch ratio min(play/duration, 1).
	SkipMedianMS, SigmaS float64
	// Loop branch (replays, the outliers up to ~570): probability
	// sigmoid(logit(PLoop) + LoopR*r), watch ratio lognormal with log-median
	// MuL and log-sd SigmaL.
	PLoop, LoopR, MuL, SigmaL float64
}

// DefaultWatchParams are calibrated so that the generated matrices match the
// watch_ratio quantiles of STATS.md and, with DefaultEffects, the label's
// unevenness across videos and users (kuairec.RealLabelStats).
var DefaultWatchParams = WatchParams{
	A0: 0.85, A1: 1.5, A2: 0.5,
	MuW: -0.12, BW: 0.1, GW: 0.28, SigmaW: 0.32,
	SkipMedianMS: 2500, SigmaS: 0.8,
	PLoop: 0.006, LoopR: 2, MuL: 2.3, SigmaL: 1.0,
}

// Effects are the distributions of the per-user and per-video replay
// propensities r_u and r_v (log-scale shifts of the watch branch, and of the
// loop probability): the heavy tails that make a few videos replayed by most
// users, many by almost none, and users who like almost everything or almost
// nothing. Each is SD*Z plus, with probability TailP, an exponential of mean
// TailMean (Z standard normal); a user's is then softly capped,
// UserCap*tanh(x/UserCap) when UserCap > 0 (a user who likes almost everything
// still skips some videos: the real per-user shares have a short top tail).
type Effects struct {
	VideoSD, VideoTailP, VideoTailMean float64
	UserSD, UserTailP, UserTailMean    float64
	UserCap                            float64
	// ExpoReplay: big-matrix exposure weight is multiplied by exp(ExpoReplay *
	// r_v), so that the videos people replay are the ones shown most.
	ExpoReplay float64
}

// DefaultEffects: see Effects and DefaultWatchParams.
var DefaultEffects = Effects{
	VideoSD: 0.19, VideoTailP: 0.015, VideoTailMean: 0.35,
	UserSD: 0.28, UserCap: 0.7,
	ExpoReplay: 0.5,
}

func (e Effects) drawVideo(r *rand.Rand) float64 {
	x := e.VideoSD * r.NormFloat64()
	if r.Float64() < e.VideoTailP {
		x += e.VideoTailMean * r.ExpFloat64()
	}
	return x
}

func (e Effects) drawUser(r *rand.Rand) float64 {
	x := e.UserSD * r.NormFloat64()
	if r.Float64() < e.UserTailP {
		x += e.UserTailMean * r.ExpFloat64()
	}
	if e.UserCap > 0 {
		x = e.UserCap * math.Tanh(x/e.UserCap)
	}
	return x
}

// UserTruth is one user's latent state.
type UserTruth struct {
	ID   uint32
	Bias float64
	// Replay is r_u, the user's replay propensity (see WatchParams).
	Replay  float64
	Factor  [LatentDim]float64
	Drifted bool
	// After is the factor after the prefs drift (== Factor when not drifted).
	After [LatentDim]float64
}

// VideoTruth is one video's latent state.
type VideoTruth struct {
	ID         uint32
	DurationMS int32
	// Quality is the video bias before, QualityAfter after the popularity drift.
	Quality, QualityAfter float64
	// Popularity is the exposure weight before, PopularityAfter after the
	// popularity drift (unnormalised).
	Popularity, PopularityAfter float64
	// Replay is r_v, the video's replay propensity before, ReplayAfter after
	// the popularity drift (see WatchParams).
	Replay, ReplayAfter float64
	// ReleaseMS: the video is not exposed before this time (0: always).
	ReleaseMS int64
	Factor    [LatentDim]float64
}

// Manifest is DIR/truth/manifest.json.
type Manifest struct {
	FormatVersion int         `json:"format_version"`
	Generator     string      `json:"generator"`
	Scale         string      `json:"scale"`
	Seed          uint64      `json:"seed"`
	LatentDim     int         `json:"latent_dim"`
	StartMS       int64       `json:"start_ms"`
	EndMS         int64       `json:"end_ms"`
	Users         int         `json:"users"`
	Videos        int         `json:"videos"`
	SmallUsers    []uint32    `json:"small_users"`
	SmallVideos   []uint32    `json:"small_videos"`
	Watch         WatchParams `json:"watch"`
	Effects       Effects     `json:"effects"`
	Drifts        []Drift     `json:"drifts"`
	// PopDriftMS / PrefsDriftMS are the times the popularity and prefs drifts
	// take effect (0: none).
	PrefsDriftMS int64    `json:"prefs_drift_ms"`
	PopDriftMS   int64    `json:"popularity_drift_ms"`
	Files        []string `json:"files"`
	Affinity     string   `json:"affinity"`
	Attribution  string   `json:"attribution"`
}

// Truth is the ground truth of a synthetic folder.
type Truth struct {
	Manifest Manifest
	Users    []UserTruth // indexed by user id
	Videos   []VideoTruth
}

// Score is the latent affinity s(u, v, t) = <p_u(t), q_v> + b_u + b_v(t), where
// p_u(t) is the user's factor (After once a prefs drift has happened for a
// drifted user) and b_v(t) the video's quality (QualityAfter after a popularity
// drift).
func (tr *Truth) Score(user, video uint32, tMS int64) float64 {
	u, v := &tr.Users[user], &tr.Videos[video]
	p := &u.Factor
	if u.Drifted && tr.Manifest.PrefsDriftMS != 0 && tMS >= tr.Manifest.PrefsDriftMS {
		p = &u.After
	}
	q := v.Quality
	if tr.Manifest.PopDriftMS != 0 && tMS >= tr.Manifest.PopDriftMS {
		q = v.QualityAfter
	}
	s := u.Bias + q
	for k := range LatentDim {
		s += p[k] * v.Factor[k]
	}
	return s
}

// Affinity is Score; the name the design uses.
func (tr *Truth) Affinity(user, video uint32, tMS int64) float64 { return tr.Score(user, video, tMS) }

// Replay is the pair's replay propensity r = r_u + r_v(t), where r_v(t) is the
// video's ReplayAfter after a popularity drift.
func (tr *Truth) Replay(user, video uint32, tMS int64) float64 {
	v := &tr.Videos[video]
	rv := v.Replay
	if tr.Manifest.PopDriftMS != 0 && tMS >= tr.Manifest.PopDriftMS {
		rv = v.ReplayAfter
	}
	return tr.Users[user].Replay + rv
}

// ExpectedWatchRatio is the true expected watch ratio of user watching video at
// time tMS (Unix ms), under the generator's model, with s = Score(user, video,
// t), r = Replay(user, video, t) and d = ln(duration / 9600 ms):
//
//	pw   = sigmoid(A0 + A1 s - A2 d)
//	pl   = sigmoid(logit(PLoop) + LoopR r)
//	Ew   = exp(MuW + BW s - GW d + r + SigmaW²/2)                (watch branch)
//	Es   = E[min(X/duration, 1)], X ~ LogNormal(ln SkipMedianMS, SigmaS)   (skip)
//	El   = exp(MuL + SigmaL²/2)                                 (loop branch)
//	E    = (1-pl) (pw Ew + (1-pw) Es) + pl El
//
// Sampled watch ratios are then play_ms / duration_ms with play_ms rounded to
// the millisecond, which adds a rounding error below 1e-3.
func (tr *Truth) ExpectedWatchRatio(user, video uint32, tMS int64) float64 {
	return tr.Manifest.Watch.expected(tr.Score(user, video, tMS), tr.Replay(user, video, tMS), tr.Videos[video].DurationMS)
}

// MedianWatchRatio is the conditional median of the watch ratio of user
// watching video at time tMS: the x where the mixture's CDF (see
// ExpectedWatchRatio) reaches 1/2, the prediction that minimises the expected
// absolute error, so the MAE oracle. Found by bisection on log x to a relative
// 1e-9; the millisecond rounding of play_duration is ignored.
func (tr *Truth) MedianWatchRatio(user, video uint32, tMS int64) float64 {
	return tr.Manifest.Watch.median(tr.Score(user, video, tMS), tr.Replay(user, video, tMS), tr.Videos[video].DurationMS)
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func logit(p float64) float64 { return math.Log(p / (1 - p)) }

func durTerm(durMS int32) float64 { return math.Log(float64(max(durMS, 1)) / 9600) }

func normCDF(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }

// branches returns the loop and watch probabilities and the watch branch's
// log-median.
func (p *WatchParams) branches(s, r float64, durMS int32) (pl, pw, mw float64) {
	d := durTerm(durMS)
	pl = sigmoid(logit(p.PLoop) + p.LoopR*r)
	pw = sigmoid(p.A0 + p.A1*s - p.A2*d)
	mw = p.MuW + p.BW*s - p.GW*d + r
	return pl, pw, mw
}

func (p *WatchParams) expected(s, r float64, durMS int32) float64 {
	pl, pw, mw := p.branches(s, r, durMS)
	ew := math.Exp(mw + p.SigmaW*p.SigmaW/2)
	// skip: X/dur lognormal(mu, sig) capped at 1.
	mu := math.Log(p.SkipMedianMS / float64(max(durMS, 1)))
	sg := p.SigmaS
	es := math.Exp(mu+sg*sg/2)*normCDF((0-mu-sg*sg)/sg) + (1 - normCDF((0-mu)/sg))
	el := math.Exp(p.MuL + p.SigmaL*p.SigmaL/2)
	return (1-pl)*(pw*ew+(1-pw)*es) + pl*el
}

// cdf is P(watch ratio <= x) under the mixture.
func (p *WatchParams) cdf(x, s, r float64, durMS int32) float64 {
	if x <= 0 {
		return 0
	}
	pl, pw, mw := p.branches(s, r, durMS)
	lx := math.Log(x)
	watch := normCDF((lx - mw) / p.SigmaW)
	skip := 1.0 // the skip branch is capped at 1
	if x < 1 {
		skip = normCDF((lx - math.Log(p.SkipMedianMS/float64(max(durMS, 1)))) / p.SigmaS)
	}
	loop := normCDF((lx - p.MuL) / p.SigmaL)
	return (1-pl)*(pw*watch+(1-pw)*skip) + pl*loop
}

func (p *WatchParams) median(s, r float64, durMS int32) float64 {
	lo, hi := math.Log(1e-9), math.Log(1e6)
	for hi-lo > 1e-9 {
		mid := (lo + hi) / 2
		if p.cdf(math.Exp(mid), s, r, durMS) < 0.5 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return math.Exp((lo + hi) / 2)
}

// TopK returns the k videos among candidates with the highest true expected
// watch ratio for user at time tMS, best first (ties by video id).
func (tr *Truth) TopK(user uint32, candidates []uint32, k int, tMS int64) []uint32 {
	type sv struct {
		v uint32
		e float64
	}
	all := make([]sv, len(candidates))
	for i, v := range candidates {
		all[i] = sv{v, tr.ExpectedWatchRatio(user, v, tMS)}
	}
	slices.SortFunc(all, func(a, b sv) int {
		if a.e != b.e {
			if a.e > b.e {
				return -1
			}
			return 1
		}
		return int(a.v) - int(b.v)
	})
	k = min(k, len(all))
	out := make([]uint32, k)
	for i := range k {
		out[i] = all[i].v
	}
	return out
}

// SmallTopK returns each small-matrix user's true top-k among the small
// matrix's videos at time tMS (use Manifest.EndMS for the end of the log).
// It runs over all cores.
func (tr *Truth) SmallTopK(k int, tMS int64) map[uint32][]uint32 {
	users := tr.Manifest.SmallUsers
	lists := make([][]uint32, len(users))
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(users); i += workers {
				lists[i] = tr.TopK(users[i], tr.Manifest.SmallVideos, k, tMS)
			}
		}()
	}
	wg.Wait()
	out := make(map[uint32][]uint32, len(users))
	for i, u := range users {
		out[u] = lists[i]
	}
	return out
}

// TruthDir is the ground-truth folder under a generated root: ROOT/truth.
const TruthDir = "truth"

// LoadTruth reads ROOT/truth (root is the folder given to Generate; a path to the
// truth folder itself is accepted too).
func LoadTruth(root string) (*Truth, error) {
	dir := filepath.Join(root, TruthDir)
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err != nil {
		dir = root
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("reading truth manifest: %w", err)
	}
	tr := &Truth{}
	if err := json.Unmarshal(b, &tr.Manifest); err != nil {
		return nil, fmt.Errorf("decoding truth manifest: %w", err)
	}
	if tr.Manifest.FormatVersion != TruthFormatVersion {
		return nil, fmt.Errorf("truth manifest: format_version %d, this build reads %d (regenerate the folder with ingestor synth)", tr.Manifest.FormatVersion, TruthFormatVersion)
	}
	if tr.Manifest.LatentDim != LatentDim {
		return nil, fmt.Errorf("truth manifest: latent_dim %d, this build reads %d", tr.Manifest.LatentDim, LatentDim)
	}
	tr.Users = make([]UserTruth, tr.Manifest.Users)
	err = readTruthCSV(filepath.Join(dir, "user_factors.csv"), 4+2*LatentDim, func(rec []float64) error {
		id := int(rec[0])
		if id < 0 || id >= len(tr.Users) {
			return fmt.Errorf("user id %d out of range", id)
		}
		u := &tr.Users[id]
		u.ID, u.Bias, u.Drifted, u.Replay = uint32(id), rec[1], rec[2] != 0, rec[3]
		copy(u.Factor[:], rec[4:4+LatentDim])
		copy(u.After[:], rec[4+LatentDim:])
		return nil
	})
	if err != nil {
		return nil, err
	}
	tr.Videos = make([]VideoTruth, tr.Manifest.Videos)
	err = readTruthCSV(filepath.Join(dir, "video_factors.csv"), 9+LatentDim, func(rec []float64) error {
		id := int(rec[0])
		if id < 0 || id >= len(tr.Videos) {
			return fmt.Errorf("video id %d out of range", id)
		}
		v := &tr.Videos[id]
		v.ID, v.DurationMS = uint32(id), int32(rec[1])
		v.Quality, v.QualityAfter, v.Popularity, v.PopularityAfter = rec[2], rec[3], rec[4], rec[5]
		v.ReleaseMS = int64(rec[6])
		v.Replay, v.ReplayAfter = rec[7], rec[8]
		copy(v.Factor[:], rec[9:])
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tr, nil
}

func readTruthCSV(path string, cols int, fn func([]float64) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading truth: %w", err)
	}
	defer f.Close()
	cr := csv.NewReader(bufio.NewReader(f))
	cr.FieldsPerRecord = cols
	cr.ReuseRecord = true
	if _, err := cr.Read(); err != nil {
		return fmt.Errorf("%s: header: %w", path, err)
	}
	vals := make([]float64, cols)
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for i, s := range rec {
			if vals[i], err = strconv.ParseFloat(s, 64); err != nil {
				line, col := cr.FieldPos(i)
				return fmt.Errorf("%s:%d:%d: %w", path, line, col, err)
			}
		}
		if err := fn(vals); err != nil {
			line, _ := cr.FieldPos(0)
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
	}
}

// writeTruth writes ROOT/truth: manifest.json, user_factors.csv,
// video_factors.csv, small_top25.csv and README.md.
func writeTruth(root string, tr *Truth) error {
	dir := filepath.Join(root, TruthDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fmtF := func(b []byte, f float64) []byte { return strconv.AppendFloat(b, f, 'g', -1, 64) }
	// users
	var b []byte
	b = append(b, "user_id,bias,drifted,replay"...)
	for k := range LatentDim {
		b = fmt.Appendf(b, ",f%d", k)
	}
	for k := range LatentDim {
		b = fmt.Appendf(b, ",after%d", k)
	}
	b = append(b, '\n')
	for _, u := range tr.Users {
		b = strconv.AppendUint(b, uint64(u.ID), 10)
		b = append(b, ',')
		b = fmtF(b, u.Bias)
		if u.Drifted {
			b = append(b, ",1"...)
		} else {
			b = append(b, ",0"...)
		}
		b = fmtF(append(b, ','), u.Replay)
		for _, f := range u.Factor {
			b = fmtF(append(b, ','), f)
		}
		for _, f := range u.After {
			b = fmtF(append(b, ','), f)
		}
		b = append(b, '\n')
	}
	if err := os.WriteFile(filepath.Join(dir, "user_factors.csv"), b, 0o644); err != nil {
		return err
	}
	b = b[:0]
	b = append(b, "video_id,duration_ms,quality,quality_after,popularity,popularity_after,release_ms,replay,replay_after"...)
	for k := range LatentDim {
		b = fmt.Appendf(b, ",f%d", k)
	}
	b = append(b, '\n')
	for _, v := range tr.Videos {
		b = strconv.AppendUint(b, uint64(v.ID), 10)
		b = strconv.AppendInt(append(b, ','), int64(v.DurationMS), 10)
		for _, f := range []float64{v.Quality, v.QualityAfter, v.Popularity, v.PopularityAfter} {
			b = fmtF(append(b, ','), f)
		}
		b = strconv.AppendInt(append(b, ','), v.ReleaseMS, 10)
		b = fmtF(append(b, ','), v.Replay)
		b = fmtF(append(b, ','), v.ReplayAfter)
		for _, f := range v.Factor {
			b = fmtF(append(b, ','), f)
		}
		b = append(b, '\n')
	}
	if err := os.WriteFile(filepath.Join(dir, "video_factors.csv"), b, 0o644); err != nil {
		return err
	}
	b = b[:0]
	b = append(b, "user_id,rank,video_id,expected_watch_ratio\n"...)
	top := tr.SmallTopK(25, tr.Manifest.EndMS)
	for _, u := range tr.Manifest.SmallUsers {
		for r, v := range top[u] {
			b = fmt.Appendf(b, "%d,%d,%d,", u, r+1, v)
			b = fmtF(b, tr.ExpectedWatchRatio(u, v, tr.Manifest.EndMS))
			b = append(b, '\n')
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "small_top25.csv"), b, 0o644); err != nil {
		return err
	}
	mj, err := json.MarshalIndent(tr.Manifest, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), append(mj, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "README.md"), []byte(truthReadme), 0o644)
}

func fmtLocal(ms int64) string {
	return time.UnixMilli(ms).In(cst).Format(time.RFC3339)
}

var cst = time.FixedZone("UTC+8", 8*3600)

const truthReadme = `# Ground truth of a synthetic KuaiRec 2.0 folder

Written by streamrec's generator (internal/synth.Generate, ` + "`ingestor synth`" + `) next to
"KuaiRec 2.0/data/". Read it in Go with kuairec.LoadTruth(ROOT); the formulas below are
implemented by Truth.Score and Truth.ExpectedWatchRatio. Floats are written with the
shortest representation that round-trips (strconv 'g', -1), so a reader recomputes them exactly.

Files:

- manifest.json: format_version (2), seed, scale, latent_dim (16), the time span (start_ms,
  end_ms, Unix ms), users/videos counts, small_users and small_videos (the small matrix's
  ids), watch (the watch-ratio model parameters below), effects (the distributions r_u and
  r_v were drawn from, and ExpoReplay), drifts (kind, at_ms, share, count),
  prefs_drift_ms and popularity_drift_ms (0 = none).
- user_factors.csv: user_id, bias b_u, drifted (0/1), replay r_u, f0..f15 (p_u before a
  prefs drift), after0..after15 (p_u after it; equal to f when not drifted).
- video_factors.csv: video_id, duration_ms, quality b_v (before a popularity drift),
  quality_after, popularity and popularity_after (exposure weights), release_ms (0, or the
  time of a new-videos drift: the video is never shown before), replay r_v and replay_after
  (before and after a popularity drift), f0..f15 (q_v).
- small_top25.csv: user_id, rank, video_id, expected_watch_ratio: each small-matrix user's
  true top-25 among the small matrix's videos, ranked by expected watch ratio at end_ms.

Model, for user u, video v at time t (Unix ms):

    p_u(t) = after  if drifted and prefs_drift_ms != 0 and t >= prefs_drift_ms, else f
    b_v(t) = quality_after if popularity_drift_ms != 0 and t >= popularity_drift_ms, else quality
    r_v(t) = replay_after if popularity_drift_ms != 0 and t >= popularity_drift_ms, else replay
    s      = <p_u(t), q_v> + b_u + b_v(t)                       (affinity)
    r      = r_u + r_v(t)                                       (replay propensity)
    d      = ln(duration_ms / 9600)
    pl     = sigmoid(logit(PLoop) + LoopR r)                    (loop)
    pw     = sigmoid(A0 + A1 s - A2 d)                          (watch, else skip)
    loop:   with probability pl, wr ~ LogNormal(MuL, SigmaL); otherwise
    watch:  with probability pw, wr ~ LogNormal(MuW + BW s - GW d + r, SigmaW)
    skip:   else wr = min(X / duration_ms, 1), X ~ LogNormal(ln SkipMedianMS, SigmaS)
    E[wr]  = (1-pl) (pw exp(MuW + BW s - GW d + r + SigmaW^2/2) + (1-pw) E[skip]) + pl exp(MuL + SigmaL^2/2)
    median = the x where the mixture's CDF is 1/2 (Truth.MedianWatchRatio, found by
             bisection): the prediction with the least expected absolute error, so the
             MAE oracle; E[wr] is the squared-error oracle.

r_u and r_v are heavy-tailed (effects in the manifest): a few videos are replayed by
most users and many by almost none, some users replay almost everything and others
almost nothing, as in the real KuaiRec (kuairec.RealLabelStats, printed by
ingestor stats).

The written row has play_duration = round(wr * duration_ms) and watch_ratio =
play_duration / video_duration. Untimed small-matrix rows (empty time) were drawn at end_ms.

Exposure (which videos a user sees in the big matrix): weight
popularity(t)^0.8 * exp(0.15 b_v(t) + ExpoReplay r_v(t)) * exp(0.15 <p_u(t), q_v>),
zero before release_ms, zero for small videos when u is a small-matrix user (so that the
big and small matrices' pairs are disjoint), x4 for new-videos-drift videos after release.

Users, videos and their side features come from the real KuaiRec 2.0 side files when
the generator was given them. KuaiRec (Gao et al., CIKM 2022) is licensed CC BY-SA 4.0.
`
