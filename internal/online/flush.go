package online

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/towers"
)

// flushJob is a snapshot of dirty users on its way to the changelog and Redis.
type flushJob struct {
	states     []*UserState // copies, owned by the job
	recs       map[string][]cache.UserRecord
	allDurable bool
	produced   []int64 // produced-at times of the batch's events (freshness)
	dense      *DenseCheckpoint
	done       chan struct{}
	err        error
}

// snapshot moves the dirty users into a job (copies of their states and their
// serving records). Called with u.mu held.
func (u *Updater) snapshot() *flushJob {
	job := &flushJob{allDurable: true, recs: map[string][]cache.UserRecord{}, done: make(chan struct{})}
	if len(u.dirty) == 0 {
		return job
	}
	dim := len(u.states[u.dirty[0]].Base)
	epoch := u.epoch.Load()
	vecs := make([]float32, 3*dim*len(u.dirty)) // base, vec, embedding per user
	copies := make([]UserState, len(u.dirty))
	nring := 0
	for _, uid := range u.dirty {
		nring += len(u.states[uid].Ring)
	}
	rings := make([]RecentEvent, nring)
	job.states = make([]*UserState, len(u.dirty))
	for i, uid := range u.dirty {
		s := u.states[uid]
		s.Epoch = epoch
		s.repair = false
		c := &copies[i]
		*c = *s
		off := 3 * dim * i
		c.Base = vecs[off : off+dim : off+dim]
		c.Vec = vecs[off+dim : off+2*dim : off+2*dim]
		copy(c.Base, s.Base)
		copy(c.Vec, s.Vec)
		c.Ring = append(rings[:0:0], s.Ring...) // apply changes s.Ring in place
		rings = rings[len(c.Ring):]
		emb := vecs[off+2*dim : off+3*dim : off+3*dim]
		dense := s.Base
		m := u.modelNamed(s.ModelVersion)
		if d := m.Dense; d != nil && d.Dense(u.denseBuf, s.Base, uid) {
			dense = u.denseBuf
		}
		bias := towers.UserEmbedding(emb, dense, s.Vec, m.Scale)
		job.recs[s.ModelVersion] = append(job.recs[s.ModelVersion], cache.UserRecord{UserID: uid, Embedding: emb, Bias: bias,
			UpdatedAtMs: s.UpdatedAtMs, InputPartition: s.Pos.Partition, InputNext: s.Pos.Offset + 1, Epoch: epoch,
			EventProducedAtMs: s.ProducedAtUs / 1000, Watched: ringVideos(c.Ring)})
		job.allDurable = job.allDurable && s.durable
		job.states[i] = c
		// Jobs run one at a time in order, so once this one is done every later
		// job finds this user's state in the changelog.
		s.durable = true
		delete(u.isDirty, uid)
	}
	u.dirty = u.dirty[:0]
	if d := u.model.Dense; d != nil {
		job.dense = &DenseCheckpoint{Version: u.model.Items.Version(), Steps: d.Steps, Weights: d.Weights()}
	}
	return job
}

// enqueue hands a job to the flusher and returns its wait.
func (u *Updater) enqueue(job *flushJob) (func() error, error) {
	if len(job.states) == 0 && len(job.produced) == 0 && job.dense == nil {
		return nil, nil
	}
	select {
	case <-u.closed:
		return nil, errUpdaterClosed
	default:
	}
	select {
	case u.jobs <- job:
	case <-u.closed:
		return nil, errUpdaterClosed
	}
	return func() error {
		select {
		case <-job.done:
			return job.err
		case <-u.closed:
			// The flusher is gone: it failed what it found queued, but not a
			// job that slipped into the queue after that.
			select {
			case <-job.done:
				return job.err
			default:
				return errUpdaterClosed
			}
		}
	}, nil
}

var errUpdaterClosed = errors.New("updater closed")

