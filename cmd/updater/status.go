package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/online"
	"github.com/streamrec/streamrec/internal/stream"
)

// Status is the updater's status record, written to Redis every second
// (cache.Store.PutStatus, kind "updater", a 10 s TTL) and served by the
// API at GET /v1/status for the dashboard.
type Status struct {
	Member       string  `json:"member"`
	Group        string  `json:"group"`
	AtMs         int64   `json:"at_ms"`
	ModelVersion string  `json:"model_version"`
	Applied      uint64  `json:"events_applied"`
	Users        int     `json:"users"`
	LagMessages  int64   `json:"lag_messages"`
	FreshP50S    float64 `json:"freshness_p50_seconds"`
	FreshP99S    float64 `json:"freshness_p99_seconds"`
}

// publishStatus writes the status every interval until ctx ends; a failed
// write is logged at debug (the dashboard then shows the member as gone).
func publishStatus(ctx context.Context, store *cache.Store, u *online.Updater, c *stream.Consumer, member, group string, interval time.Duration, log *slog.Logger) error {
	fresh := &quantileCache{r: u.Freshness()}
	host, _ := os.Hostname()
	if member == "" {
		member = host + "-" + strconv.Itoa(os.Getpid())
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		var lag int64
		for _, n := range c.Stats().PartitionLag {
			lag += n
		}
		st := Status{Member: member, Group: group, AtMs: time.Now().UnixMilli(), Applied: u.Counters().Applied, Users: u.Users(),
			LagMessages: lag, FreshP50S: fresh.get(0), FreshP99S: fresh.get(1)}
		st.ModelVersion = u.Version()
		js, _ := json.Marshal(st)
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		if err := store.PutStatus(wctx, "updater", member, js, 10*interval); err != nil {
			log.Debug("writing the updater's status", "err", err)
		}
		cancel()
	}
}
