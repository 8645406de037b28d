package synth

import (
	"math"
	"math/rand/v2"
	"slices"

	"github.com/streamrec/streamrec/internal/kuairec"
)

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
