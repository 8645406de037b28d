package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// timeFlag is a flag.Value for a point in time: RFC 3339 with an offset
// ("2020-08-01T00:00:00+08:00", "2020-07-31T16:00:00Z") or Unix seconds
// ("1596211200", "1596211200.5"). The zero value means unset.
type timeFlag struct {
	ms  int64 // Unix ms; 0 when unset
	set bool
	raw string
}

func (f *timeFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return f.raw
}

func (f *timeFlag) Set(s string) error {
	ms, err := parseTime(s)
	if err != nil {
		return err
	}
	f.ms, f.set, f.raw = ms, true, s
	return nil
}

// parseTime parses RFC 3339 with an offset, or Unix seconds (integer or
// decimal), into Unix milliseconds (> 0).
func parseTime(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty time")
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		if t.UnixMilli() <= 0 {
			return 0, fmt.Errorf("time %q: not after 1970", s)
		}
		return t.UnixMilli(), nil
	}
	if v, err := strconv.ParseFloat(s, 64); err == nil && !strings.ContainsAny(s, "eEnNiI") {
		if v <= 0 || v > 1e11 || math.IsNaN(v) {
			return 0, fmt.Errorf("time %q: Unix seconds out of range", s)
		}
		return int64(math.Round(v * 1000)), nil
	}
	return 0, fmt.Errorf("time %q: want RFC 3339 with an offset (2020-08-01T00:00:00+08:00) or Unix seconds", s)
}

// fmtMs formats Unix ms as RFC 3339 in UTC with milliseconds.
func fmtMs(ms int64) string {
	if ms <= 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
