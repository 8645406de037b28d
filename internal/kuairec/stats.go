package kuairec

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// MatrixStats are the statistics STATS.md publishes for a matrix, for comparing
// real and synthetic folders at a glance.
type MatrixStats struct {
	Rows, Users, Videos, Pairs int
	// Density is Rows / (Users * Videos); PairDensity uses unique pairs.
	Density, PairDensity float64
	Untimed              int
	// WatchQ are watch_ratio quantiles at WatchQLevels.
	WatchQ, DurQ []float64
	WatchMean    float64
	// Shares of rows with watch_ratio >= 0.8, >= 1, >= 2 and > 5.
	Share08, Share1, Share2, Share5 float64
	PlayMedian                      float64
	// RowsPerUser: min, median, mean, max.
	RowsPerUserMin, RowsPerUserMedian, RowsPerUserMax int
	RowsPerUserMean                                   float64
	First, Last                                       time.Time
}

// WatchQLevels and DurQLevels are the quantile levels of MatrixStats.
var (
	WatchQLevels = []float64{0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99, 1}
	DurQLevels   = []float64{0, 0.25, 0.50, 0.75, 1}
)

func quantiles(xs []float64, levels []float64) []float64 {
	out := make([]float64, len(levels))
	if len(xs) == 0 {
		return out
	}
	for i, l := range levels {
		out[i] = xs[min(len(xs)-1, int(l*float64(len(xs)-1)+0.5))]
	}
	return out
}

// ComputeStats computes MatrixStats of m (any rows, cleaned or not).
func ComputeStats(m *Interactions) MatrixStats {
	var s MatrixStats
	n := m.Len()
	s.Rows = n
	if n == 0 {
		return s
	}
	wr := slices.Clone(m.WatchRatio)
	sum := 0.0
	for _, x := range wr {
		sum += x
		switch {
		case x > 5:
			s.Share5++
			fallthrough
		case x >= 2:
			s.Share2++
			fallthrough
		case x >= 1:
			s.Share1++
			fallthrough
		case x >= 0.8:
			s.Share08++
		}
	}
	s.WatchMean = sum / float64(n)
	s.Share08, s.Share1, s.Share2, s.Share5 = s.Share08/float64(n), s.Share1/float64(n), s.Share2/float64(n), s.Share5/float64(n)
	slices.Sort(wr)
	s.WatchQ = quantiles(wr, WatchQLevels)
	for i, d := range m.DurMS {
		wr[i] = float64(d)
	}
	slices.Sort(wr)
	s.DurQ = quantiles(wr, DurQLevels)
	for i, d := range m.PlayMS {
		wr[i] = float64(d)
	}
	slices.Sort(wr)
	s.PlayMedian = quantiles(wr, []float64{0.5})[0]
	wr = nil

	users := map[uint32]int{}
	for _, u := range m.User {
		users[u]++
	}
	s.Users = len(users)
	s.Videos = len(uniqueSorted(m.Video))
	pairs := make([]uint64, n)
	for i := range n {
		pairs[i] = uint64(m.User[i])<<32 | uint64(m.Video[i])
	}
	slices.Sort(pairs)
	s.Pairs = len(slices.Compact(pairs))
	pairs = nil
	s.Density = float64(n) / (float64(s.Users) * float64(s.Videos))
	s.PairDensity = float64(s.Pairs) / (float64(s.Users) * float64(s.Videos))
	per := make([]int, 0, len(users))
	for _, c := range users {
		per = append(per, c)
	}
	slices.Sort(per)
	s.RowsPerUserMin, s.RowsPerUserMedian, s.RowsPerUserMax = per[0], per[len(per)/2], per[len(per)-1]
	s.RowsPerUserMean = float64(n) / float64(len(per))
	first, last := int64(1<<62), int64(-1<<62)
	for _, t := range m.TimeMS {
		if t == NoTime {
			s.Untimed++
			continue
		}
		first, last = min(first, t), max(last, t)
	}
	if s.Untimed < n {
		s.First, s.Last = time.UnixMilli(first).In(cst), time.UnixMilli(last).In(cst)
	}
	return s
}

// WriteText prints the statistics in the layout of STATS.md.
func (s MatrixStats) WriteText(w io.Writer, name string) {
	fmt.Fprintf(w, "%s: %d rows, %d users, %d videos, density %.4f (unique pairs %d, %.4f)\n",
		name, s.Rows, s.Users, s.Videos, s.Density, s.Pairs, s.PairDensity)
	if s.Rows == 0 {
		return
	}
	fmt.Fprintf(w, "  watch_ratio: mean %.4f", s.WatchMean)
	for i, l := range WatchQLevels {
		fmt.Fprintf(w, "  p%g %.4f", l*100, s.WatchQ[i])
	}
	fmt.Fprintf(w, "\n  watch_ratio shares: >=0.8 %.2f%%  >=1 %.2f%%  >=2 %.2f%%  >5 %.2f%%\n", 100*s.Share08, 100*s.Share1, 100*s.Share2, 100*s.Share5)
	fmt.Fprintf(w, "  video_duration ms: min %.0f  p25 %.0f  p50 %.0f  p75 %.0f  max %.0f;  play_duration median %.0f ms\n",
		s.DurQ[0], s.DurQ[1], s.DurQ[2], s.DurQ[3], s.DurQ[4], s.PlayMedian)
	fmt.Fprintf(w, "  rows per user: min %d  median %d  mean %.1f  max %d\n", s.RowsPerUserMin, s.RowsPerUserMedian, s.RowsPerUserMean, s.RowsPerUserMax)
	if !s.First.IsZero() {
		fmt.Fprintf(w, "  time span (UTC+8): %s .. %s", s.First.Format("2006-01-02 15:04:05.000"), s.Last.Format("2006-01-02 15:04:05.000"))
	}
	if s.Untimed > 0 {
		fmt.Fprintf(w, ";  %d rows without time (%.2f%%)", s.Untimed, 100*float64(s.Untimed)/float64(s.Rows))
	}
	fmt.Fprintln(w)
}

// cst is KuaiRec's local time zone (UTC+8).
var cst = time.FixedZone("UTC+8", 8*3600)
