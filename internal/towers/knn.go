package towers

import (
	"math"
	"runtime"
	"slices"
	"sync"
)

// ItemKNN is the item-based kNN reference of the offline report (issue 17):
// item-item cosine similarity on the positives of the training interactions
// (a user's positives are the items with a relevant watch ratio at a
// relevance level), each candidate item keeping its K most similar items,
// and a user's score for candidate j the sum of the similarities of j's
// neighbours among the user's positives,
//
//	cos(i, j) = |U_i ∩ U_j| / sqrt(|U_i| |U_j|)      (U_i: users positive on i)
//	knn(u, j) = sum_{i in N_K(j), i in P_u} cos(i, j)
//
// blended with popularity (the candidate's number of positives) as is usual:
//
//	score(u, j) = (1 - Alpha) knn(u, j) / max_j' knn(u, j') + Alpha pop(j) / max pop
//
// A user with no positive gets popularity alone. Alpha is chosen on
// validation interactions (ChooseAlpha), never on the evaluation matrix.
type ItemKNN struct {
	// Cands are the candidate items (item rows), in the order of Scores.
	Cands []int32
	// K is the number of neighbours kept per candidate.
	K     int
	Alpha float64
	nbr   [][]int32
	sim   [][]float64
	pop   []float64 // candidates' positives / the largest
	// userItems[u] lists user u's positives; rev[i] the candidates that
	// have item i among their neighbours, with the similarity.
	userItems [][]int32
	rev       [][]revEntry
}

type revEntry struct {
	cand int32
	sim  float64
}

// NewItemKNN builds the kNN reference from the training interactions
// (user and item rows below nUsers and nItems) at relevance level rel, for
// the candidate items cands, with k neighbours per candidate and Alpha 0.
// It runs over all cores.
func NewItemKNN(train Interactions, nUsers, nItems int, cands []int32, rel Relevance, k int) *ItemKNN {
	m := &ItemKNN{Cands: slices.Clone(cands), K: k}
	// Positives per user (deduplicated by a bitset) and per item.
	userItems := make([][]int32, nUsers)
	words := (nItems + 63) / 64
	pos := make([][]uint64, nUsers)
	for u := range pos {
		pos[u] = make([]uint64, words)
	}
	count := make([]float64, nItems)
	for r := range train.User {
		if !rel.Relevant(float64(train.WatchRatio[r])) {
			continue
		}
		u, i := train.User[r], train.Item[r]
		if pos[u][i>>6]&(1<<(uint(i)&63)) != 0 {
			continue
		}
		pos[u][i>>6] |= 1 << (uint(i) & 63)
		userItems[u] = append(userItems[u], i)
		count[i]++
	}
	itemUsers := make([][]int32, nItems)
	for u, items := range userItems {
		for _, i := range items {
			itemUsers[i] = append(itemUsers[i], int32(u))
		}
	}
	maxPop := 0.0
	m.pop = make([]float64, len(cands))
	for c, j := range cands {
		m.pop[c] = count[j]
		maxPop = max(maxPop, count[j])
	}
	if maxPop > 0 {
		for c := range m.pop {
			m.pop[c] /= maxPop
		}
	}
	// Co-counts one candidate at a time (a dense count vector over items
	// stays in cache), candidates split over the cores.
	m.nbr = make([][]int32, len(cands))
	m.sim = make([][]float64, len(cands))
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			co := make([]float64, nItems)
			top := make([]int32, 0, k)
			for c := w; c < len(cands); c += workers {
				j := cands[c]
				if count[j] == 0 {
					continue
				}
				clear(co)
				for _, u := range itemUsers[j] {
					for _, i := range userItems[u] {
						co[i]++
					}
				}
				co[j] = 0
				nj := math.Sqrt(count[j])
				for i, v := range co {
					if v > 0 {
						co[i] = v / (nj * math.Sqrt(count[i]))
					} else {
						co[i] = math.NaN()
					}
				}
				top = TopK(top, co, k)
				m.nbr[c] = slices.Clone(top)
				m.sim[c] = make([]float64, len(top))
				for t, i := range top {
					m.sim[c][t] = co[i]
				}
			}
		})
	}
	wg.Wait()
	m.userItems = userItems
	m.rev = make([][]revEntry, nItems)
	for c := range m.nbr {
		for t, i := range m.nbr[c] {
			m.rev[i] = append(m.rev[i], revEntry{cand: int32(c), sim: m.sim[c][t]})
		}
	}
	return m
}

// raw writes user u's unblended kNN scores over all candidates into dst and
// returns their maximum. It walks the user's positives through the reverse
// neighbour lists (which candidates list item i), about |P_u| K |cands| /
// items steps rather than K |cands|.
func (m *ItemKNN) raw(u int32, dst []float64) float64 {
	clear(dst)
	for _, i := range m.userItems[u] {
		for _, e := range m.rev[i] {
			dst[e.cand] += e.sim
		}
	}
	best := 0.0
	for _, v := range dst {
		best = max(best, v)
	}
	return best
}

func (m *ItemKNN) blend(dst []float64, best, alpha float64) {
	if best == 0 {
		alpha, best = 1, 1
	}
	for c := range dst {
		dst[c] = (1-alpha)*dst[c]/best + alpha*m.pop[c]
	}
}

