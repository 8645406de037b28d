package modellog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/streamrec/streamrec/internal/cache"
)

// registeredKey is the hash of the videos registered after training (see
// cache.Store.RegisterItem), followed between versions' dumps.
const registeredKey = "newitems"

// MarkerName is the Restorer's Redis marker (cache.Store.SetMarker): present
// while Redis holds what the log holds; gone after a flush.
const MarkerName = "model-log"

// Restorer keeps Redis and the model log in step, in both directions:
//
//   - Redis lost the model (its marker is gone: a FLUSHALL, a restart
//     without persistence): Restore writes back, from the log, the current
//     and previous versions (every key: items, tower, user features,
//     offline user vectors, popularity, candidate sets in the meta,
//     registered videos), then the version pointers, then each version's
//     offline serving record of every user that has none (write if absent:
//     an online embedding that the updater rebuilt from its changelog
//     first is never replaced). Everything is written only where absent, so
//     a restore is idempotent and never overwrites what was written since.
//   - Redis holds the model: Backup copies to the log what the log lacks:
//     a current or previous version it does not hold (a version published
//     by an ingestor without --model-topic), videos registered since
//     (the API's POST /v1/admin/videos), the pointers after a rollback; and
//     deletes from the log the versions Redis no longer points at.
//
// Run does both, on every model-update notice and every interval.
type Restorer struct {
	Store *cache.Store
	Log   *Log
	// MarkerTTL bounds the marker's life without a live Restorer (touched
	// every Every). Default 1h.
	MarkerTTL time.Duration
	// Every is the check interval of Run. Default 1s.
	Every time.Duration
	// UserBatch is the number of user records per Redis pipeline, and
	// Writers how many pipelines are in flight. Defaults 2000 and 2 (Redis, single-threaded, is the bound).
	UserBatch, Writers int
	Logger             *slog.Logger

	state   State
	restore bool // the marker was found gone; cleared by a complete restore
}

// Report is what one Restore wrote.
type Report struct {
	Versions []string `json:"versions"`
	// Keys are the version keys and hash fields written (absent before).
	Keys int `json:"keys"`
	// PointersSet: the pointers were written (Redis had no current version).
	PointersSet bool `json:"pointers_set"`
	// Users are the offline serving records written (the others were there).
	Users int `json:"users"`
	// ModelAt is when the pointers were set (the model is servable): from
	// the start of Restore; Took is the whole restore.
	ModelAt time.Duration `json:"model_at_ns"`
	Took    time.Duration `json:"took_ns"`
}