// flusher writes jobs one at a time, in order, retrying each until it
// succeeds or the updater is closed.
func (u *Updater) flusher(ctx context.Context) {
	defer close(u.closed)
	for {
		var job *flushJob
		select {
		case job = <-u.jobs:
		case <-ctx.Done():
			return
		}
		if u.cfg.BeforeWrite != nil && len(job.states) > 0 {
			u.cfg.BeforeWrite(ctx)
		}
		backoff := 50 * time.Millisecond
		for {
			start := time.Now()
			err := u.write(ctx, job)
			if err == nil {
				if len(job.states) > 0 {
					if u.cfg.ObserveFlush != nil {
						u.cfg.ObserveFlush(time.Since(start).Seconds())
					}
					u.flushes.Add(1)
					u.written.Add(uint64(len(job.states)))
				}
				u.fresh.AddProduced(u.cfg.Now().UnixMicro(), job.produced)
				break
			}
			if ctx.Err() != nil {
				job.err = err
				break
			}
			u.flushRetries.Add(1)
			u.cfg.Logger.Warn("flush failed; retrying", "users", len(job.states), "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
		close(job.done)
		if ctx.Err() != nil {
			// Fail whatever is queued behind.
			for {
				select {
				case j := <-u.jobs:
					j.err = ctx.Err()
					close(j.done)
				default:
					return
				}
			}
		}
	}
}

// write writes one job: the changelog and Redis. The input offsets are
// committed only after both succeeded. When every user in the job already has
// a state in the changelog, the two writes run concurrently: Redis may then
// briefly hold a state the changelog lacks (a crash between the two), and the
// restarted updater recomputes it deterministically from the changelog's older
// state while PutUsersIfNewer keeps Redis from regressing. A user's first state
// goes to the changelog before Redis, so that Redis never holds the only copy
// of an online vector whose offline base was overwritten.
func (u *Updater) write(ctx context.Context, job *flushJob) error {
	if err := u.writeStates(ctx, job); err != nil {
		return err
	}
	if job.dense != nil {
		if dw, ok := u.log.(DenseWriter); ok {
			if err := dw.WriteDense(ctx, job.dense); err != nil {
				return fmt.Errorf("writing the dense checkpoint: %w", err)
			}
		}
	}
	return nil
}

func (u *Updater) writeStates(ctx context.Context, job *flushJob) error {
	if len(job.states) == 0 {
		return nil
	}
	if !job.allDurable {
		if err := u.log.Write(ctx, job.states); err != nil {
			return fmt.Errorf("writing the changelog: %w", err)
		}
		return u.putRecords(ctx, job.recs)
	}
	logErr := make(chan error, 1)
	go func() { logErr <- u.log.Write(ctx, job.states) }()
	rerr := u.putRecords(ctx, job.recs)
	if err := <-logErr; err != nil {
		return fmt.Errorf("writing the changelog: %w", err)
	}
	return rerr
}

// FencedStore is a UserStore that tells fenced writes apart from stale ones
// (*cache.Store implements it).
type FencedStore interface {
	PutUsersFenced(ctx context.Context, version string, recs []cache.UserRecord) (cache.PutResult, error)
}

func (u *Updater) putRecords(ctx context.Context, byVersion map[string][]cache.UserRecord) error {
	for v, recs := range byVersion {
		var res cache.PutResult
		var err error
		if fs, ok := u.users.(FencedStore); ok {
			res, err = fs.PutUsersFenced(ctx, v, recs)
		} else {
			res.Stale, err = u.users.PutUsersIfNewer(ctx, v, recs)
		}
		if err != nil {
			return fmt.Errorf("writing user embeddings to Redis: %w", err)
		}
		u.stale.Add(uint64(res.Stale))
		if res.Fenced > 0 {
			u.fenced.Add(uint64(res.Fenced))
			u.cfg.Logger.Warn("Redis refused user writes from an older epoch: another updater owns these users' partitions now",
				"fenced", res.Fenced, "epoch", u.epoch.Load(), "version", v)
		}
	}
	return nil
}

// ringVideos returns the distinct videos of a ring, oldest first: the
// user's shared watch history (cache.UserRecord.Watched, read by the API's
// exclude_watched). Never nil, so that an empty ring is written too.
func ringVideos(ring []RecentEvent) []uint32 {
	out := make([]uint32, 0, len(ring))
	for _, e := range ring {
		dup := false
		for _, v := range out {
			if v == e.VideoID {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, e.VideoID)
		}
	}
	return out
}
