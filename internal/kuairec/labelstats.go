package kuairec

import (
	"fmt"
	"io"
	"math"
	"slices"
)

// PositiveThreshold is KuaiRec's own label: an interaction is a positive when
// its watch_ratio is above 2.
const PositiveThreshold = 2.0

// LabelStats measure how uneven the label (watch_ratio > Threshold) is across
// the videos and users of the small matrix, and how well the big matrix
// predicts it. These are the statistics that decide whether popularity is a
// strong baseline: on the real KuaiRec, videos and users differ a lot.
type LabelStats struct {
	Threshold float64
	// Videos and Users of the small matrix (with at least one row).
	Videos, Users int
	// VideoShareQ: per video, the share of its users with a positive (at least
	// one row above Threshold), at LabelQLevels; UserShareQ the same per user
	// over the videos they watched.
	VideoShareQ, UserShareQ []float64
	// VideoGini and UserGini are the Gini coefficients of those shares.
	VideoGini, UserGini float64
	// Spearman is the rank correlation, over the small matrix's videos, of the
	// video's positives in the big matrix (cleaned rows above Threshold) and its
	// share in the small matrix (ties get average ranks). NaN when no big
	// matrix was given.
	Spearman float64
	// MeanShare is the label's base rate: positive pairs / observed pairs.
	MeanShare float64
}

// LabelQLevels are the quantile levels of LabelStats (1 is the maximum).
var LabelQLevels = []float64{0.10, 0.50, 0.90, 0.99, 1}

// RealLabelStats are the values computed on the real KuaiRec 2.0 (small matrix
// with every observed pair, cleaned big matrix), as published in the project's
// issue on the calibrated generator. The users' maximum was not published (NaN).
var RealLabelStats = LabelStats{
	Threshold:   PositiveThreshold,
	Videos:      3327,
	Users:       1411,
	VideoShareQ: []float64{0.0057, 0.031, 0.096, 0.25, 0.72},
	UserShareQ:  []float64{0.0075, 0.028, 0.113, 0.20, math.NaN()},
	VideoGini:   0.50,
	UserGini:    0.50,
	Spearman:    0.755,
	MeanShare:   0.046,
}

// CountPositives returns, per video id, the number of rows of m whose watch
// ratio is above thr (videos without a positive are absent).
func CountPositives(m *Interactions, thr float64) map[uint32]int {
	out := map[uint32]int{}
	for i, wr := range m.WatchRatio {
		if wr > thr {
			out[m.Video[i]]++
		}
	}
	return out
}

// ComputeLabelStats computes LabelStats of the small matrix (pass every
// observed pair: LoadEval) with bigPositives from CountPositives on the big
// matrix (nil: Spearman is NaN). A pair watched several times counts once, as
// a positive when any of its rows is.
func ComputeLabelStats(small *Interactions, bigPositives map[uint32]int, thr float64) LabelStats {
	s := LabelStats{Threshold: thr, Spearman: math.NaN()}
	n := small.Len()
	if n == 0 {
		return s
	}
	type pairPos struct {
		key uint64 // user<<32 | video
		pos bool
	}
	ps := make([]pairPos, n)
	for i := range n {
		ps[i] = pairPos{uint64(small.User[i])<<32 | uint64(small.Video[i]), small.WatchRatio[i] > thr}
	}
	slices.SortFunc(ps, func(a, b pairPos) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return 0
	})
	// Collapse re-watches: a pair is positive if any of its rows is.
	w := 0
	for i := range ps {
		if w > 0 && ps[w-1].key == ps[i].key {
			ps[w-1].pos = ps[w-1].pos || ps[i].pos
			continue
		}
		ps[w] = ps[i]
		w++
	}
	ps = ps[:w]
	type count struct{ pos, all int }
	perUser := map[uint32]*count{}
	perVideo := map[uint32]*count{}
	positives := 0
	for _, p := range ps {
		u, v := uint32(p.key>>32), uint32(p.key)
		cu, cv := perUser[u], perVideo[v]
		if cu == nil {
			cu = &count{}
			perUser[u] = cu
		}
		if cv == nil {
			cv = &count{}
			perVideo[v] = cv
		}
		cu.all++
		cv.all++
		if p.pos {
			cu.pos++
			cv.pos++
			positives++
		}
	}
	s.Users, s.Videos = len(perUser), len(perVideo)
	s.MeanShare = float64(positives) / float64(len(ps))
	shares := func(m map[uint32]*count) (ids []uint32, sh []float64) {
		ids = make([]uint32, 0, len(m))
		for id := range m {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		sh = make([]float64, len(ids))
		for i, id := range ids {
			sh[i] = float64(m[id].pos) / float64(m[id].all)
		}
		return ids, sh
	}
	vids, vsh := shares(perVideo)
	_, ush := shares(perUser)
	if bigPositives != nil {
		big := make([]float64, len(vids))
		for i, v := range vids {
			big[i] = float64(bigPositives[v])
		}
		s.Spearman = Spearman(big, vsh)
	}
	s.VideoGini, s.UserGini = Gini(vsh), Gini(ush)
	slices.Sort(vsh)
	slices.Sort(ush)
	s.VideoShareQ, s.UserShareQ = quantiles(vsh, LabelQLevels), quantiles(ush, LabelQLevels)
	return s
}

