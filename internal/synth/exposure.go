package synth

import (
	"math"
	"math/rand/v2"
)

// SampleWatchRatio draws a watch ratio of user watching video at time tMS
// from the model ExpectedWatchRatio averages (the generator draws its rows
// the same way, then rounds play_duration to the millisecond).
func (tr *Truth) SampleWatchRatio(r *rand.Rand, user, video uint32, tMS int64) float64 {
	return tr.Manifest.Watch.sample(r, tr.Score(user, video, tMS), tr.Replay(user, video, tMS), tr.Videos[video].DurationMS)
}

// Exposure is the generator's weight of showing video to user at time tMS
// (0 before the video's release): Popularity^0.8 x exp(0.15 quality + the
// replay effect) (x 4 for a video released during the span), each after a
// popularity drift from its time, x exp(0.15 <p_u(t), q_v>). The big matrix
// draws a user's videos in proportion to it (small-matrix pairs aside).
func (tr *Truth) Exposure(user, video uint32, tMS int64) float64 {
	vt, ut := &tr.Videos[video], &tr.Users[user]
	if vt.ReleaseMS != 0 && tMS < vt.ReleaseMS {
		return 0
	}
	boost := 1.0
	if vt.ReleaseMS != 0 {
		boost = newVideoBoost
	}
	pop, q, rv := vt.Popularity, vt.Quality, vt.Replay
	if tr.Manifest.PopDriftMS != 0 && tMS >= tr.Manifest.PopDriftMS {
		pop, q, rv = vt.PopularityAfter, vt.QualityAfter, vt.ReplayAfter
	}
	p := &ut.Factor
	if ut.Drifted && tr.Manifest.PrefsDriftMS != 0 && tMS >= tr.Manifest.PrefsDriftMS {
		p = &ut.After
	}
	dot := 0.0
	for k := range LatentDim {
		dot += p[k] * vt.Factor[k]
	}
	return boost * math.Pow(pop, expoPopPow) * math.Exp(expoAffinity*q+tr.Manifest.Effects.ExpoReplay*rv+expoAffinity*dot)
}

// sample draws a watch ratio from the mixture expected averages.
func (p *WatchParams) sample(r *rand.Rand, s, rp float64, durMS int32) float64 {
	pl, pw, mw := p.branches(s, rp, durMS)
	switch {
	case r.Float64() < pl:
		return math.Exp(p.MuL + p.SigmaL*r.NormFloat64())
	case r.Float64() < pw:
		return math.Exp(mw + p.SigmaW*r.NormFloat64())
	default:
		return min(1, p.SkipMedianMS*math.Exp(p.SigmaS*r.NormFloat64())/float64(durMS))
	}
}
