package online

import (
	"context"
	"fmt"
	"slices"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/stream"
	"github.com/streamrec/streamrec/internal/towers"
)

// Restore sets the state to restored, the changelog's content for the owned
// partitions (of an input topic with nparts partitions): users on other
// partitions are dropped, and unflushed changes are forgotten (their input was
// not committed, so it is delivered again).
func (u *Updater) Restore(restored map[uint32]*UserState, owned []int, nparts int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	own := make(map[int]bool, len(owned))
	for _, p := range owned {
		own[p] = true
	}
	// The changelog is authoritative for owned partitions; other partitions'
	// users belong to other members now.
	clear(u.states)
	for uid, s := range restored {
		if own[stream.PartitionFor(uid, nparts)] {
			u.states[uid] = s
		}
	}
	u.dirty = u.dirty[:0]
	clear(u.isDirty)
	u.applied = false
}

// Repair writes again, under the current epoch, every held user whose latest
// changelog record was a stale writer's (Changelog.Read marks them), so that
// log compaction, which keeps only a key's latest record, can never
// resurrect the stale state. It returns how many users it wrote.
func (u *Updater) Repair(ctx context.Context) (int, error) {
	u.mu.Lock()
	n := 0
	for uid, s := range u.states {
		if s.repair {
			u.markDirty(uid)
			n++
		}
	}
	if n == 0 {
		u.mu.Unlock()
		return 0, nil
	}
	if err := u.flushLocked(); err != nil {
		return 0, fmt.Errorf("repairing %d users whose latest changelog record is a stale writer's: %w", n, err)
	}
	u.repaired.Add(uint64(n))
	return n, nil
}

// Rematerialize re-bases every held user on the model version of its arm
// (the current version, or the canary's for its share; the version's offline
// vector plus the ring's events it did not train on, see handOver; positions
// and rings are kept) and flushes them, so that the API finds every active
// user under a new version at once rather than at the user's next event.
func (u *Updater) Rematerialize(ctx context.Context) (int, error) {
	u.mu.Lock()
	gen := u.gen
	stale := func(uid uint32, s *UserState) bool {
		m, _ := u.modelOf(uid)
		return s.ModelVersion != m.Items.Version()
	}
	var ids []uint32
	for uid, s := range u.states {
		if stale(uid, s) {
			ids = append(ids, uid)
		}
	}
	u.mu.Unlock()
	slices.Sort(ids)
	for i := 0; i < len(ids); i += 1000 {
		chunk := ids[i:min(i+1000, len(ids))]
		u.mu.Lock()
		if u.gen != gen {
			u.mu.Unlock()
			return i, fmt.Errorf("model version changed again during re-materialisation")
		}
		var todo []uint32
		for _, uid := range chunk {
			if s, ok := u.states[uid]; ok && stale(uid, s) {
				todo = append(todo, uid)
			}
		}
		if err := u.materialize(ctx, todo); err != nil {
			u.mu.Unlock()
			return i, err
		}
		for _, uid := range todo {
			u.markDirty(uid)
		}
		if err := u.flushLocked(); err != nil {
			return i, err
		}
	}
	return len(ids), nil
}

// RestoreDense sets the dense tower's weights from a checkpoint of the
// current model version (a checkpoint of another version is ignored).
func (u *Updater) RestoreDense(cp *DenseCheckpoint) (bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	d := u.model.Dense
	if d == nil || cp == nil || cp.Version != u.model.Items.Version() {
		return false, nil
	}
	return true, d.SetWeights(cp.Weights, cp.Steps)
}

// DenseSteps returns the dense tower's step count (0 when off).
func (u *Updater) DenseSteps() uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.model.Dense == nil {
		return 0
	}
	return u.model.Dense.Steps
}

// Rebuild writes every held state of its arm's version to Redis (after
// Redis lost its data). Changelog states are already durable.
func (u *Updater) Rebuild(ctx context.Context) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var states []*UserState
	for uid, s := range u.states {
		if m, _ := u.modelOf(uid); s.ModelVersion == m.Items.Version() {
			states = append(states, s)
		}
	}
	slices.SortFunc(states, func(a, b *UserState) int { return int(a.UserID) - int(b.UserID) })
	for i := 0; i < len(states); i += 1000 {
		chunk := states[i:min(i+1000, len(states))]
		byVersion := map[string][]cache.UserRecord{}
		for _, s := range chunk {
			emb := make([]float32, len(s.Base))
			dense := s.Base
			m := u.modelNamed(s.ModelVersion)
			if d := m.Dense; d != nil && d.Dense(u.denseBuf, s.Base, s.UserID) {
				dense = u.denseBuf
			}
			bias := towers.UserEmbedding(emb, dense, s.Vec, m.Scale)
			byVersion[s.ModelVersion] = append(byVersion[s.ModelVersion], cache.UserRecord{UserID: s.UserID, Embedding: emb, Bias: bias,
				UpdatedAtMs: s.UpdatedAtMs, InputPartition: s.Pos.Partition, InputNext: s.Pos.Offset + 1, Epoch: u.epoch.Load(),
				EventProducedAtMs: s.ProducedAtUs / 1000, Watched: ringVideos(s.Ring), Seen: ringVideos(s.Ring)})
		}
		if err := u.putRecords(ctx, byVersion); err != nil {
			return i, err
		}
	}
	return len(states), nil
}

// flushLocked snapshots the dirty users, releases u.mu (held by the caller)
// and waits until the snapshot is durable.
func (u *Updater) flushLocked() error {
	job := u.snapshot()
	u.mu.Unlock()
	wait, err := u.enqueue(job)
	if err == nil && wait != nil {
		err = wait()
	}
	return err
}
