package synth

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"github.com/streamrec/streamrec/internal/kuairec"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/streamrec/streamrec/internal/progress"
)

// Scale is a named size of synthetic folder.
type Scale struct {
	Name                    string
	Users, Videos           int
	SmallUsers, SmallVideos int
	// BigRows is the target number of big-matrix rows, exact duplicates included.
	BigRows int
	// SocialUsers is the number of users with friends.
	SocialUsers int
}

// Scales: "tiny" for unit tests, "full" the size of KuaiRec 2.0.
var Scales = map[string]Scale{
	"tiny": {Name: "tiny", Users: 300, Videos: 400, SmallUsers: 100, SmallVideos: 200, BigRows: 19500, SocialUsers: 20},
	"full": {Name: "full", Users: 7176, Videos: 10728, SmallUsers: 1411, SmallVideos: 3327, BigRows: 12530806, SocialUsers: 472},
}

// Time span of KuaiRec: 2020-07-05 00:00 to 2020-09-06 00:00, UTC+8.
var (
	SpanStartMS = time.Date(2020, 7, 5, 0, 0, 0, 0, cst).UnixMilli()
	SpanEndMS   = time.Date(2020, 9, 6, 0, 0, 0, 0, cst).UnixMilli()
)

const spanDays = 63

// SpanStartTime and SpanEndTime are SpanStartMS and SpanEndMS as times in UTC+8.
func SpanStartTime() time.Time { return time.UnixMilli(SpanStartMS).In(cst) }

// SpanEndTime: see SpanStartTime.
func SpanEndTime() time.Time { return time.UnixMilli(SpanEndMS).In(cst) }

// GenConfig configures Generate.
type GenConfig struct {
	Scale Scale
	Seed  uint64
	// SideDir is a folder with the real user_features.csv, item_categories.csv
	// and kuairec_caption_category.csv (resolved like --data); "" synthesises
	// side files.
	SideDir string
	Drifts  []Drift
	// Workers generating users in parallel; <= 0 means GOMAXPROCS. The output
	// does not depend on it.
	Workers int
	// Progress, if not nil, receives a progress bar (rows).
	Progress io.Writer
	// Watch overrides DefaultWatchParams when not nil.
	Watch *WatchParams
	// Effects overrides DefaultEffects when not nil.
	Effects *Effects
}

// GenResult summarises a generated folder.
type GenResult struct {
	DataDir   string
	BigRows   int
	SmallRows int
	DailyRows int
	Elapsed   time.Duration
}

// Generator knobs (documented in truth/README.md).
const (
	expoPopPow    = 0.8
	expoAffinity  = 0.15
	newVideoBoost = 4.0
	rewatchAccept = 0.3
	dupSingleP    = 0.0767 // one exact copy of an event
	dupBurstP     = 0.0002 // a burst of copies (KuaiRec has up to 2,224 for one pair)
	dupBurstMean  = 35
	smallMissingP = 0.0038 // small-matrix cells not observed (17,827 / 4.69M)
	smallUntimedP = 0.039  // small rows with empty time/date/timestamp
	// smallQualitySel biases the small matrix's videos to good ones (KuaiRec's
	// fully observed videos are among the most shown).
	smallQualitySel = 3.0
)

// Generate writes a complete synthetic KuaiRec 2.0 folder under root:
// root/KuaiRec 2.0/data/*.csv (all seven files, same headers, formats and
// quirks as the real ones) and root/truth (the ground truth, see LoadTruth).
// The same config (seed, scale, side files, drifts) gives the same bytes.
func Generate(root string, cfg GenConfig) (*GenResult, error) {
	t0 := time.Now()
	sc := cfg.Scale
	if sc.Users <= 0 || sc.Videos <= 0 || sc.SmallUsers > sc.Users || sc.SmallVideos > sc.Videos {
		return nil, fmt.Errorf("bad scale %+v", sc)
	}
	wp := DefaultWatchParams
	if cfg.Watch != nil {
		wp = *cfg.Watch
	}
	dataDir := filepath.Join(root, kuairec.DataSubdir)
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	side, err := prepareSide(cfg, dataDir)
	if err != nil {
		return nil, err
	}
	g := newGenModel(cfg, side, wp)

	res := &GenResult{DataDir: dataDir}
	var wg sync.WaitGroup
	var dailyErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		res.DailyRows, dailyErr = g.writeDaily(filepath.Join(dataDir, kuairec.ItemDailyFile))
		if dailyErr == nil {
			dailyErr = g.writeSocial(filepath.Join(dataDir, kuairec.SocialNetworkFile))
		}
	}()
	res.BigRows, res.SmallRows, err = g.writeMatrices(dataDir, cfg)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if dailyErr != nil {
		return nil, dailyErr
	}
	if err := writeTruth(root, g.truth); err != nil {
		return nil, fmt.Errorf("writing truth: %w", err)
	}
	res.Elapsed = time.Since(t0)
	return res, nil
}

