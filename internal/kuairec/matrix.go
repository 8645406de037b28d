package kuairec

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strconv"
	"sync"
	"unsafe"
)

// MatrixHeader is the exact header of big_matrix.csv and small_matrix.csv.
const MatrixHeader = "user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio"

// NoTime is Interactions.TimeMS of a row whose timestamp cell is empty (small
// matrix rows collected in the forced-exposure stage; only LoadEval keeps them).
const NoTime int64 = math.MinInt64

var matrixColumns = [8]string{"user_id", "video_id", "play_duration", "video_duration", "time", "date", "timestamp", "watch_ratio"}

// Interactions holds interaction rows as a struct of arrays: row i is
// (User[i], Video[i], PlayMS[i], DurMS[i], TimeMS[i], Date[i], WatchRatio[i]).
// About 36 bytes per row; the 12.5M-row big matrix takes ~450 MB.
//
// After cleaning (Load), rows are in file order and Order lists the timed rows in
// global replay order: ascending TimeMS, ties by User, then by file order. Order is
// nil for a matrix that was read but not cleaned.
type Interactions struct {
	User  []uint32
	Video []uint32
	// PlayMS is play_duration and DurMS video_duration, in milliseconds.
	PlayMS []int32
	DurMS  []int32
	// TimeMS is the timestamp column in Unix milliseconds (exact: the file has
	// millisecond precision), or NoTime when the cell is empty.
	TimeMS []int64
	// Date is the date column as YYYYMMDD (a log-partition label, not always
	// the event's local date), 0 when empty.
	Date []int32
	// WatchRatio is the watch_ratio column, parsed to the nearest float64, so it
	// round-trips exactly with strconv.FormatFloat(x, 'g', -1, 64).
	WatchRatio []float64
	// Order is the global replay order (see the type comment).
	Order []uint32

	// timeHash is FNV-1a of the raw time text (0 when empty), used only to
	// compare the time column when dropping exact duplicates; nil after cleaning.
	timeHash []uint32
}

// Len returns the number of rows.
func (m *Interactions) Len() int { return len(m.User) }

func (m *Interactions) grow(n int) {
	m.User = make([]uint32, 0, n)
	m.Video = make([]uint32, 0, n)
	m.PlayMS = make([]int32, 0, n)
	m.DurMS = make([]int32, 0, n)
	m.TimeMS = make([]int64, 0, n)
	m.Date = make([]int32, 0, n)
	m.WatchRatio = make([]float64, 0, n)
	m.timeHash = make([]uint32, 0, n)
}

func (m *Interactions) appendAll(o *Interactions) {
	m.User = append(m.User, o.User...)
	m.Video = append(m.Video, o.Video...)
	m.PlayMS = append(m.PlayMS, o.PlayMS...)
	m.DurMS = append(m.DurMS, o.DurMS...)
	m.TimeMS = append(m.TimeMS, o.TimeMS...)
	m.Date = append(m.Date, o.Date...)
	m.WatchRatio = append(m.WatchRatio, o.WatchRatio...)
	m.timeHash = append(m.timeHash, o.timeHash...)
}

func (m *Interactions) reset() {
	m.User, m.Video, m.PlayMS, m.DurMS = m.User[:0], m.Video[:0], m.PlayMS[:0], m.DurMS[:0]
	m.TimeMS, m.Date, m.WatchRatio, m.timeHash = m.TimeMS[:0], m.Date[:0], m.WatchRatio[:0], m.timeHash[:0]
}

// RowError describes one bad row: the file, the 1-based line (physical line in
// the file, header = line 1), the 1-based column and its name, and the reason.
type RowError struct {
	File   string
	Line   int
	Column int    // 1-based field number; 0 when the row as a whole is bad
	Name   string // column name, "" when Column is 0
	Reason string // short, stable reason used as the count key, e.g. "bad integer"
	Text   string // the offending text, truncated to 64 bytes
}