// Gini is the Gini coefficient of non-negative values (0: all equal; towards 1:
// concentrated on a few). It is 0 for an empty or all-zero input.
func Gini(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	var sum, weighted float64
	for i, x := range s {
		sum += x
		weighted += float64(i+1) * x
	}
	if sum == 0 {
		return 0
	}
	return 2*weighted/(float64(n)*sum) - float64(n+1)/float64(n)
}

// Spearman is the rank correlation of x and y (same length), with tied
// values given their average rank. NaN when either side is constant.
func Spearman(x, y []float64) float64 {
	if len(x) != len(y) {
		panic("kuairec: Spearman of slices of different lengths")
	}
	return pearson(ranks(x), ranks(y))
}

func ranks(xs []float64) []float64 {
	idx := make([]int, len(xs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case xs[a] < xs[b]:
			return -1
		case xs[a] > xs[b]:
			return 1
		}
		return 0
	})
	r := make([]float64, len(xs))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && xs[idx[j+1]] == xs[idx[i]] {
			j++
		}
		avg := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			r[idx[k]] = avg
		}
		i = j + 1
	}
	return r
}

func pearson(x, y []float64) float64 {
	n := float64(len(x))
	if n == 0 {
		return math.NaN()
	}
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx, my = mx/n, my/n
	var sxy, sxx, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return math.NaN()
	}
	return sxy / math.Sqrt(sxx*syy)
}

// WriteText prints s beside ref (normally RealLabelStats), one statistic a line.
func (s LabelStats) WriteText(w io.Writer, name string, ref LabelStats) {
	fmt.Fprintf(w, "%s: label watch_ratio > %g, %d videos x %d users (reference in brackets: real KuaiRec)\n", name, s.Threshold, s.Videos, s.Users)
	q := func(ours, theirs []float64) string {
		out := ""
		for i, l := range LabelQLevels {
			name := fmt.Sprintf("p%g", l*100)
			if l == 1 {
				name = "max"
			}
			var o, t float64 = math.NaN(), math.NaN()
			if i < len(ours) {
				o = ours[i]
			}
			if i < len(theirs) {
				t = theirs[i]
			}
			out += fmt.Sprintf("  %s %s [%s]", name, fmtStat(o), fmtStat(t))
		}
		return out
	}
	fmt.Fprintf(w, "  per-video share of users with a positive:%s\n", q(s.VideoShareQ, ref.VideoShareQ))
	fmt.Fprintf(w, "  per-user share of videos with a positive: %s\n", q(s.UserShareQ, ref.UserShareQ))
	fmt.Fprintf(w, "  Gini of per-video shares %s [%s], of per-user shares %s [%s]\n",
		fmtStat(s.VideoGini), fmtStat(ref.VideoGini), fmtStat(s.UserGini), fmtStat(ref.UserGini))
	fmt.Fprintf(w, "  Spearman(big-matrix positives, small-matrix share) over the small videos %s [%s]\n", fmtStat(s.Spearman), fmtStat(ref.Spearman))
	fmt.Fprintf(w, "  mean share (base rate) %s [%s]\n", fmtStat(s.MeanShare), fmtStat(ref.MeanShare))
}

func fmtStat(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.4g", x)
}