func (r *Restorer) defaults() {
	if r.MarkerTTL <= 0 {
		r.MarkerTTL = time.Hour
	}
	if r.Every <= 0 {
		r.Every = time.Second
	}
	if r.UserBatch <= 0 {
		r.UserBatch = 2000
	}
	if r.Writers <= 0 {
		r.Writers = 2
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
}

// CatchUp reads what the log gained since the last call.
func (r *Restorer) CatchUp(ctx context.Context) error {
	_, err := r.Log.CatchUp(ctx, &r.state)
	return err
}

// Restore writes the log's model back into Redis (see Restorer), reading
// the log first. It is safe to run while other writers write Redis.
func (r *Restorer) Restore(ctx context.Context) (Report, error) {
	r.defaults()
	start := time.Now()
	var rep Report
	if err := r.CatchUp(ctx); err != nil {
		return rep, err
	}
	p, ok, err := r.state.Pointers()
	if err != nil || !ok {
		return rep, err // nothing to restore (an empty log) or a bad record
	}
	versions := []string{p.Current}
	if p.Previous != "" {
		versions = append(versions, p.Previous)
	}
	manifests := map[string]Manifest{}
	for _, v := range versions {
		d, m, err := r.state.Dump(v)
		if err != nil && v == p.Previous {
			// The current version alone is worth serving: no rollback target.
			r.Logger.Warn("the previous version cannot be restored from the model log; restoring the current one alone", "version", v, "err", err)
			versions, p.Previous = versions[:1], ""
			break
		}
		if err != nil {
			return rep, err
		}
		n, err := r.Store.RestoreVersion(ctx, d)
		if err != nil {
			return rep, err
		}
		rep.Keys += n
		rep.Versions = append(rep.Versions, v)
		manifests[v] = m
	}
	set, err := r.Store.RestorePointers(ctx, p.Current, p.Previous)
	if err != nil && !errors.Is(err, cache.ErrAfterFlip) {
		return rep, err
	}
	rep.PointersSet, rep.ModelAt = set, time.Since(start)
	r.Logger.Info("model versions restored", "versions", versions, "keys", rep.Keys, "pointers_set", set, "took", rep.ModelAt)
	for _, v := range versions {
		n, err := r.restoreUsers(ctx, v, manifests[v].UsersUpdatedAtMs)
		rep.Users += n
		if err != nil {
			return rep, err
		}
	}
	rep.Took = time.Since(start)
	r.Logger.Info("offline serving records restored", "users_written", rep.Users, "took", rep.Took)
	return rep, nil
}

// restoreUsers writes version v's offline serving record of every user that
// has none under v, in batches of UserBatch, Writers pipelines at a time.
func (r *Restorer) restoreUsers(ctx context.Context, v string, updatedAtMs int64) (int, error) {
	off, found, err := r.Store.GetOfflineUsers(ctx, v)
	if err != nil || !found {
		return 0, err
	}
	var (
		mu      sync.Mutex
		written int
		done    int
		last    = time.Now()
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.Writers)
	for lo := 0; lo < len(off.IDs); lo += r.UserBatch {
		hi := min(lo+r.UserBatch, len(off.IDs))
		g.Go(func() error {
			recs := make([]cache.UserRecord, 0, hi-lo)
			for i := lo; i < hi; i++ {
				recs = append(recs, cache.UserRecord{UserID: off.IDs[i], Embedding: off.Vectors[i*off.Dim : (i+1)*off.Dim],
					Bias: off.Biases[i], UpdatedAtMs: updatedAtMs})
			}
			n, err := r.Store.PutUsersIfAbsent(gctx, v, recs)
			if err != nil {
				return fmt.Errorf("restoring the offline serving records of %s: %w", v, err)
			}
			mu.Lock()
			defer mu.Unlock()
			written, done = written+n, done+len(recs)
			if time.Since(last) > 2*time.Second {
				r.Logger.Info("restoring offline serving records", "version", v, "done", done, "of", len(off.IDs), "written", written)
				last = time.Now()
			}
			return nil
		})
	}
	err = g.Wait()
	return written, err
}

// Backup copies to the log what Redis holds and the log lacks, and deletes
// from the log the versions Redis no longer points at (see Restorer).
// usersUpdatedAtMs (0: the version's CreatedAtMs, as the ingestor writes
// them) is the UpdatedAtMs of the offline serving records of a version it
// writes.
func (r *Restorer) Backup(ctx context.Context, usersUpdatedAtMs int64) error {
	r.defaults()
	if err := r.CatchUp(ctx); err != nil {
		return err
	}
	cur, prev, err := r.Store.Versions(ctx)
	if err != nil || cur == "" {
		return err // nothing to back up
	}
	for _, v := range []string{cur, prev} {
		if v == "" {
			continue
		}
		_, ok, err := r.state.Manifest(v)
		if err != nil {
			return err
		}
		if !ok {
			d, err := r.Store.DumpVersion(ctx, v)
			if err != nil {
				return err
			}
			at := usersUpdatedAtMs
			if at == 0 {
				meta, err := r.Store.Meta(ctx, v)
				if err != nil {
					return err
				}
				at = meta.CreatedAtMs
			}
			if _, err := r.Log.WriteVersion(ctx, d, at); err != nil {
				return err
			}
			r.Logger.Info("model version written to the model log", "version", v, "keys", len(d.Strings), "topic", r.Log.Topic())
			continue
		}
		// Registered videos: the fields the log lacks or holds otherwise.
		have := r.state.Fields(v, registeredKey)
		now, err := r.Store.RegisteredRaw(ctx, v)
		if err != nil {
			return err
		}
		diff := map[string][]byte{}
		for f, val := range now {
			if old, ok := have[f]; !ok || string(old) != string(val) {
				diff[f] = val
			}
		}
		if err := r.Log.WriteFields(ctx, v, registeredKey, diff); err != nil {
			return err
		}
		if len(diff) > 0 {
			r.Logger.Info("registered videos written to the model log", "version", v, "videos", len(diff))
		}
	}
	p, ok, err := r.state.Pointers()
	if err != nil {
		return err
	}
	if !ok || p.Current != cur || p.Previous != prev {
		if err := r.Log.WritePointers(ctx, Pointers{Current: cur, Previous: prev}); err != nil {
			return err
		}
		r.Logger.Info("version pointers written to the model log", "current", cur, "previous", prev)
	}
	// Versions the pointers left: tombstones, so that compaction drops them;
	// only those registered before the current one (a version an ingestor is
	// publishing now, after the pointers were read, is left alone).
	if err := r.CatchUp(ctx); err != nil { // what was just written
		return err
	}
	ms, err := r.state.Versions()
	if err != nil {
		return err
	}
	curM, ok, err := r.state.Manifest(cur)
	if err != nil || !ok {
		return err
	}
	for _, m := range ms {
		if m.Version == cur || m.Version == prev || m.Seq >= curM.Seq {
			continue
		}
		if err := r.Log.DeleteVersion(ctx, &r.state, m.Version); err != nil {
			return err
		}
		r.Logger.Info("model version deleted from the model log", "version", m.Version)
	}
	return r.CatchUp(ctx)
}

// Step is one round of Run: when the marker is gone (or a restore did not
// finish) it sets it and restores; otherwise it backs up.
func (r *Restorer) Step(ctx context.Context) error {
	r.defaults()
	ok, err := r.Store.TouchMarker(ctx, MarkerName, r.MarkerTTL)
	if err != nil {
		return err
	}
	if !ok || r.restore {
		r.restore = true
		// The marker first: a flush during the restore removes it again, and
		// the next step restores again.
		if err := r.Store.SetMarker(ctx, MarkerName, time.Now().UnixMilli(), r.MarkerTTL); err != nil {
			return err
		}
		rep, err := r.Restore(ctx)
		if err != nil {
			return fmt.Errorf("restoring Redis from the model log %s: %w", r.Log.Topic(), err)
		}
		r.restore = false
		if len(rep.Versions) > 0 {
			r.Logger.Info("Redis restored from the model log", "versions", rep.Versions, "keys", rep.Keys,
				"pointers_set", rep.PointersSet, "users", rep.Users, "model_at", rep.ModelAt, "took", rep.Took)
		}
	}
	return r.Backup(ctx, 0)
}

// Run runs Step at once, on every model-update notice and every Every until
// ctx ends. Errors are logged and retried at the next tick.
func (r *Restorer) Run(ctx context.Context) error {
	r.defaults()
	var sub *cache.ModelSubscription
	defer func() {
		if sub != nil {
			_ = sub.Close()
		}
	}()
	step := func() {
		if sub == nil {
			var err error
			if sub, err = r.Store.SubscribeModelUpdates(ctx); err != nil && ctx.Err() == nil {
				r.Logger.Warn("subscribing to model updates; polling only", "err", err)
			}
		}
		if err := r.Step(ctx); err != nil && ctx.Err() == nil {
			r.Logger.Warn("keeping Redis and the model log in step", "err", err)
		}
	}
	step()
	t := time.NewTicker(r.Every)
	defer t.Stop()
	for {
		var updates <-chan cache.ModelUpdate
		if sub != nil {
			updates = sub.Updates()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case _, ok := <-updates:
			if !ok {
				sub = nil
			}
		}
		step()
	}
}

// Held returns the versions complete in the log (for reports and tests).
func (r *Restorer) Held() []string {
	ms, _ := r.state.Versions()
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Version)
	}
	return out
}

// LogBytes is the size of the record values the restorer holds from the log.
func (r *Restorer) LogBytes() int64 {
	var n int64
	for _, v := range r.state.raw {
		n += int64(len(v))
	}
	return n
}
