package online

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/stream"
)

// Handle is the consumer's Handler: apply the batch, then flush, and return
// once the flush is durable.
func (u *Updater) Handle(ctx context.Context, batch []stream.Record) error {
	wait, err := u.HandleAsync(ctx, batch)
	if err != nil || wait == nil {
		return err
	}
	return wait()
}

// HandleAsync is the consumer's AsyncHandler: it applies the batch and hands a
// snapshot of the dirty users to the flusher, which writes the changelog and
// Redis (retrying until they succeed) while the next batch is applied; wait
// returns once they are durable. A retry of the same batch after a failed apply
// does not apply it twice.
func (u *Updater) HandleAsync(ctx context.Context, batch []stream.Record) (wait func() error, err error) {
	if len(batch) == 0 {
		return nil, nil
	}
	u.mu.Lock()
	key := batchKey{batch[0].Partition, batch[0].Offset, len(batch)}
	if !u.applied || u.pending != key {
		if err := u.apply(ctx, batch); err != nil {
			u.mu.Unlock()
			return nil, err
		}
		u.pending, u.applied = key, true
	}
	job := u.snapshot()
	u.applied = false
	u.mu.Unlock()
	// Freshness per event: produced -> its effect durable in Redis (duplicates
	// included: they are answered by state already there).
	job.produced = make([]int64, len(batch))
	for i := range batch {
		job.produced[i] = batch[i].Event.ProducedAtUs
	}
	if job.dense != nil {
		job.dense.Offsets = map[int]int64{}
		for i := range batch {
			job.dense.Offsets[batch[i].Partition] = max(job.dense.Offsets[batch[i].Partition], batch[i].Offset)
		}
	}
	return u.enqueue(job)
}

// apply runs the SGD step of every event not yet applied. It reads the offline
// vectors of users it has no current state for first, so it fails before
// changing anything.
func (u *Updater) apply(ctx context.Context, batch []stream.Record) error {
	var missing []uint32
	seen := map[uint32]bool{}
	for i := range batch {
		uid := batch[i].Event.UserID
		m, _ := u.modelOf(uid)
		if s, ok := u.states[uid]; (!ok || s.ModelVersion != m.Items.Version()) && !seen[uid] {
			seen[uid] = true
			missing = append(missing, uid)
		}
	}
	if len(missing) > 0 {
		if err := u.materialize(ctx, missing); err != nil {
			return err
		}
	}
	if sch := u.cfg.LRSchedule; sch != nil {
		var newest int64
		for i := range batch {
			newest = max(newest, batch[i].Time.UnixMilli())
		}
		if err := sch.WaitCovered(ctx, newest); err != nil {
			return fmt.Errorf("waiting for the learning-rate controls to cover message time %d: %w", newest, err)
		}
	}
	now := u.cfg.Now().UnixMilli()
	var absErr float64
	for i := range batch {
		rec := &batch[i]
		e := &rec.Event
		s := u.states[e.UserID]
		if s.Pos.Covers(rec.Partition, rec.Offset) {
			u.redelivered.Add(1)
			continue
		}
		pos := Position{Partition: int32(rec.Partition), Offset: rec.Offset}
		if s.inRing(e.EventID) {
			u.dups.Add(1)
			// The state moves to this message's position (so that its own
			// redelivery is told apart), and nothing else changes.
			s.Pos = pos
			u.markDirty(e.UserID)
			continue
		}
		if s.NewestEventMs != 0 && e.EventTimeMs < s.NewestEventMs {
			u.late.Add(1)
			if u.cfg.ObserveLateness != nil {
				u.cfg.ObserveLateness(float64(s.NewestEventMs-e.EventTimeMs) / 1000)
			}
		}
		if m, _ := u.modelOf(e.UserID); m.Trained.Covers(pos.Partition, rec.Offset, e.EventTimeMs, uint8(e.Source)) {
			// The version trained on it: recorded (a later version may not
			// have), not applied.
			u.trained.Add(1)
		} else {
			factor := float32(1)
			if sch := u.cfg.LRSchedule; sch != nil {
				factor = sch.Factor(rec.Time.UnixMilli())
			}
			if d, ok := u.step(s, e.VideoID, float32(e.WatchRatio), factor); ok {
				absErr += d
				u.nApplied.Add(1)
			} else {
				u.cold.Add(1) // no embedding yet: the event counts as seen, the vector stays
			}
		}
		s.Pos = pos
		s.NewestEventMs = max(s.NewestEventMs, e.EventTimeMs)
		s.remember(RecentEvent{EventID: e.EventID, VideoID: e.VideoID, WatchRatio: float32(e.WatchRatio),
			EventTimeMs: e.EventTimeMs, Offset: rec.Offset, Source: uint8(e.Source)})
		s.seen = append(s.seen, e.VideoID)
		s.ProducedAtUs = e.ProducedAtUs
		s.UpdatedAtMs = now
		u.markDirty(e.UserID)
	}
	u.absErrMicro.Add(uint64(absErr * 1e6))
	return nil
}

