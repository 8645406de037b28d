package kuairec

import (
	"math"
	"math/bits"
	"slices"
)

// Clean applies the seed's preprocessing to m in place and fills the cleaning
// fields of rep (which may be nil):
//
//  1. drop rows with a missing value (an empty time, date or timestamp cell; the
//     other cells cannot be empty in a parsed row). With keepUntimed, rows whose
//     only empty cells are time, date and timestamp are kept (LoadEval);
//  2. drop rows with timestamp <= 0;
//  3. drop exact duplicates: rows identical in all 8 columns to an earlier row in
//     file order (the time column is compared by a 32-bit hash of its text, all
//     other columns exactly);
//
// and sets m.Order to the timed rows in global replay order: ascending TimeMS,
// ties by User, then file order. Rows stay in file order. Re-watches (same user
// and video, other time) are kept. Clean also works on Interactions built by
// hand: Date 0 then means an empty date cell, TimeMS NoTime an empty time.
func Clean(m *Interactions, rep *FileReport, keepUntimed bool) {
	if rep == nil {
		rep = newFileReport("")
	}
	n := m.Len()
	if len(m.timeHash) != n {
		// Interactions built by hand (not by ReadMatrix): the time text is
		// taken as present exactly when TimeMS is.
		m.timeHash = make([]uint32, n)
		for i, t := range m.TimeMS {
			if t != NoTime {
				m.timeHash[i] = 1
			}
		}
	}
	keep := make([]bool, n)
	for i := range n {
		untimed := m.TimeMS[i] == NoTime
		missing := untimed || m.Date[i] == 0 || m.timeHash[i] == 0
		switch {
		case missing && keepUntimed && untimed && m.Date[i] == 0 && m.timeHash[i] == 0:
			rep.KeptUntimed++
			keep[i] = true
		case missing:
			rep.DroppedMissing++
		case m.TimeMS[i] <= 0:
			rep.DroppedNonPositiveTime++
		default:
			keep[i] = true
		}
	}
	m.filter(keep, nil)

	order := globalOrder(m)
	// Exact duplicates among timed rows are adjacent in (time, user) runs of order.
	n = m.Len()
	keep = keep[:n]
	for i := range keep {
		keep[i] = true
	}
	dups := 0
	for s := 0; s < len(order); {
		e := s + 1
		a := order[s]
		for e < len(order) && m.TimeMS[order[e]] == m.TimeMS[a] && m.User[order[e]] == m.User[a] {
			e++
		}
		if e-s > 1 {
			dups += markDuplicates(m, order[s:e], keep)
		}
		s = e
	}
	// Untimed rows (LoadEval only): duplicates by all columns.
	if rep.KeptUntimed > 0 {
		seen := map[rowKey]struct{}{}
		for i := range n {
			if m.TimeMS[i] != NoTime {
				continue
			}
			k := m.key(uint32(i))
			if _, ok := seen[k]; ok {
				keep[i] = false
				dups++
				rep.KeptUntimed--
				continue
			}
			seen[k] = struct{}{}
		}
	}
	rep.DroppedDuplicates = dups
	if dups > 0 {
		remap := make([]uint32, n)
		m.filter(keep, remap)
		w := 0
		for _, i := range order {
			if keep[i] {
				order[w] = remap[i]
				w++
			}
		}
		order = order[:w]
	}
	m.Order = order
	m.timeHash = nil
	rep.Cleaned = true
	rep.Kept = m.Len()
}

type rowKey struct {
	user, video uint32
	play, dur   int32
	date        int32
	th          uint32
	ts          int64
	wr          uint64
}

func (m *Interactions) key(i uint32) rowKey {
	return rowKey{m.User[i], m.Video[i], m.PlayMS[i], m.DurMS[i], m.Date[i], m.timeHash[i], m.TimeMS[i], math.Float64bits(m.WatchRatio[i])}
}

// markDuplicates clears keep for every row of run (same time and user, in file
// order) identical to an earlier row of the run, and returns how many.
func markDuplicates(m *Interactions, run []uint32, keep []bool) int {
	n := 0
	if len(run) <= 32 {
		for j := 1; j < len(run); j++ {
			kj := m.key(run[j])
			for i := 0; i < j; i++ {
				if keep[run[i]] && m.key(run[i]) == kj {
					keep[run[j]] = false
					n++
					break
				}
			}
		}
		return n
	}
	seen := make(map[rowKey]struct{}, len(run))
	for _, r := range run {
		k := m.key(r)
		if _, ok := seen[k]; ok {
			keep[r] = false
			n++
			continue
		}
		seen[k] = struct{}{}
	}
	return n
}

