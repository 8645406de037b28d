package kuairec

import (
	"math"
	"strconv"
	"unsafe"
)

// parseMatrixFast is the single-pass fast path of parseMatrixLine for the
// common row shape (unquoted, 8 fields, decimal ids and durations, a timestamp
// with at most 3 decimals or empty). It appends the row and returns true, or
// returns false without appending anything when the line needs the general
// path (which also produces the error for a bad row). Both paths give the same
// values (FuzzReadMatrix checks it).
func parseMatrixFast(ln []byte, m *Interactions) bool {
	i, n := 0, len(ln)
	var ints [4]uint64
	for f := range 4 {
		var v uint64
		st := i
		for i < n {
			c := ln[i] - '0'
			if c > 9 {
				break
			}
			v = v*10 + uint64(c)
			i++
		}
		if i == st || i-st > 9 || i >= n || ln[i] != ',' {
			return false
		}
		ints[f] = v
		i++
	}
	if ints[0] > math.MaxUint32 || ints[1] > math.MaxUint32 || ints[2] > math.MaxInt32 || ints[3] > math.MaxInt32 {
		return false
	}
	// time: hash up to the next comma.
	var th uint32
	if i < n && ln[i] != ',' {
		th = 2166136261
		for i < n && ln[i] != ',' {
			c := ln[i]
			if c == '"' {
				return false
			}
			th ^= uint32(c)
			th *= 16777619
			i++
		}
		if th == 0 {
			th = 1
		}
	}
	if i >= n {
		return false
	}
	i++
	// date: empty, or 8 digits with an optional ".0".
	var date uint64
	if i < n && ln[i] != ',' {
		st := i
		for i < n && ln[i] >= '0' && ln[i] <= '9' {
			date = date*10 + uint64(ln[i]-'0')
			i++
		}
		if i-st != 8 || date > 99991231 {
			return false
		}
		if i+1 < n && ln[i] == '.' && ln[i+1] == '0' {
			i += 2
		}
	}
	if i >= n || ln[i] != ',' {
		return false
	}
	i++
	// timestamp: empty, or digits with up to 3 decimals.
	ts := NoTime
	if i < n && ln[i] != ',' {
		var sec int64
		st := i
		for i < n && ln[i] >= '0' && ln[i] <= '9' {
			sec = sec*10 + int64(ln[i]-'0')
			i++
		}
		if i == st || i-st > 12 {
			return false
		}
		var ms int64
		if i < n && ln[i] == '.' {
			i++
			scale := int64(100)
			fs := i
			for i < n && ln[i] >= '0' && ln[i] <= '9' {
				ms += int64(ln[i]-'0') * scale
				scale /= 10
				i++
			}
			if i-fs > 3 {
				return false
			}
		}
		ts = sec*1000 + ms
	}
	if i >= n || ln[i] != ',' {
		return false
	}
	i++
	if i >= n {
		return false
	}
	w := ln[i:]
	for _, c := range w {
		if c == ',' || c == '"' {
			return false
		}
	}
	wr, err := strconv.ParseFloat(unsafe.String(&w[0], len(w)), 64)
	if err != nil || math.IsNaN(wr) || math.IsInf(wr, 0) || wr < 0 {
		return false
	}
	m.User = append(m.User, uint32(ints[0]))
	m.Video = append(m.Video, uint32(ints[1]))
	m.PlayMS = append(m.PlayMS, int32(ints[2]))
	m.DurMS = append(m.DurMS, int32(ints[3]))
	m.TimeMS = append(m.TimeMS, ts)
	m.Date = append(m.Date, int32(date))
	m.WatchRatio = append(m.WatchRatio, wr)
	m.timeHash = append(m.timeHash, th)
	return true
}