// markDirty queues a user for the next flush. Called with u.mu held.
func (u *Updater) markDirty(uid uint32) {
	if !u.isDirty[uid] {
		u.isDirty[uid] = true
		u.dirty = append(u.dirty, uid)
	}
}

// materialize (re)builds the state of users under the current version: the
// base from the version's offline vectors (Model.Offline; without them, from
// the serving records in Redis), the residual from zero plus the events of
// the user's ring that the version did not train on (handOver). Positions
// and rings are kept. It reads Redis first, so it fails before changing
// anything.
func (u *Updater) materialize(ctx context.Context, ids []uint32) error {
	if u.canary == nil {
		return u.materializeUnder(ctx, &u.model, ids)
	}
	var live, canary []uint32
	for _, uid := range ids {
		if m, _ := u.modelOf(uid); m == &u.model {
			live = append(live, uid)
		} else {
			canary = append(canary, uid)
		}
	}
	// Both reads before any change: a failure changes nothing.
	if err := u.materializeUnder(ctx, &u.model, live); err != nil {
		return err
	}
	return u.materializeUnder(ctx, &u.canary.m, canary)
}

// materializeUnder is materialize for users of model m's arm.
func (u *Updater) materializeUnder(ctx context.Context, m *Model, ids []uint32) error {
	if len(ids) == 0 {
		return nil
	}
	version := m.Items.Version()
	dim := m.Items.Dim()
	recs, found, err := u.users.GetUsers(ctx, version, ids)
	var bad *cache.CorruptUsersError
	if errors.As(err, &bad) {
		// Poison: retrying cannot fix a record that does not decode. The
		// user starts from the next good source (the changelog holds none for
		// it, or it would not be read here): no offline vector.
		for uid, cerr := range bad.Users {
			u.poison.Add(PoisonRedisUser)
			u.cfg.Logger.Warn("skipping a poison user record in Redis", "reason", PoisonRedisUser, "user", uid,
				"version", version, "err", cerr)
		}
		err = nil
	}
	if err != nil {
		return fmt.Errorf("reading user records: %w", err)
	}
	for i, uid := range ids {
		s := u.states[uid]
		if s == nil {
			s = newState(uid)
			u.states[uid] = s
		}
		s.ModelVersion = version
		s.Applied = 0
		s.durable = false // no state under this version in the changelog yet
		s.Base = growF32(s.Base, dim)
		s.Vec = growF32(s.Vec, dim)
		clear(s.Vec)
		r := recs[i]
		emb, bias, ok := r.Embedding, r.Bias, found[i] && len(r.Embedding) == dim
		if m.Offline != nil {
			emb, bias, ok = m.Offline.Offline(uid)
			ok = ok && len(emb) == dim
		}
		if ok {
			// Invert towers.UserEmbedding: e = [scale*a[:D-1], 1], bias = a[D-1].
			for j := 0; j < dim-1; j++ {
				s.Base[j] = emb[j] / m.Scale
			}
			s.Base[dim-1] = bias
		} else {
			if s.Pos == NoPosition {
				u.newUsers.Add(1)
			}
			clear(s.Base)
		}
		if rp := (Position{Partition: r.InputPartition, Offset: r.InputNext - 1}); found[i] && r.InputNext > 0 &&
			(s.Pos == NoPosition || rp.Partition == s.Pos.Partition && rp.Offset > s.Pos.Offset) {
			// Redis holds a serving vector past any state we have: the
			// changelog lost this user. Continue from Redis's position rather
			// than apply its events twice (the ring is lost with the state).
			s.Pos = rp
			u.cfg.Logger.Warn("user position taken from Redis: not in the changelog", "user", uid,
				"partition", rp.Partition, "offset", rp.Offset)
		}
		u.handOver(s)
	}
	return nil
}
