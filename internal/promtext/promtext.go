// Package promtext reads single samples from a Prometheus text exposition
// (/metrics): what the demo, the bench harnesses and the tests need to watch a
// running service from outside, without a Prometheus server.
package promtext

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Value returns the value of the unlabelled sample name in a text exposition.
func Value(body, name string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f, true
			}
		}
	}
	return 0, false
}

var client = &http.Client{Timeout: 5 * time.Second}

// Scrape fetches http://addr/metrics and returns the unlabelled sample name,
// or -1 when the page or the sample is not there.
func Scrape(addr, name string) float64 {
	body, ok := ScrapeBody(addr)
	if !ok {
		return -1
	}
	if v, ok := Value(body, name); ok {
		return v
	}
	return -1
}

// ScrapeBody returns the text of addr's /metrics, or false when it cannot be
// read; read several values from one scrape with Value.
func ScrapeBody(addr string) (string, bool) {
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", false
	}
	return string(b), true
}