// Scores writes user row u's blended scores over the candidates into dst
// (len(Cands)), with the blend weight alpha.
func (m *ItemKNN) Scores(u int32, alpha float64, dst []float64) {
	dst = dst[:len(m.Cands)]
	m.blend(dst, m.raw(u, dst), alpha)
}

// ChooseAlpha sets Alpha to the value of grid with the best NDCG@k on v
// (interactions held out of training, over the same candidates) and returns
// the NDCG of each grid value.
func (m *ItemKNN) ChooseAlpha(v *ValidSet, rel Relevance, k int, grid []float64) []float64 {
	sums := make([]float64, len(grid))
	n := 0
	rawAll := make([]float64, len(m.Cands))
	sc := make([]float64, 0, 64)
	for ui, u := range v.Users {
		cells := v.Cells[ui]
		if !anyRelevant(cells, rel) {
			continue
		}
		best := m.raw(u, rawAll)
		for g, a := range grid {
			sc = sc[:0]
			for _, c := range cells {
				b := best
				if b == 0 {
					sc = append(sc, m.pop[c.Pos])
					continue
				}
				sc = append(sc, (1-a)*rawAll[c.Pos]/b+a*m.pop[c.Pos])
			}
			sums[g] += cellsNDCG(cells, sc, rel, k)
		}
		n++
	}
	bestAt := 0
	for g := range grid {
		sums[g] /= float64(max(n, 1))
		if sums[g] > sums[bestAt] {
			bestAt = g
		}
	}
	m.Alpha = grid[bestAt]
	return sums
}

// ValidCell is one held-out (user, candidate) pair: the candidate's position
// and the mean watch ratio of the user's rows of it.
type ValidCell struct {
	Pos int32
	WR  float64
}

// ValidSet is a validation ranking set drawn from held-out interactions of
// the training log (never from the evaluation matrix): for each user, the
// held-out items that are candidates, with their watch ratios.
type ValidSet struct {
	Users []int32
	Cells [][]ValidCell
}

// NewValidSet collects valid's rows whose item is a key of candPos (the
// value is the candidate's position), per user, duplicates averaged; users
// with fewer than 2 cells are dropped, and at most maxUsers users are kept
// (every n-th in user order; <= 0 keeps all).
func NewValidSet(valid Interactions, candPos map[int32]int32, maxUsers int) *ValidSet {
	type acc struct{ sum, n float64 }
	byUser := map[int32]map[int32]*acc{}
	for r, u := range valid.User {
		c, ok := candPos[valid.Item[r]]
		if !ok {
			continue
		}
		mu := byUser[u]
		if mu == nil {
			mu = map[int32]*acc{}
			byUser[u] = mu
		}
		x := mu[c]
		if x == nil {
			x = &acc{}
			mu[c] = x
		}
		x.sum += float64(valid.WatchRatio[r])
		x.n++
	}
	users := make([]int32, 0, len(byUser))
	for u, cells := range byUser {
		if len(cells) >= 2 {
			users = append(users, u)
		}
	}
	slices.Sort(users)
	if maxUsers > 0 && len(users) > maxUsers {
		kept := make([]int32, 0, maxUsers)
		for t := 0; t < maxUsers; t++ {
			kept = append(kept, users[t*len(users)/maxUsers])
		}
		users = kept
	}
	v := &ValidSet{Users: users, Cells: make([][]ValidCell, len(users))}
	for ui, u := range users {
		for c, x := range byUser[u] {
			v.Cells[ui] = append(v.Cells[ui], ValidCell{Pos: c, WR: x.sum / x.n})
		}
		slices.SortFunc(v.Cells[ui], func(a, b ValidCell) int { return int(a.Pos - b.Pos) })
	}
	return v
}

// NDCG is NDCG@k with binary gains at rel over each user's cells, ranked by
// the scores that score writes into dst (one per cell, in order), averaged
// over the users with at least one relevant cell.
func (v *ValidSet) NDCG(rel Relevance, k int, score func(u int32, cells []ValidCell, dst []float64)) float64 {
	sum, n := 0.0, 0
	var sc []float64
	for ui, u := range v.Users {
		cells := v.Cells[ui]
		if !anyRelevant(cells, rel) {
			continue
		}
		sc = append(sc[:0], make([]float64, len(cells))...)
		score(u, cells, sc)
		sum += cellsNDCG(cells, sc, rel, k)
		n++
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

func anyRelevant(cells []ValidCell, rel Relevance) bool {
	for _, c := range cells {
		if rel.Relevant(c.WR) {
			return true
		}
	}
	return false
}

// cellsNDCG is one user's NDCG@k of the cells ranked by sc.
func cellsNDCG(cells []ValidCell, sc []float64, rel Relevance, k int) float64 {
	top := TopK(nil, sc, k)
	dcg, idcg, nrel := 0.0, 0.0, 0
	for r, t := range top {
		if rel.Relevant(cells[t].WR) {
			dcg += 1 / math.Log2(float64(r)+2)
		}
	}
	for _, c := range cells {
		if rel.Relevant(c.WR) {
			nrel++
		}
	}
	for r := 0; r < min(k, nrel); r++ {
		idcg += 1 / math.Log2(float64(r)+2)
	}
	if idcg == 0 {
		return 0
	}
	return dcg / idcg
}