func (e *RowError) Error() string {
	if e.Column == 0 {
		return fmt.Sprintf("%s:%d: %s: %q", e.File, e.Line, e.Reason, e.Text)
	}
	return fmt.Sprintf("%s:%d: column %d (%s): %s: %q", e.File, e.Line, e.Column, e.Name, e.Reason, e.Text)
}

// Key is the count key of the error in FileReport.BadRows: "column: reason".
func (e *RowError) Key() string {
	if e.Name == "" {
		return e.Reason
	}
	return e.Name + ": " + e.Reason
}

func clip(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// ErrHeader is wrapped by load errors for a file whose header is not the expected one.
var ErrHeader = errors.New("unexpected header")

// chunkSize is the read size of ReadMatrix (a var so that tests can shrink it).
var chunkSize = 4 << 20

type matrixChunk struct {
	seq  int
	data []byte // whole lines, each ending in '\n' (the last may not)
}

type matrixResult struct {
	seq   int
	rows  Interactions
	lines int
	bad   []RowError // Line relative to the chunk's first line (0-based)
	nBad  map[string]int
	buf   []byte
}

// ReadMatrix reads a big_matrix.csv or small_matrix.csv stream (header included)
// with a hand-written parser, in parallel over workers goroutines (<= 0:
// GOMAXPROCS). name is used in errors. sizeHint (bytes, 0 if unknown) pre-sizes
// the columns. Bad rows are skipped and reported in rep; rows with empty time,
// date or timestamp cells are kept (TimeMS = NoTime, Date = 0) so that cleaning
// can count them. onBytes, if not nil, is called with the bytes consumed so far.
func ReadMatrix(r io.Reader, name string, sizeHint int64, workers int, onBytes func(int64)) (*Interactions, *FileReport, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	rep := newFileReport(name)
	free := make(chan []byte, workers+2)
	for range workers + 2 {
		free <- make([]byte, chunkSize)
	}
	chunks := make(chan matrixChunk, workers)
	results := make(chan *matrixResult, workers)

	// Reader: split the stream into chunks of whole lines.
	var readErr error
	var headerErr error
	go func() {
		defer close(chunks)
		var carry []byte
		seq := 0
		var total int64
		first := true
		for {
			buf := <-free
			buf = buf[:cap(buf)]
			n := copy(buf, carry)
			if n == len(buf) { // a line longer than the chunk: grow
				nb := make([]byte, 2*len(buf))
				copy(nb, buf)
				buf = nb
			}
			m, err := io.ReadFull(r, buf[n:])
			total += int64(m)
			if onBytes != nil {
				onBytes(total)
			}
			data := buf[:n+m]
			eof := err == io.EOF || err == io.ErrUnexpectedEOF
			if err != nil && !eof {
				readErr = fmt.Errorf("reading %s: %w", name, err)
				return
			}
			if first {
				first = false
				nl := bytes.IndexByte(data, '\n')
				var h []byte
				if nl < 0 {
					h, data = data, nil
				} else {
					h, data = data[:nl], data[nl+1:]
				}
				h = bytes.TrimSuffix(bytes.TrimPrefix(h, []byte("\xef\xbb\xbf")), []byte("\r"))
				if string(h) != MatrixHeader {
					headerErr = fmt.Errorf("%s: line 1: %w: %q", name, ErrHeader, clip(h))
					return
				}
			}
			cut := len(data)
			if !eof {
				cut = bytes.LastIndexByte(data, '\n') + 1
			}
			carry = append(carry[:0], data[cut:]...)
			chunks <- matrixChunk{seq: seq, data: data[:cut]}
			seq++
			if eof {
				return
			}
		}
	}()

	var wg sync.WaitGroup
	pool := sync.Pool{New: func() any { return &matrixResult{} }}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range chunks {
				res := pool.Get().(*matrixResult)
				res.seq = c.seq
				parseMatrixChunk(c.data, res)
				res.buf = c.data
				results <- res
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	out := &Interactions{}
	if sizeHint > 0 {
		out.grow(int(sizeHint/78) + 1024)
	}
	pending := map[int]*matrixResult{}
	next := 0
	line := 1 // lines consumed so far (the header)
	for res := range results {
		pending[res.seq] = res
		for {
			r, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			out.appendAll(&r.rows)
			for k, v := range r.nBad {
				rep.BadRows[k] += v
			}
			for _, e := range r.bad {
				e.Line += line + 1
				e.File = name
				rep.addError(e)
			}
			line += r.lines
			if cap(r.buf) >= chunkSize {
				free <- r.buf[:cap(r.buf)]
			}
			r.rows.reset()
			r.bad = r.bad[:0]
			clear(r.nBad)
			pool.Put(r)
		}
	}
	if headerErr != nil {
		return nil, nil, headerErr
	}
	if readErr != nil {
		return nil, nil, readErr
	}
	rep.Read = out.Len()
	rep.Rows = rep.Read
	for _, v := range rep.BadRows {
		rep.Rows += v
	}
	return out, rep, nil
}

// parseMatrixChunk parses whole lines of a matrix file into res.
func parseMatrixChunk(data []byte, res *matrixResult) {
	if res.nBad == nil {
		res.nBad = map[string]int{}
	}
	res.lines = 0
	est := len(data)/78 + 16
	if cap(res.rows.User) < est {
		res.rows.grow(est)
	}
	lineNo := 0
	for len(data) > 0 {
		nl := bytes.IndexByte(data, '\n')
		var ln []byte
		if nl < 0 {
			ln, data = data, nil
		} else {
			ln, data = data[:nl], data[nl+1:]
		}
		lineNo++
		res.lines++
		if len(ln) > 0 && ln[len(ln)-1] == '\r' {
			ln = ln[:len(ln)-1]
		}
		if len(ln) == 0 {
			continue // a blank line is not a row (pandas skips them too)
		}
		if parseMatrixFast(ln, &res.rows) {
			continue
		}
		if e := parseMatrixLine(ln, &res.rows); e != nil {
			e.Line = lineNo - 1
			res.nBad[e.Key()]++
			if len(res.bad) < maxErrors {
				res.bad = append(res.bad, *e)
			}
		}
	}
}

// parseMatrixLine parses one line (without its newline) and appends it to m.
// It returns a RowError (Line unset) for a bad row and appends nothing then.
func parseMatrixLine(ln []byte, m *Interactions) *RowError {
	if bytes.IndexByte(ln, '"') >= 0 {
		return parseQuotedMatrixLine(ln, m)
	}
	var f [8][]byte
	nf := 0
	start := 0
	for i := 0; i < len(ln); i++ {
		if ln[i] == ',' {
			if nf < 8 {
				f[nf] = ln[start:i]
			}
			nf++
			start = i + 1
		}
	}
	if nf < 8 {
		f[nf] = ln[start:]
	}
	nf++
	if nf != 8 {
		return &RowError{Reason: fmt.Sprintf("want 8 fields, got %d", nf), Text: clip(ln)}
	}
	return appendFields(&f, m)
}

func parseQuotedMatrixLine(ln []byte, m *Interactions) *RowError {
	cr := csv.NewReader(bytes.NewReader(ln))
	cr.FieldsPerRecord = -1
	rec, err := cr.Read()
	if err != nil {
		return &RowError{Reason: "bad quoting", Text: clip(ln)}
	}
	if len(rec) != 8 {
		return &RowError{Reason: fmt.Sprintf("want 8 fields, got %d", len(rec)), Text: clip(ln)}
	}
	var f [8][]byte
	for i, s := range rec {
		f[i] = []byte(s)
	}
	return appendFields(&f, m)
}

func colErr(col int, reason string, b []byte) *RowError {
	return &RowError{Column: col + 1, Name: matrixColumns[col], Reason: reason, Text: clip(b)}
}

func appendFields(f *[8][]byte, m *Interactions) *RowError {
	u, ok := parseUintField(f[0], math.MaxUint32)
	if !ok {
		return colErr(0, "bad id", f[0])
	}
	v, ok := parseUintField(f[1], math.MaxUint32)
	if !ok {
		return colErr(1, "bad id", f[1])
	}
	play, ok := parseUintField(f[2], math.MaxInt32)
	if !ok {
		return colErr(2, "bad integer", f[2])
	}
	dur, ok := parseUintField(f[3], math.MaxInt32)
	if !ok {
		return colErr(3, "bad integer", f[3])
	}
	var date uint64
	if len(f[5]) > 0 {
		date, ok = parseUintField(f[5], 99991231)
		if !ok {
			return colErr(5, "bad date", f[5])
		}
	}
	ts := NoTime
	if len(f[6]) > 0 {
		ts, ok = parseTimestampMS(f[6])
		if !ok {
			return colErr(6, "bad timestamp", f[6])
		}
	}
	if len(f[7]) == 0 {
		return colErr(7, "empty", f[7])
	}
	wr, err := strconv.ParseFloat(unsafe.String(&f[7][0], len(f[7])), 64)
	if err != nil || math.IsNaN(wr) || math.IsInf(wr, 0) || wr < 0 {
		return colErr(7, "bad watch ratio", f[7])
	}
	var th uint32
	if len(f[4]) > 0 {
		th = 2166136261
		for _, c := range f[4] {
			th ^= uint32(c)
			th *= 16777619
		}
		if th == 0 {
			th = 1
		}
	}
	m.User = append(m.User, uint32(u))
	m.Video = append(m.Video, uint32(v))
	m.PlayMS = append(m.PlayMS, int32(play))
	m.DurMS = append(m.DurMS, int32(dur))
	m.TimeMS = append(m.TimeMS, ts)
	m.Date = append(m.Date, int32(date))
	m.WatchRatio = append(m.WatchRatio, wr)
	m.timeHash = append(m.timeHash, th)
	return nil
}

// parseUintField parses a non-negative decimal integer, allowing a zero
// fraction (".0", as pandas writes integer columns that hold NaNs), up to max.
// Empty input is not ok.
func parseUintField(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	i := 0
	for ; i < len(b); i++ {
		c := b[i] - '0'
		if c > 9 {
			break
		}
		n = n*10 + uint64(c)
		if n > max {
			return 0, false
		}
	}
	if i == 0 {
		return 0, false
	}
	if i < len(b) {
		if b[i] != '.' || i+1 == len(b) {
			return 0, false
		}
		for _, c := range b[i+1:] {
			if c != '0' {
				return 0, false
			}
		}
	}
	return n, true
}

// parseTimestampMS parses Unix seconds with an optional fraction ("1593878903.438",
// "1593882025.5", "-3", "1.599304e+09") to milliseconds, exactly when the text
// has at most 3 decimals, rounded to the nearest millisecond otherwise.
func parseTimestampMS(b []byte) (int64, bool) {
	neg := false
	i := 0
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		i = 1
	}
	var sec int64
	nd := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		sec = sec*10 + int64(b[i]-'0')
		nd++
		if nd > 12 {
			return slowTimestamp(b)
		}
	}
	var ms int64
	if i < len(b) && b[i] == '.' {
		i++
		scale := int64(100)
		fd := 0
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			fd++
			if fd > 3 {
				return slowTimestamp(b)
			}
			ms += int64(b[i]-'0') * scale
			scale /= 10
		}
		if nd == 0 && fd == 0 {
			return 0, false
		}
	} else if nd == 0 {
		return 0, false
	}
	if i != len(b) {
		return slowTimestamp(b)
	}
	v := sec*1000 + ms
	if neg {
		v = -v
	}
	return v, true
}

func slowTimestamp(b []byte) (int64, bool) {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.Abs(f) > 1e14 {
		return 0, false
	}
	return int64(math.Round(f * 1000)), true
}