// genModel is the latent ground truth plus everything the per-user generation
// needs.
type genModel struct {
	sc      Scale
	seed    uint64
	wp      WatchParams
	truth   *Truth
	side    *sideInfo
	isSmall []bool // per user
	smallV  []bool // per video
	smallVs []uint32
	nRows   []int // per user: original (non-duplicate) events
	// popW[v] = Popularity^expoPopPow * exp(expoAffinity*Quality) (x newVideoBoost
	// for new videos), popWAfter the same after a popularity drift.
	popW, popWAfter []float64
	regimes         []int64
	dayW            [spanDays]float64
}

func newGenModel(cfg GenConfig, side *sideInfo, wp WatchParams) *genModel {
	sc := cfg.Scale
	r := rand.New(rand.NewPCG(cfg.Seed, 0x6b756169726563))
	g := &genModel{sc: sc, seed: cfg.Seed, wp: wp, side: side}
	tr := &Truth{}
	g.truth = tr
	m := &tr.Manifest
	m.FormatVersion, m.Generator, m.Scale, m.Seed, m.LatentDim = TruthFormatVersion, "streamrec internal/synth.Generate", sc.Name, cfg.Seed, LatentDim
	m.StartMS, m.EndMS, m.Users, m.Videos, m.Watch = SpanStartMS, SpanEndMS, sc.Users, sc.Videos, wp
	m.Effects = DefaultEffects
	if cfg.Effects != nil {
		m.Effects = *cfg.Effects
	}
	// The replay propensities come from a stream of their own, so that the
	// draws above and below them do not depend on the effects' parameters.
	re := rand.New(rand.NewPCG(cfg.Seed, 0x7265706c6179))
	m.Affinity = "s = <p_u(t), q_v> + b_u + b_v(t); see README.md"
	m.Attribution = "users and videos from KuaiRec 2.0 (Gao et al., CIKM 2022), CC BY-SA 4.0, when real side files were given"
	m.Files = []string{kuairec.BigMatrixFile, kuairec.SmallMatrixFile, kuairec.UserFeaturesFile, kuairec.ItemCategoryFile, kuairec.ItemDailyFile, kuairec.SocialNetworkFile, kuairec.CaptionFile}

	// Tag and category embeddings.
	var tagE [kuairec.NumTags][LatentDim]float64
	for t := range tagE {
		for k := range LatentDim {
			tagE[t][k] = r.NormFloat64() * 0.5
		}
	}
	catE := map[int32]*[LatentDim]float64{}
	cats := make([]int32, 0)
	for _, c := range side.cat {
		if _, ok := catE[c]; !ok {
			cats = append(cats, c)
			catE[c] = nil
		}
	}
	slices.Sort(cats)
	for _, c := range cats {
		var e [LatentDim]float64
		for k := range LatentDim {
			e[k] = r.NormFloat64() * 0.35
		}
		catE[c] = &e
	}
	tr.Videos = make([]VideoTruth, sc.Videos)
	tagFreq := make([]float64, kuairec.NumTags)
	for v := range sc.Videos {
		vt := &tr.Videos[v]
		vt.ID = uint32(v)
		tags := side.tags[v]
		for _, t := range tags {
			tagFreq[t]++
			for k := range LatentDim {
				vt.Factor[k] += tagE[t][k] / math.Sqrt(float64(len(tags)))
			}
		}
		ce := catE[side.cat[v]]
		for k := range LatentDim {
			vt.Factor[k] += ce[k] + r.NormFloat64()*0.25
		}
		vt.Quality = r.NormFloat64() * 0.35
		vt.Popularity = math.Exp(1.3*r.NormFloat64() + 0.2*vt.Quality)
		vt.QualityAfter, vt.PopularityAfter = vt.Quality, vt.Popularity
		vt.Replay = m.Effects.drawVideo(re)
		vt.ReplayAfter = vt.Replay
		switch u := r.Float64(); {
		case u < 0.001:
			vt.DurationMS = int32(140 + r.IntN(2900))
		case u < 0.07:
			vt.DurationMS = int32(min(315072, max(3000, 45000*math.Exp(0.8*r.NormFloat64()))))
		default:
			vt.DurationMS = int32(min(315072, max(3000, 9500*math.Exp(0.3*r.NormFloat64()))))
		}
	}
	// Users: two favourite tags (by tag frequency) plus noise.
	cum := make([]float64, kuairec.NumTags)
	s := 0.0
	for t, f := range tagFreq {
		s += f + 0.5
		cum[t] = s
	}
	pickTag := func() int {
		x := r.Float64() * s
		i, _ := slices.BinarySearch(cum, x)
		return min(i, kuairec.NumTags-1)
	}
	drawPref := func(p *[LatentDim]float64) {
		a, b := pickTag(), pickTag()
		for k := range LatentDim {
			p[k] = 0.7*tagE[a][k] + 0.4*tagE[b][k] + r.NormFloat64()*0.3
		}
	}
	tr.Users = make([]UserTruth, sc.Users)
	for u := range sc.Users {
		ut := &tr.Users[u]
		ut.ID = uint32(u)
		ut.Bias = r.NormFloat64() * 0.25
		ut.Replay = m.Effects.drawUser(re)
		drawPref(&ut.Factor)
		ut.After = ut.Factor
	}
	// Scale user factors so <p,q> has sd 0.8 over random pairs.
	var sum, sum2 float64
	const np = 4000
	for range np {
		u, v := &tr.Users[r.IntN(sc.Users)], &tr.Videos[r.IntN(sc.Videos)]
		d := 0.0
		for k := range LatentDim {
			d += u.Factor[k] * v.Factor[k]
		}
		sum += d
		sum2 += d * d
	}
	sd := math.Sqrt(max(sum2/np-(sum/np)*(sum/np), 1e-9))
	for u := range tr.Users {
		for k := range LatentDim {
			tr.Users[u].Factor[k] *= 0.8 / sd
		}
		tr.Users[u].After = tr.Users[u].Factor
	}

	// Small matrix: users with ids in [14, Users-14) (as in KuaiRec), videos
	// biased to popular ones.
	g.isSmall = make([]bool, sc.Users)
	lo, hi := min(14, sc.Users/20), sc.Users-min(14, sc.Users/20)
	cand := make([]int, 0, hi-lo)
	for u := lo; u < hi; u++ {
		cand = append(cand, u)
	}
	r.Shuffle(len(cand), func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
	for _, u := range cand[:min(sc.SmallUsers, len(cand))] {
		g.isSmall[u] = true
		m.SmallUsers = append(m.SmallUsers, uint32(u))
	}
	slices.Sort(m.SmallUsers)
	g.smallV = make([]bool, sc.Videos)
	type kv struct {
		k float64
		v int
	}
	keys := make([]kv, sc.Videos)
	for v := range sc.Videos {
		// Efraimidis-Spirakis weighted sampling without replacement.
		w := math.Sqrt(tr.Videos[v].Popularity) * math.Exp(smallQualitySel*tr.Videos[v].Quality)
		if tr.Videos[v].DurationMS < 3000 {
			w = 1e-300 // the small matrix's shortest video is ~3 s
		}
		keys[v] = kv{math.Log(r.Float64()+1e-300) / w, v}
	}
	slices.SortFunc(keys, func(a, b kv) int {
		if a.k > b.k {
			return -1
		}
		if a.k < b.k {
			return 1
		}
		return a.v - b.v
	})
	for _, x := range keys[:sc.SmallVideos] {
		g.smallV[x.v] = true
	}
	for v, ok := range g.smallV {
		if ok {
			g.smallVs = append(g.smallVs, uint32(v))
		}
	}
	m.SmallVideos = g.smallVs

	// Drifts.
	for _, d := range cfg.Drifts {
		d.At = fmtLocal(d.AtMS)
		m.Drifts = append(m.Drifts, d)
		switch d.Kind {
		case DriftPrefs:
			m.PrefsDriftMS = d.AtMS
			for u := range tr.Users {
				if r.Float64() < d.Share {
					ut := &tr.Users[u]
					ut.Drifted = true
					drawPref(&ut.After)
					for k := range LatentDim {
						ut.After[k] *= 0.8 / sd
					}
				}
			}
		case DriftPopularity:
			m.PopDriftMS = d.AtMS
			for v := range tr.Videos {
				if r.Float64() < d.Share {
					vt := &tr.Videos[v]
					vt.QualityAfter = r.NormFloat64() * 0.35
					vt.PopularityAfter = math.Exp(1.3*r.NormFloat64() + 0.2*vt.QualityAfter)
					vt.ReplayAfter = m.Effects.drawVideo(re)
				}
			}
		case DriftNewVideos:
			n := 0
			for _, v := range r.Perm(sc.Videos) {
				if n >= d.Count {
					break
				}
				if g.smallV[v] || tr.Videos[v].ReleaseMS != 0 {
					continue
				}
				tr.Videos[v].ReleaseMS = d.AtMS
				n++
			}
		}
		g.regimes = append(g.regimes, d.AtMS)
	}
	slices.Sort(g.regimes)
	g.regimes = slices.Compact(g.regimes)
	g.popW, g.popWAfter = make([]float64, sc.Videos), make([]float64, sc.Videos)
	for v := range tr.Videos {
		vt := &tr.Videos[v]
		boost := 1.0
		if vt.ReleaseMS != 0 {
			boost = newVideoBoost
		}
		ex := m.Effects.ExpoReplay
		g.popW[v] = boost * math.Pow(vt.Popularity, expoPopPow) * math.Exp(expoAffinity*vt.Quality+ex*vt.Replay)
		g.popWAfter[v] = boost * math.Pow(vt.PopularityAfter, expoPopPow) * math.Exp(expoAffinity*vt.QualityAfter+ex*vt.ReplayAfter)
	}

	// Day weights: the three busy collection windows of KuaiRec.
	for d := range spanDays {
		_, mo, dd := kuairec.Civil(kuairec.FloorDiv(SpanStartMS+kuairec.CSTOffsetMS, 86400000) + int64(d))
		busy := (mo == 7 && dd >= 5 && dd <= 12) || (mo == 8 && dd >= 1 && dd <= 10) || (mo == 8 && dd >= 27) || (mo == 9 && dd <= 5)
		if busy {
			g.dayW[d] = 5
		} else {
			g.dayW[d] = 0.6
		}
	}

	// Rows per user (original events), scaled to the target.
	g.nRows = make([]int, sc.Users)
	tot := 0.0
	raw := make([]float64, sc.Users)
	for u := range sc.Users {
		ur := g.userRand(u, 1)
		// A low-activity mode, a body and a heavy tail: median above the mean
		// (STATS.md: mean 1,746, median 1,846, min 100, max 16,015).
		var n float64
		switch x := ur.Float64(); {
		case x < 0.15:
			n = 100 + 600*ur.Float64()
		case x < 0.99:
			n = min(4200, max(100, 2150+800*ur.NormFloat64()))
		default:
			n = 4200 + min(11800, ur.ExpFloat64()*3000)
		}
		raw[u] = n
		tot += n
	}
	f := float64(sc.BigRows) / (1 + dupSingleP + dupBurstP*dupBurstMean) / tot
	// At full scale no user has fewer than ~100 rows (duplicates included).
	minRows := int(math.Ceil(100 * float64(sc.BigRows) / 12530806 / (1 + dupSingleP + dupBurstP*dupBurstMean)))
	for u := range sc.Users {
		g.nRows[u] = max(minRows, int(math.Round(raw[u]*f)))
	}
	return g
}

// userRand is user u's deterministic random stream number k.
func (g *genModel) userRand(u, k int) *rand.Rand {
	return rand.New(rand.NewPCG(g.seed^0x9e3779b97f4a7c15, uint64(u)<<8|uint64(k)))
}

// alias is Vose's alias table.
type alias struct {
	prob []float64
	al   []int32
}

func (a *alias) build(w []float64, small, large []int32) {
	n := len(w)
	if cap(a.prob) < n {
		a.prob = make([]float64, n)
		a.al = make([]int32, n)
	}
	a.prob, a.al = a.prob[:n], a.al[:n]
	s := 0.0
	for _, x := range w {
		s += x
	}
	small, large = small[:0], large[:0]
	for i, x := range w {
		a.prob[i] = x * float64(n) / s
		if a.prob[i] < 1 {
			small = append(small, int32(i))
		} else {
			large = append(large, int32(i))
		}
	}
	for len(small) > 0 && len(large) > 0 {
		l := small[len(small)-1]
		small = small[:len(small)-1]
		gi := large[len(large)-1]
		a.al[l] = gi
		a.prob[gi] = a.prob[gi] + a.prob[l] - 1
		if a.prob[gi] < 1 {
			large = large[:len(large)-1]
			small = append(small, gi)
		}
	}
	for _, i := range large {
		a.prob[i] = 1
	}
	for _, i := range small {
		a.prob[i] = 1
	}
}

func (a *alias) draw(r *rand.Rand) int {
	i := r.IntN(len(a.prob))
	if r.Float64() < a.prob[i] {
		return i
	}
	return int(a.al[i])
}

// worker scratch.
type genScratch struct {
	w            []float64
	small, large []int32
	tables       []alias
	seen         []bool
	seenList     []int32
	big, sm      []byte
}

// event is one generated interaction.
type event struct {
	video uint32
	play  int32
	tMS   int64
}

// samplePlay draws a watch ratio for affinity s and replay propensity rp and
// returns play_ms.
func (g *genModel) samplePlay(r *rand.Rand, s, rp float64, durMS int32) int32 {
	p := &g.wp
	pl, pw, mw := p.branches(s, rp, durMS)
	var wr float64
	switch {
	case r.Float64() < pl:
		wr = math.Exp(p.MuL + p.SigmaL*r.NormFloat64())
	case r.Float64() < pw:
		wr = math.Exp(mw + p.SigmaW*r.NormFloat64())
	default:
		wr = min(1, p.SkipMedianMS*math.Exp(p.SigmaS*r.NormFloat64())/float64(durMS))
	}
	return int32(min(999639, math.Round(wr*float64(durMS))))
}

// regimeOf returns the index of the exposure regime at t.
func (g *genModel) regimeOf(t int64) int {
	i := 0
	for i < len(g.regimes) && t >= g.regimes[i] {
		i++
	}
	return i
}

// regimeStart returns the start time of regime i.
func (g *genModel) regimeStart(i int) int64 {
	if i == 0 {
		return math.MinInt64
	}
	return g.regimes[i-1]
}

// genUser generates user u's big and small rows into sc.big and sc.sm.
func (g *genModel) genUser(u int, sc *genScratch) (bigRows, smallRows int) {
	tr := g.truth
	nv := g.sc.Videos
	r := g.userRand(u, 2)
	if len(sc.tables) < len(g.regimes)+1 {
		sc.tables = make([]alias, len(g.regimes)+1)
	}
	if cap(sc.w) < nv {
		sc.w = make([]float64, nv)
		sc.seen = make([]bool, nv)
	}
	w := sc.w[:nv]
	for ri := range len(g.regimes) + 1 {
		t := g.regimeStart(ri)
		if ri == 0 {
			t = SpanStartMS
		}
		popDrift := tr.Manifest.PopDriftMS != 0 && t >= tr.Manifest.PopDriftMS
		ut := &tr.Users[u]
		p := &ut.Factor
		if ut.Drifted && tr.Manifest.PrefsDriftMS != 0 && t >= tr.Manifest.PrefsDriftMS {
			p = &ut.After
		}
		// weight = pop^expoPopPow * exp(expoAffinity * s); the user bias is a
		// constant factor and is left out.
		for v := range nv {
			vt := &tr.Videos[v]
			if (g.isSmall[u] && g.smallV[v]) || (vt.ReleaseMS != 0 && t < vt.ReleaseMS) {
				w[v] = 0
				continue
			}
			dot := 0.0
			for k := range LatentDim {
				dot += p[k] * vt.Factor[k]
			}
			x := g.popW[v]
			if popDrift {
				x = g.popWAfter[v]
			}
			w[v] = x * math.Exp(expoAffinity*dot)
		}
		sc.tables[ri].build(w, sc.small, sc.large)
	}

	// Active days and events per day.
	n := g.nRows[u]
	nd := min(spanDays, max(3, int(math.Round(float64(n)/66*math.Exp(0.3*r.NormFloat64())))))
	type dayKey struct {
		k float64
		d int
	}
	dk := make([]dayKey, spanDays)
	for d := range spanDays {
		dk[d] = dayKey{math.Log(r.Float64()+1e-300) / g.dayW[d], d}
	}
	slices.SortFunc(dk, func(a, b dayKey) int {
		if a.k > b.k {
			return -1
		}
		if a.k < b.k {
			return 1
		}
		return 0
	})
	days := make([]int, nd)
	for i := range nd {
		days[i] = dk[i].d
	}
	slices.Sort(days)
	shares := make([]float64, nd)
	ssum := 0.0
	for i := range shares {
		shares[i] = r.ExpFloat64() + 0.05
		ssum += shares[i]
	}
	counts := make([]int, nd)
	left := n
	for i := range nd {
		c := int(math.Round(float64(n) * shares[i] / ssum))
		if i == nd-1 || c > left {
			c = left
		}
		counts[i] = c
		left -= c
	}

	sc.seenList = sc.seenList[:0]
	b := sc.big
	var prevT int64
	remaining := int64(n)
	for i, d := range days {
		dayStart := SpanStartMS + int64(d)*86400000
		t := dayStart + int64(diurnalHour(r)*3600000) + r.Int64N(3600000)
		t = min(t, SpanEndMS-int64(counts[i])*14000) // sessions end before the span does
		t = max(t, prevT+1)
		for range counts[i] {
			// The last events of a long final session are squeezed in before
			// the end of the span (Sep 5, 24:00 UTC+8).
			t = max(prevT+1, min(t, SpanEndMS-1000-remaining))
			remaining--
			ri := g.regimeOf(t)
			var v int
			for try := 0; ; try++ {
				v = sc.tables[ri].draw(r)
				if !sc.seen[v] || try >= 4 || r.Float64() < rewatchAccept {
					break
				}
			}
			if !sc.seen[v] {
				sc.seen[v] = true
				sc.seenList = append(sc.seenList, int32(v))
			}
			dur := tr.Videos[v].DurationMS
			play := g.samplePlay(r, tr.Score(uint32(u), uint32(v), t), tr.Replay(uint32(u), uint32(v), t), dur)
			copies := 1
			if x := r.Float64(); x < dupSingleP {
				copies = 2
			} else if x < dupSingleP+dupBurstP {
				copies = 2 + int(r.ExpFloat64()*dupBurstMean)
			}
			for range copies {
				b = appendRow(b, uint32(u), uint32(v), play, dur, t, false)
				bigRows++
			}
			prevT = t
			t += int64(play) + 500 + int64(r.ExpFloat64()*2500)
		}
	}
	for _, v := range sc.seenList {
		sc.seen[v] = false
	}
	sc.big = b

	if g.isSmall[u] {
		evs := make([]event, 0, len(g.smallVs))
		var untimed []event
		for _, v := range g.smallVs {
			if r.Float64() < smallMissingP {
				continue
			}
			if r.Float64() < smallUntimedP {
				untimed = append(untimed, event{video: v, tMS: kuairec.NoTime})
				continue
			}
			d := g.pickDay(r)
			t := SpanStartMS + int64(d)*86400000 + int64(diurnalHour(r)*3600000) + r.Int64N(3600000)
			evs = append(evs, event{video: v, tMS: t})
		}
		slices.SortStableFunc(evs, func(a, b event) int { return cmp.Compare(a.tMS, b.tMS) })
		r.Shuffle(len(untimed), func(i, j int) { untimed[i], untimed[j] = untimed[j], untimed[i] })
		sm := sc.sm
		for _, e := range append(evs, untimed...) {
			at := e.tMS
			if at == kuairec.NoTime {
				at = SpanEndMS
			}
			dur := tr.Videos[e.video].DurationMS
			play := g.samplePlay(r, tr.Score(uint32(u), e.video, at), tr.Replay(uint32(u), e.video, at), dur)
			sm = appendRow(sm, uint32(u), e.video, play, dur, e.tMS, true)
			smallRows++
		}
		sc.sm = sm
	}
	return bigRows, smallRows
}

func (g *genModel) pickDay(r *rand.Rand) int {
	s := 0.0
	for _, w := range g.dayW {
		s += w
	}
	x := r.Float64() * s
	for d, w := range g.dayW {
		if x < w {
			return d
		}
		x -= w
	}
	return spanDays - 1
}

// diurnalHour draws a local start hour (fractional) with evening and lunch peaks.
func diurnalHour(r *rand.Rand) float64 {
	hw := [24]float64{3, 2, 1, 0.5, 0.3, 0.3, 0.8, 2, 3, 3, 3, 3.5, 5, 5, 3.5, 3, 3, 3.5, 4.5, 6, 7, 7, 6, 4.5}
	s := 0.0
	for _, w := range hw {
		s += w
	}
	x := r.Float64() * s
	for h, w := range hw {
		if x < w {
			return float64(h)
		}
		x -= w
	}
	return 23
}

// appendRow appends one matrix row; small renders date as a float ("20200705.0")
// and writes empty time/date/timestamp for tMS == kuairec.NoTime.
func appendRow(b []byte, u, v uint32, play, dur int32, tMS int64, small bool) []byte {
	b = appendUint(b, uint64(u))
	b = append(b, ',')
	b = appendUint(b, uint64(v))
	b = append(b, ',')
	b = appendUint(b, uint64(play))
	b = append(b, ',')
	b = appendUint(b, uint64(dur))
	b = append(b, ',')
	if tMS == kuairec.NoTime {
		b = append(b, ",,,"...)
	} else {
		b = kuairec.AppendLocalTime(b, tMS)
		b = append(b, ',')
		b = appendUint(b, uint64(kuairec.LocalDate(tMS)))
		if small {
			b = append(b, '.', '0')
		}
		b = append(b, ',')
		b = kuairec.AppendTimestamp(b, tMS)
		b = append(b, ',')
	}
	b = kuairec.AppendPyFloat(b, float64(play)/float64(dur))
	return append(b, '\n')
}

func appendUint(b []byte, x uint64) []byte {
	if x < 10 {
		return append(b, byte('0'+x))
	}
	var tmp [20]byte
	i := len(tmp)
	for x > 0 {
		i--
		tmp[i] = byte('0' + x%10)
		x /= 10
	}
	return append(b, tmp[i:]...)
}

type userOut struct {
	u         int
	big, sm   []byte
	nBig, nSm int
}

// writeMatrices generates all users in parallel and writes both matrices in
// user order.
func (g *genModel) writeMatrices(dataDir string, cfg GenConfig) (int, int, error) {
	workers := cfg.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	open := func(name string) (*os.File, *bufio.Writer, error) {
		f, err := os.Create(filepath.Join(dataDir, name))
		if err != nil {
			return nil, nil, err
		}
		w := bufio.NewWriterSize(f, 1<<20)
		w.WriteString(kuairec.MatrixHeader + "\n")
		return f, w, nil
	}
	bf, bw, err := open(kuairec.BigMatrixFile)
	if err != nil {
		return 0, 0, err
	}
	defer bf.Close()
	sf, sw, err := open(kuairec.SmallMatrixFile)
	if err != nil {
		return 0, 0, err
	}
	defer sf.Close()

	var bar *progress.Bar
	if cfg.Progress != nil {
		est := int64(g.sc.BigRows) + int64(float64(g.sc.SmallUsers*g.sc.SmallVideos)*(1-smallMissingP))
		bar = progress.New(cfg.Progress, "rows", est)
		defer bar.Finish()
	}
	jobs := make(chan int)
	results := make(chan *userOut, 2*workers)
	window := make(chan struct{}, 8*workers) // bounds users held out of order
	free := sync.Pool{New: func() any { return &userOut{} }}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := &genScratch{}
			for u := range jobs {
				o := free.Get().(*userOut)
				sc.big, sc.sm = o.big[:0], o.sm[:0]
				o.u = u
				o.nBig, o.nSm = g.genUser(u, sc)
				o.big, o.sm = sc.big, sc.sm
				results <- o
			}
		}()
	}
	go func() {
		for u := range g.sc.Users {
			window <- struct{}{}
			jobs <- u
		}
		close(jobs)
		wg.Wait()
		close(results)
	}()
	pending := map[int]*userOut{}
	next, nBig, nSm := 0, 0, 0
	var werr error
	for o := range results {
		pending[o.u] = o
		for {
			p, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if werr == nil {
				_, werr = bw.Write(p.big)
			}
			if werr == nil {
				_, werr = sw.Write(p.sm)
			}
			nBig += p.nBig
			nSm += p.nSm
			if bar != nil {
				bar.Add(int64(p.nBig + p.nSm))
			}
			free.Put(p)
			<-window
		}
	}
	if werr == nil {
		werr = errors.Join(bw.Flush(), sw.Flush(), bf.Close(), sf.Close())
	}
	if werr != nil {
		return 0, 0, fmt.Errorf("writing matrices: %w", werr)
	}
	return nBig, nSm, nil
}
