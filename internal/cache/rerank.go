package cache

import "math"

// The pre-scan's exact re-rank (topKPrescan) and its small helpers.

// lowBound is L: the k-th largest lower bound, -Inf with fewer than k.
func lowBound(hp []float64, k int) float64 {
	if len(hp) < k {
		return math.Inf(-1)
	}
	return hp[0]
}

// rerank scores exactly, in batches of up to 32, the candidates not yet
// re-ranked with low >= minLow and up >= lim (lim rising as T does), in
// order, offers them to sel and marks them (up = NaN). It returns how many
// it scored and the new max(lim, T).
//
// The candidates are gathered from the row-major copy (4 cache lines per
// row at dim 64, where their tiles would be 8 KB each; a batch's rows are
// prefetched first, so that their cache misses overlap) into one scratch
// tile and scored by the same kernel. A lane's score depends only on its
// row, the query and its bias, so it is bit for bit the score of the full
// scan; lanes past the batch hold stale rows whose scores are ignored.
func (x *ItemIndex) rerank(sel *selector, query, bias []float32, ps *prescanScratch, cands []candidate, minLow, lim float64) (int, float64) {
	dim := x.dim
	g := ps.gather[:dim*tileRows]
	var gb []float32
	if bias != nil {
		gb = ps.gbias
	}
	scored := 0
	for i := 0; i < len(cands); {
		batch := ps.batch[:0]
		for ; i < len(cands) && len(batch) < tileRows; i++ {
			if c := &cands[i]; c.up >= lim && c.low >= minLow {
				batch = append(batch, c.row)
				c.up = math.NaN()
			}
		}
		if len(batch) == 0 {
			break
		}
		prefetchRows(&x.vecs[0], &batch[0], len(batch), dim*4)
		if bias != nil {
			prefetchRows(&bias[0], &batch[0], len(batch), 4)
		}
		for c, r := range batch {
			row := x.vecs[int(r)*dim : (int(r)+1)*dim]
			for j, v := range row {
				g[j*tileRows+c] = v
			}
			if bias != nil {
				gb[c] = bias[r]
			}
		}
		scoreTiles(ps.exact, query, g, gb, dim, 1)
		for c, r := range batch {
			sel.offer(ps.exact[c], int(r))
		}
		scored += len(batch)
		lim = max(lim, float64(sel.th))
	}
	return scored, lim
}

// compactCands keeps the candidates not yet re-ranked whose upper bound is
// >= lim.
func compactCands(cands []candidate, lim float64) []candidate {
	j := 0
	for _, c := range cands {
		if c.up >= lim {
			cands[j] = c
			j++
		}
	}
	return cands[:j]
}

func fSiftUp(h []float64, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !(h[i] < h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func fSiftDown(h []float64, i, n int) {
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h[r] < h[l] {
			m = r
		}
		if !(h[m] < h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
