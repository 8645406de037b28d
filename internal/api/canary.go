package api

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/streamrec/streamrec/internal/cache"
)

// Canaries holds the item index of the running canary (cache.Canary), if
// any: the users of its share (cache.InCanary) are served from it, with
// their records under its version (the updater learns them there). Safe for
// concurrent use; nil serves nobody.
type Canaries struct {
	Store  *cache.Store
	Extend func(ctx context.Context, x *cache.ItemIndex) error // the cold start's, as for the current version

	items cache.ItemCache
	share atomic.Uint64 // float64 bits; 0: no canary
	init  bool
}

// canarySource is the store with the canary's version as its "current" one.
type canarySource struct {
	*cache.Store
	version string
}

func (c canarySource) CurrentVersion(context.Context) (string, error) { return c.version, nil }

// Refresh loads the running canary's index (or drops it when none runs).
func (c *Canaries) Refresh(ctx context.Context) error {
	if !c.init {
		c.items.Extend, c.init = c.Extend, true
	}
	cur, err := c.Store.CurrentCanary(ctx)
	if errors.Is(err, cache.ErrNoCanary) {
		c.share.Store(0)
		c.items.Swap(nil)
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := c.items.Refresh(ctx, canarySource{c.Store, cur.Version}); err != nil {
		return err
	}
	c.share.Store(math.Float64bits(cur.Share))
	return nil
}

// Follow refreshes every poll until ctx ends (errors are logged and retried).
func (c *Canaries) Follow(ctx context.Context, poll time.Duration, log *slog.Logger) error {
	t := time.NewTicker(poll)
	defer t.Stop()
	var last string
	for {
		if err := c.Refresh(ctx); err != nil {
			log.Warn("reading the canary", "err", err)
		} else if v := c.version(); v != last {
			log.Info("canary", "version", v, "share", math.Float64frombits(c.share.Load()))
			last = v
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (c *Canaries) version() string {
	if x := c.items.Index(); x != nil && c.share.Load() != 0 {
		return x.Version()
	}
	return ""
}

// For returns the canary's index when user uid is in its share, else nil.
func (c *Canaries) For(uid uint32) *cache.ItemIndex {
	if c == nil {
		return nil
	}
	share := math.Float64frombits(c.share.Load())
	if share == 0 || !cache.InCanary(uid, share) {
		return nil
	}
	return c.items.Index()
}