// filter keeps the rows i with keep[i], in order. If remap is not nil,
// remap[i] receives the new index of each kept row.
func (m *Interactions) filter(keep []bool, remap []uint32) {
	w := 0
	for i, k := range keep {
		if !k {
			continue
		}
		if remap != nil {
			remap[i] = uint32(w)
		}
		if w != i {
			m.User[w], m.Video[w], m.PlayMS[w], m.DurMS[w] = m.User[i], m.Video[i], m.PlayMS[i], m.DurMS[i]
			m.TimeMS[w], m.Date[w], m.WatchRatio[w] = m.TimeMS[i], m.Date[i], m.WatchRatio[i]
			if m.timeHash != nil {
				m.timeHash[w] = m.timeHash[i]
			}
		}
		w++
	}
	m.User, m.Video, m.PlayMS, m.DurMS = m.User[:w], m.Video[:w], m.PlayMS[:w], m.DurMS[:w]
	m.TimeMS, m.Date, m.WatchRatio = m.TimeMS[:w], m.Date[:w], m.WatchRatio[:w]
	if m.timeHash != nil {
		m.timeHash = m.timeHash[:w]
	}
}

// globalOrder returns the indices of the timed rows of m sorted by (TimeMS, User,
// index): an LSD radix sort on a packed (time - min, user) key, stable, so ties
// keep file order. It falls back to a comparison sort when the key does not fit
// in 64 bits.
func globalOrder(m *Interactions) []uint32 {
	n := m.Len()
	idx := make([]uint32, 0, n)
	minT, maxT := int64(math.MaxInt64), int64(math.MinInt64)
	var maxU uint32
	for i := range n {
		t := m.TimeMS[i]
		if t == NoTime {
			continue
		}
		idx = append(idx, uint32(i))
		minT = min(minT, t)
		maxT = max(maxT, t)
		maxU = max(maxU, m.User[i])
	}
	if len(idx) < 2 {
		return idx
	}
	ub := bits.Len32(maxU)
	tb := bits.Len64(uint64(maxT - minT))
	if maxT-minT < 0 || ub+tb > 64 {
		slices.SortStableFunc(idx, func(a, b uint32) int {
			if c := cmpInt64(m.TimeMS[a], m.TimeMS[b]); c != 0 {
				return c
			}
			return cmpInt64(int64(m.User[a]), int64(m.User[b]))
		})
		return idx
	}
	keys := make([]uint64, len(idx))
	for j, i := range idx {
		keys[j] = uint64(m.TimeMS[i]-minT)<<ub | uint64(m.User[i])
	}
	radixSortPairs(keys, idx, ub+tb)
	return idx
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// radixSortPairs sorts keys ascending in place, carrying vals along, stably
// (LSD, 11-bit digits over the low keyBits bits; passes where every key has the
// same digit are skipped).
func radixSortPairs(keys []uint64, vals []uint32, keyBits int) {
	const db = 11
	const nb = 1 << db
	n := len(keys)
	if n < 2 {
		return
	}
	origKeys, origVals := keys, vals
	k2 := make([]uint64, n)
	v2 := make([]uint32, n)
	var cnt [nb]int
	swapped := false
	for shift := 0; shift < keyBits; shift += db {
		clear(cnt[:])
		for _, k := range keys {
			cnt[(k>>shift)&(nb-1)]++
		}
		if cnt[(keys[0]>>shift)&(nb-1)] == n {
			continue
		}
		sum := 0
		for i, c := range cnt {
			cnt[i] = sum
			sum += c
		}
		for i, k := range keys {
			d := (k >> shift) & (nb - 1)
			p := cnt[d]
			cnt[d]++
			k2[p] = k
			v2[p] = vals[i]
		}
		keys, k2 = k2, keys
		vals, v2 = v2, vals
		swapped = !swapped
	}
	if swapped {
		copy(origKeys, keys)
		copy(origVals, vals)
	}
}
