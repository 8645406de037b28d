package synth

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/streamrec/streamrec/internal/kuairec"
)

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
	return int32(min(999639, math.Round(g.wp.sample(r, s, rp, durMS)*float64(durMS))))
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
