package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

var _ ModelSource = (*Store)(nil)

// ModelSource is what ItemCache needs from a store; *Store implements it.
type ModelSource interface {
	ItemSource
	// CurrentVersion returns the current model version, or ErrNoModel.
	CurrentVersion(ctx context.Context) (string, error)
}

// ItemCache holds the ItemIndex of the current model version and swaps it
// whole, atomically, when a new version is published. The zero value is an
// empty cache, ready to use. All methods are safe for concurrent use; a
// reader that took an *ItemIndex keeps using that version until it asks
// again, so one request never mixes versions.
type ItemCache struct {
	// Extend, if set, is called by Refresh with each newly loaded index
	// before it is installed (readers never see it half-extended); it may
	// Attach serving data of the same version (tower weights, features). An
	// error keeps the old index, and the next Refresh tries again. Set it
	// before the first Refresh.
	Extend func(ctx context.Context, x *ItemIndex) error

	cur       atomic.Pointer[ItemIndex]
	refreshMu sync.Mutex // serialises Refresh: one load at a time
}

// Index returns the current index, or nil before the first load.
func (c *ItemCache) Index() *ItemIndex { return c.cur.Load() }

// Swap installs x (which may be nil) and returns the index it replaced.
func (c *ItemCache) Swap(x *ItemIndex) *ItemIndex { return c.cur.Swap(x) }

// Refresh loads the source's current version if the cache holds another one
// (or none), and swaps it in. It reports whether it swapped. With no model
// published it returns ErrNoModel (wrapped) and keeps the cache as it is.
func (c *ItemCache) Refresh(ctx context.Context, src ModelSource) (bool, error) {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	v, err := src.CurrentVersion(ctx)
	if err != nil {
		return false, fmt.Errorf("refreshing item cache: %w", err)
	}
	if old := c.cur.Load(); old != nil && old.Version() == v {
		// The same version: reload only if videos were registered since.
		rc, ok := src.(interface {
			RegisteredCount(ctx context.Context, version string) (int, error)
		})
		if !ok {
			return false, nil
		}
		n, err := rc.RegisteredCount(ctx, v)
		if err != nil {
			return false, fmt.Errorf("refreshing item cache: %w", err)
		}
		if n == old.Meta().Registered {
			return false, nil
		}
	}
	x, err := LoadItemIndex(ctx, src, v)
	if err != nil {
		return false, fmt.Errorf("refreshing item cache: %w", err)
	}
	if c.Extend != nil {
		if err := c.Extend(ctx, x); err != nil {
			return false, fmt.Errorf("refreshing item cache: extending version %s: %w", v, err)
		}
	}
	c.cur.Store(x)
	return true, nil
}

// Follow keeps the cache on the store's current version until ctx is done:
// it refreshes at once, on every model-update notice and every poll interval
// (pub/sub is at most once; polling covers lost notices and a Redis flush).
// Errors are logged and retried at the next tick; the cache keeps serving
// the version it has. It returns nil when ctx is cancelled. logger may be nil.
func (c *ItemCache) Follow(ctx context.Context, s *Store, poll time.Duration, logger *slog.Logger) error {
	if poll <= 0 {
		return fmt.Errorf("%w: item cache poll interval %v", ErrInvalid, poll)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "item-cache")
	var sub *ModelSubscription
	defer func() {
		if sub != nil {
			_ = sub.Close()
		}
	}()
	refresh := func(why string) {
		if sub == nil {
			var err error
			if sub, err = s.SubscribeModelUpdates(ctx); err != nil && ctx.Err() == nil {
				logger.Warn("subscribing to model updates; polling only", "err", err)
			}
		}
		swapped, err := c.Refresh(ctx, s)
		switch {
		case err != nil && errors.Is(err, ErrNoModel):
			logger.Debug("no model published yet")
		case err != nil && ctx.Err() == nil:
			logger.Warn("refreshing item cache", "err", err, "trigger", why)
		case swapped:
			x := c.Index()
			logger.Info("item index swapped", "version", x.Version(), "items", x.Len(), "dim", x.Dim(), "trigger", why)
		}
	}
	refresh("start")
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		var updates <-chan ModelUpdate
		if sub != nil {
			updates = sub.Updates()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			refresh("poll")
		case _, ok := <-updates:
			if !ok {
				sub = nil
			}
			refresh("notice")
		}
	}
}

// Attach attaches v to the index: call it only before the index is shared
// (from ItemCache.Extend). Attached returns it.
func (x *ItemIndex) Attach(v any) { x.extra = v }

// Attached returns what Attach attached, or nil.
func (x *ItemIndex) Attached() any { return x.extra }

// IsRegistered reports whether id is a video registered after training
// (Store.RegisterItem) rather than a published item of the version.
func (x *ItemIndex) IsRegistered(id uint32) bool { return slices.Contains(x.meta.RegisteredIDs, id) }
