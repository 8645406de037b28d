package kuairec

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// maxErrors is how many RowErrors a FileReport keeps per file (all are counted).
const maxErrors = 20

// FileReport is what happened to one file: rows read, bad rows by reason, and for
// the interaction matrices what cleaning dropped per rule.
type FileReport struct {
	File    string
	Missing bool // the file is absent (only optional files may be)
	// Rows is the number of data rows seen (good + bad), Read the rows parsed.
	Rows, Read int
	// BadRows counts skipped rows by RowError.Key ("column: reason").
	BadRows map[string]int
	// Errors holds the first bad rows (at most 20), in file order.
	Errors []*RowError

	// Cleaning, for the matrices (Cleaned is false for other files).
	Cleaned bool
	// DroppedMissing: rows with an empty cell (the seed's dropna).
	DroppedMissing int
	// KeptUntimed: rows whose only empty cells are time, date and timestamp,
	// kept by LoadEval (they are dropped as missing by Load).
	KeptUntimed int
	// DroppedNonPositiveTime: rows whose timestamp is <= 0.
	DroppedNonPositiveTime int
	// DroppedDuplicates: rows identical in all 8 columns to an earlier row.
	DroppedDuplicates int
	// Kept is the number of rows after cleaning.
	Kept int
	// Notes are human-readable remarks on what was done to the file.
	Notes []string
	// Elapsed is the wall time spent reading (and cleaning) the file.
	Elapsed time.Duration
}

func newFileReport(name string) *FileReport {
	return &FileReport{File: name, BadRows: map[string]int{}}
}

func (r *FileReport) addError(e RowError) {
	if len(r.Errors) < maxErrors {
		r.Errors = append(r.Errors, &e)
	}
}

// Bad returns the total number of bad rows.
func (r *FileReport) Bad() int {
	n := 0
	for _, v := range r.BadRows {
		n += v
	}
	return n
}

// Report is the load report of a whole folder, one FileReport per file in load order.
type Report struct {
	Dir   string
	Files []*FileReport
}

// File returns the report of the named file, or nil.
func (r *Report) File(name string) *FileReport {
	for _, f := range r.Files {
		if f.File == name {
			return f
		}
	}
	return nil
}

// WriteText prints the report for humans.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "KuaiRec folder %s\n", r.Dir)
	for _, f := range r.Files {
		if f.Missing {
			fmt.Fprintf(w, "  %-30s absent (optional)\n", f.File)
			continue
		}
		fmt.Fprintf(w, "  %-30s %d rows, %d read, %d bad  (%s)\n", f.File, f.Rows, f.Read, f.Bad(), f.Elapsed.Round(time.Millisecond))
		keys := make([]string, 0, len(f.BadRows))
		for k := range f.BadRows {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "      bad: %-40s %d\n", k, f.BadRows[k])
		}
		for i, e := range f.Errors {
			if i == 3 {
				fmt.Fprintf(w, "      ... (%d more kept in the report)\n", len(f.Errors)-3)
				break
			}
			fmt.Fprintf(w, "      e.g. %v\n", e)
		}
		if f.Cleaned {
			fmt.Fprintf(w, "      cleaning: dropped %d with missing values, %d with timestamp <= 0, %d exact duplicates; kept %d",
				f.DroppedMissing, f.DroppedNonPositiveTime, f.DroppedDuplicates, f.Kept)
			if f.KeptUntimed > 0 {
				fmt.Fprintf(w, " (incl. %d untimed)", f.KeptUntimed)
			}
			fmt.Fprintln(w)
		}
		for _, n := range f.Notes {
			fmt.Fprintf(w, "      note: %s\n", strings.TrimSpace(n))
		}
	}
}
