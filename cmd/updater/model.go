package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/online"
	"github.com/streamrec/streamrec/internal/towers"
)

// waitModel waits until a model version is published and loads its items.
func waitModel(ctx context.Context, store *cache.Store, wait time.Duration, denseLR float64, log *slog.Logger) (online.Model, error) {
	deadline := time.Now().Add(wait)
	for {
		v, err := store.CurrentVersion(ctx)
		if err == nil {
			return loadModel(ctx, store, v, denseLR)
		}
		if !errors.Is(err, cache.ErrNoModel) {
			log.Warn("reading the current model version", "err", err)
		}
		if time.Now().After(deadline) {
			return online.Model{}, fmt.Errorf("no model version published in Redis after %v (run the ingestor's train first): %w", wait, err)
		}
		log.Info("waiting for a published model version")
		select {
		case <-ctx.Done():
			return online.Model{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func loadModel(ctx context.Context, store *cache.Store, version string, denseLR float64) (online.Model, error) {
	idx, err := cache.LoadItemIndex(ctx, store, version)
	if err != nil {
		return online.Model{}, fmt.Errorf("loading items of model %s: %w", version, err)
	}
	cal := idx.Meta().Calibration
	m := online.Model{Items: idx, GlobalMean: float32(cal.GlobalMean), Scale: float32(cal.Scale),
		TargetCap: float32(cal.Extra[towers.MetaTargetCap]), Trained: online.TrainedThroughOf(idx.Meta())}
	// The true offline base of every user: a switch or a rollback starts
	// from it, never from the serving records this updater overwrites.
	off, ok, err := store.GetOfflineUsers(ctx, version)
	if err != nil {
		return online.Model{}, fmt.Errorf("loading the offline user vectors of model %s: %w", version, err)
	}
	if ok {
		m.Offline = online.NewOfflineTable(off)
	}
	if denseLR <= 0 {
		return m, nil
	}
	blob, err := store.TowerWeights(ctx, version)
	if err != nil {
		return m, err
	}
	tw, err := towers.DecodeTowers(blob)
	if err != nil {
		return m, fmt.Errorf("decoding the towers of model %s: %w", version, err)
	}
	user := towers.FindTower(tw, "user")
	if user == nil {
		return m, fmt.Errorf("model %s has no user tower for dense mode", version)
	}
	feats, ok, err := store.GetUserFeatures(ctx, version)
	if err != nil {
		return m, err
	}
	if !ok {
		return m, fmt.Errorf("model %s was published without user features: dense mode needs them (publish with ingestor train)", version)
	}
	if m.Dense, err = online.NewDenseTower(user, feats, float32(denseLR)); err != nil {
		return m, fmt.Errorf("model %s: %w", version, err)
	}
	return m, nil
}

// followModel switches to each newly published model version and
// re-materialises the users it holds under it.
func followModel(ctx context.Context, store *cache.Store, upd *online.Updater, denseLR float64, log *slog.Logger) error {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		v, err := store.CurrentVersion(ctx)
		if err != nil {
			continue
		}
		if v == upd.Version() {
			followRegistered(ctx, store, upd, v, log)
			followCanary(ctx, store, upd, log)
			continue
		}
		m, err := loadModel(ctx, store, v, denseLR)
		if err != nil {
			log.Warn("loading a new model version", "version", v, "err", err)
			continue
		}
		start := time.Now()
		replayed := upd.Counters().HandoverReplayed
		upd.SetModel(m)
		if cv, _ := upd.Canary(); cv == v {
			upd.ClearCanary() // the canary was promoted: it is the current version now
		}
		n, err := upd.Rematerialize(ctx)
		if err != nil {
			log.Warn("re-materialising users under the new version; the rest follow at their next event", "version", v, "err", err)
		}
		log.Info("switched to a new model version", "version", v, "users_rematerialised", n,
			"events_reapplied", upd.Counters().HandoverReplayed-replayed, "took", time.Since(start).String())
	}
}

// followRegistered reloads the version's items when videos were registered
// after training (api POST /v1/admin/videos) since they were loaded, so that
// events on them are applied rather than counted as cold items.
func followRegistered(ctx context.Context, store *cache.Store, upd *online.Updater, v string, log *slog.Logger) {
	have := -1
	if x, ok := upd.Items().(*cache.ItemIndex); ok {
		have = x.Meta().Registered
	}
	n, err := store.RegisteredCount(ctx, v)
	if err != nil || n == have {
		return
	}
	idx, err := cache.LoadItemIndex(ctx, store, v)
	if err != nil {
		log.Warn("loading the registered videos", "version", v, "err", err)
		return
	}
	if upd.SetItems(idx) {
		log.Info("registered videos loaded", "version", v, "registered", idx.Meta().Registered, "items", idx.Len())
	}
}

// followCanary starts learning a new canary's share of the users under its
// version, or brings them back when the canary ended (rolled back; a
// promotion is a switch of the current version).
func followCanary(ctx context.Context, store *cache.Store, upd *online.Updater, log *slog.Logger) {
	have, _ := upd.Canary()
	c, err := store.CurrentCanary(ctx)
	switch {
	case errors.Is(err, cache.ErrNoCanary):
		if have == "" {
			return
		}
		upd.ClearCanary()
		log.Info("canary ended: its users are back on the current version", "canary", have)
	case err != nil:
		log.Warn("reading the canary", "err", err)
		return
	case c.Version == have || c.Baseline != upd.Version():
		return
	default:
		m, err := loadModel(ctx, store, c.Version, 0)
		if err != nil {
			log.Warn("loading the canary version", "version", c.Version, "err", err)
			return
		}
		if err := upd.SetCanary(m, c.Share); err != nil {
			log.Warn("the canary cannot run here", "version", c.Version, "err", err)
			return
		}
		log.Info("canary started: its share of the users learns under it", "canary", c.Version, "share", c.Share)
	}
	start := time.Now()
	n, err := upd.Rematerialize(ctx)
	if err != nil {
		log.Warn("re-materialising the canary's users; the rest follow at their next event", "err", err)
	}
	log.Info("canary users re-based", "users_rematerialised", n, "took", time.Since(start).String())
}
