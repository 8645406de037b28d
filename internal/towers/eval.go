package towers

import (
	"container/heap"
	"math"
	"slices"
)

// Relevance defines binary gains over watch ratios: relevant when
// wr >= Threshold, or wr > Threshold when Strict.
type Relevance struct {
	Threshold float64
	Strict    bool
}

// The two relevance levels of the offline report: the seed's (wr >= 0.8)
// and KuaiRec's own "like" label (wr > 2.0).
var (
	RelevantAt08   = Relevance{Threshold: 0.8}
	RelevantAbove2 = Relevance{Threshold: 2.0, Strict: true}
)

// Relevant reports whether a watch ratio is relevant; NaN never is.
func (r Relevance) Relevant(wr float64) bool {
	if r.Strict {
		return wr > r.Threshold
	}
	return wr >= r.Threshold
}

// TruthMatrix is a dense users x items matrix of watch ratios (row-major),
// NaN where a pair was not observed; KuaiRec's small matrix is one (about
// 0.4% NaN).
type TruthMatrix struct {
	Users, Items int
	WR           []float64
}

// Row returns user u's watch ratios.
func (t TruthMatrix) Row(u int) []float64 { return t.WR[u*t.Items : (u+1)*t.Items] }

// RankMetrics are top-K metrics with binary gains, averaged over the users
// with at least one relevant candidate (Users); NoRelevant counts the users
// left out because they had none.
type RankMetrics struct {
	NDCG, Precision, Recall float64
	Users, NoRelevant       int
}

// RankingMetrics ranks, for every user, all items observed in t (the
// candidates) by the scores that score writes into dst (t.Items entries; the
// entries of unobserved items are ignored), and returns NDCG@k, Precision@k
// and Recall@k for each relevance level in rels:
//
//	DCG = sum_{r=1..k} rel_r / log2(r+1), IDCG the same for the ideal list,
//	Precision = hits / min(k, candidates), Recall = hits / relevant.
//
// Ties are broken by the lower item index, so results are deterministic.
func RankingMetrics(t TruthMatrix, k int, rels []Relevance, score func(u int, dst []float64)) []RankMetrics {
	if len(t.WR) != t.Users*t.Items || k <= 0 {
		panic("towers: RankingMetrics: bad shape")
	}
	out := make([]RankMetrics, len(rels))
	sums := make([][3]float64, len(rels))
	scores := make([]float64, t.Items)
	top := make([]int32, 0, k)
	disc := make([]float64, k+1)
	for r := 1; r <= k; r++ {
		disc[r] = 1 / math.Log2(float64(r)+1)
	}
	for u := 0; u < t.Users; u++ {
		row := t.Row(u)
		score(u, scores)
		for i, wr := range row {
			if math.IsNaN(wr) {
				scores[i] = math.NaN()
			}
		}
		top = TopK(top, scores, k)
		for li, rel := range rels {
			nrel, ncand := 0, 0
			for _, wr := range row {
				if !math.IsNaN(wr) {
					ncand++
					if rel.Relevant(wr) {
						nrel++
					}
				}
			}
			if nrel == 0 {
				out[li].NoRelevant++
				continue
			}
			dcg, hits := 0.0, 0
			for r, i := range top {
				if rel.Relevant(row[i]) {
					hits++
					dcg += disc[r+1]
				}
			}
			idcg := 0.0
			for r := 1; r <= min(k, nrel); r++ {
				idcg += disc[r]
			}
			sums[li][0] += dcg / idcg
			sums[li][1] += float64(hits) / float64(min(k, ncand))
			sums[li][2] += float64(hits) / float64(nrel)
			out[li].Users++
		}
	}
	for li := range out {
		if n := float64(out[li].Users); n > 0 {
			out[li].NDCG, out[li].Precision, out[li].Recall = sums[li][0]/n, sums[li][1]/n, sums[li][2]/n
		}
	}
	return out
}

// TopK writes into dst (reusing its storage) the indices of the k largest
// scores, best first; NaN scores are skipped; ties go to the lower index.
func TopK(dst []int32, scores []float64, k int) []int32 {
	h := topHeap{scores: scores, idx: dst[:0]}
	for i, s := range scores {
		if math.IsNaN(s) {
			continue
		}
		if len(h.idx) < k {
			heap.Push(&h, int32(i))
		} else if h.better(int32(i), h.idx[0]) {
			h.idx[0] = int32(i)
			heap.Fix(&h, 0)
		}
	}
	slices.SortFunc(h.idx, func(a, b int32) int {
		if h.better(a, b) {
			return -1
		}
		return 1
	})
	return h.idx
}

// topHeap is a min-heap (worst on top) of item indices by score.
type topHeap struct {
	scores []float64
	idx    []int32
}

func (h *topHeap) better(a, b int32) bool {
	sa, sb := h.scores[a], h.scores[b]
	return sa > sb || (sa == sb && a < b)
}
func (h topHeap) Len() int           { return len(h.idx) }
func (h topHeap) Less(i, j int) bool { return h.better(h.idx[j], h.idx[i]) }
func (h topHeap) Swap(i, j int)      { h.idx[i], h.idx[j] = h.idx[j], h.idx[i] }
func (h *topHeap) Push(x any)        { h.idx = append(h.idx, x.(int32)) }
func (h *topHeap) Pop() any {
	x := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return x
}

// BaseRate is the share of observed cells of t that are relevant: the
// precision of a random ranking.
func BaseRate(t TruthMatrix, rel Relevance) float64 {
	n, r := 0, 0
	for _, wr := range t.WR {
		if !math.IsNaN(wr) {
			n++
			if rel.Relevant(wr) {
				r++
			}
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return float64(r) / float64(n)
}

// PopularityScores is the popularity baseline: each item's number of
// training interactions, or, when rel is not nil, its number of relevant
// training interactions. Rank all users' lists by it.
func PopularityScores(items []int32, wr []float32, nItems int, rel *Relevance) []float64 {
	if rel != nil && len(wr) != len(items) {
		panic("towers: PopularityScores: shape mismatch")
	}
	s := make([]float64, nItems)
	for k, i := range items {
		if rel == nil || rel.Relevant(float64(wr[k])) {
			s[i]++
		}
	}
	return s
}

// MAE is the mean absolute error of pred against truth over the entries where
// truth is not NaN.
func MAE(pred, truth []float64) float64 {
	if len(pred) != len(truth) {
		panic("towers: MAE: shape mismatch")
	}
	s, n := 0.0, 0
	for i, y := range truth {
		if math.IsNaN(y) {
			continue
		}
		s += math.Abs(pred[i] - y)
		n++
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

// MAEConst is the MAE of the constant prediction c (the mean and median
// baselines) against truth, NaN entries skipped.
func MAEConst(c float64, truth []float64) float64 {
	s, n := 0.0, 0
	for _, y := range truth {
		if !math.IsNaN(y) {
			s += math.Abs(c - y)
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

// MeanMedian returns the mean and the median of x (the training watch ratios
// for the mean and median baselines); NaN for an empty x.
func MeanMedian(x []float32) (mean, median float64) {
	if len(x) == 0 {
		return math.NaN(), math.NaN()
	}
	s := make([]float64, len(x))
	for i, v := range x {
		s[i] = float64(v)
		mean += s[i]
	}
	mean /= float64(len(x))
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		median = s[n/2]
	} else {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return mean, median
}
