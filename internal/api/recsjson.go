package api

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// The recommendations answer is written by appendRecommendations, a
// hand-written encoder of Recommendations that produces the bytes
// encoding/json (as Echo's c.JSON calls it) would, without reflection: the
// same field order, omitempty, float formatting and string escaping, and
// the trailing newline of json.Encoder (TestRecommendationsJSONMatches
// compares both on random answers). It was 8% of the API's CPU at
// saturation through c.JSON. The reference endpoint of the load harness
// (benchref.go) answers through the same encoder.

var jsonBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// writeRecommendations sends r as the 200 answer; with ?pretty, on a debug
// Echo or a value encoding/json refuses (a non-finite float), it goes
// through c.JSON as before.
func writeRecommendations(c echo.Context, r *Recommendations) error {
	if _, pretty := c.QueryParams()["pretty"]; pretty || c.Echo().Debug {
		return c.JSON(http.StatusOK, r)
	}
	bp := jsonBufPool.Get().(*[]byte)
	b, ok := appendRecommendations((*bp)[:0], r)
	if !ok {
		jsonBufPool.Put(bp)
		return c.JSON(http.StatusOK, r)
	}
	// With its length known, net/http sends the answer in one piece rather
	// than chunked (it does so by itself only below 2 KB).
	c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(b)))
	err := c.JSONBlob(http.StatusOK, b)
	if cap(b) <= 1<<16 {
		*bp = b
		jsonBufPool.Put(bp)
	}
	return err
}

// appendRecommendations appends r as encoding/json encodes it, and a
// newline; false if a float is not finite (encoding/json's error).
func appendRecommendations(b []byte, r *Recommendations) ([]byte, bool) {
	b = append(b, `{"user_id":`...)
	b = strconv.AppendUint(b, uint64(r.UserID), 10)
	b = append(b, `,"model_version":`...)
	b = appendJSONString(b, r.ModelVersion)
	if r.Canary {
		b = append(b, `,"canary":true`...)
	}
	b = append(b, `,"k":`...)
	b = strconv.AppendInt(b, int64(r.K), 10)
	if r.Candidates != "" {
		b = append(b, `,"candidates":`...)
		b = appendJSONString(b, r.Candidates)
	}
	if r.Fallback != "" {
		b = append(b, `,"fallback":`...)
		b = appendJSONString(b, r.Fallback)
	}
	if r.FallbackReason != "" {
		b = append(b, `,"fallback_reason":`...)
		b = appendJSONString(b, r.FallbackReason)
	}
	if r.EmbeddingUpdatedAtMs != nil {
		b = append(b, `,"embedding_updated_at_ms":`...)
		b = strconv.AppendInt(b, *r.EmbeddingUpdatedAtMs, 10)
	}
	if r.EmbeddingAgeMs != nil {
		b = append(b, `,"embedding_age_ms":`...)
		b = strconv.AppendInt(b, *r.EmbeddingAgeMs, 10)
	}
	if p := r.InputPosition; p != nil {
		b = append(b, `,"input_position":{"partition":`...)
		b = strconv.AppendInt(b, int64(p.Partition), 10)
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, p.Offset, 10)
		b = append(b, '}')
	}
	b = append(b, `,"exclude_watched":`...)
	b = strconv.AppendBool(b, r.ExcludeWatched)
	b = append(b, `,"excluded":`...)
	b = strconv.AppendInt(b, int64(r.Excluded), 10)
	b = append(b, `,"served_at_ms":`...)
	b = strconv.AppendInt(b, r.ServedAtMs, 10)
	if r.Items == nil {
		b = append(b, `,"items":null}`...)
		return append(b, '\n'), true
	}
	b = append(b, `,"items":[`...)
	ok := true
	for i := range r.Items {
		it := &r.Items[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"video_id":`...)
		b = strconv.AppendUint(b, uint64(it.VideoID), 10)
		b = append(b, `,"score":`...)
		b, ok = appendJSONFloat32(b, it.Score, ok)
		b = append(b, `,"predicted_watch_ratio":`...)
		b, ok = appendJSONFloat32(b, it.PredictedWatchRatio, ok)
		if it.Explored {
			b = append(b, `,"explored":true`...)
		}
		if it.Propensity != nil {
			b = append(b, `,"propensity":`...)
			b, ok = appendJSONFloat32(b, *it.Propensity, ok)
		}
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	return b, ok
}

// appendJSONFloat32 formats f as encoding/json's float32 encoder does
// (encode.go, floatEncoder: the shortest repr, exponent form below 1e-6 and
// from 1e21, "e-07" cleaned to "e-7"); ok becomes false on NaN or Inf.
func appendJSONFloat32(b []byte, f float32, ok bool) ([]byte, bool) {
	v := float64(f)
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return b, false
	}
	fmt := byte('f')
	if a := math.Abs(v); a != 0 && (float32(a) < 1e-6 || float32(a) >= 1e21) {
		fmt = 'e'
	}
	b = strconv.AppendFloat(b, v, fmt, -1, 32)
	if fmt == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, ok
}

// appendJSONString appends s quoted: verbatim when it holds only printable
// ASCII that encoding/json leaves alone (not ", \, <, >, &), else through
// encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
