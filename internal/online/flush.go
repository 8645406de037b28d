package online

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
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

	// Set by the flusher: the job is done when parts reaches 0; err is the
	// first part's error.
	start   time.Time
	parts   atomic.Int32
	errOnce sync.Once
	err     error
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
		c.seen = nil
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
			EventProducedAtMs: s.ProducedAtUs / 1000, Watched: ringVideos(c.Ring), Seen: seenVideos(s.seen)})
		s.seen = s.seen[:0]
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

// flusher writes the jobs in order, several at a time (as many as the
// caller has waits outstanding; the consumer has up to 4): a job's changelog
// write (and dense checkpoint) starts once the job before it has written
// its own, so that the changelog holds each user's states in order (the
// latest record is what compaction keeps), while its Redis write may
// overlap the previous job's, which PutUsersIfNewer makes safe in any order
// (a write older than the stored record is skipped). A user's first state
// (a job that is not allDurable) reaches the changelog before Redis; a
// later job's Redis write starts only once every earlier job's changelog
// write is done. Otherwise a job's two parts run concurrently: Redis may then
// briefly hold a state the changelog lacks (a crash between the two), and
// the restarted updater recomputes it deterministically from the
// changelog's older state while PutUsersIfNewer keeps Redis from
// regressing; the input offsets are committed only once both parts of the
// job (and of every job before it) succeeded. Each part is retried until it succeeds or the updater is
// closed; a job is done when both parts are. With one job at a time, the
// next batch's events waited for the whole of the previous flush (its Redis
// write, the longer part) before their own began.
func (u *Updater) flusher(ctx context.Context) {
	var redis sync.WaitGroup
	defer close(u.closed)
	defer redis.Wait()
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
		job.start = time.Now()
		job.parts.Store(2) // the changelog part and the Redis part
		startRedis := func() {
			if len(job.states) == 0 {
				u.finish(job, nil)
				return
			}
			redis.Add(1)
			go func() {
				defer redis.Done()
				u.finish(job, u.retrying(ctx, job, "Redis", func() error { return u.putRecords(ctx, job.recs) }))
			}()
		}
		if job.allDurable {
			startRedis()
		}
		err := u.retrying(ctx, job, "changelog", func() error { return u.writeLog(ctx, job) })
		if !job.allDurable {
			if err != nil {
				u.finish(job, err) // the Redis part is not started
			} else {
				startRedis()
			}
		}
		u.finish(job, err)
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

// retrying runs one part of a job's writes until it succeeds or ctx ends.
func (u *Updater) retrying(ctx context.Context, job *flushJob, what string, write func() error) error {
	backoff := 50 * time.Millisecond
	for {
		err := write()
		if err == nil || ctx.Err() != nil {
			return err
		}
		u.flushRetries.Add(1)
		u.cfg.Logger.Warn("flush failed; retrying", "part", what, "users", len(job.states), "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// finish records the end of one part of a job; the second ends the job.
func (u *Updater) finish(job *flushJob, err error) {
	if err != nil {
		job.errOnce.Do(func() { job.err = err })
	}
	if job.parts.Add(-1) != 0 {
		return
	}
	if job.err == nil {
		if len(job.states) > 0 {
			if u.cfg.ObserveFlush != nil {
				u.cfg.ObserveFlush(time.Since(job.start).Seconds())
			}
			u.flushes.Add(1)
			u.written.Add(uint64(len(job.states)))
		}
		u.fresh.AddProduced(u.cfg.Now().UnixMicro(), job.produced)
	}
	close(job.done)
}

// writeLog writes a job's part in Kafka: the user states to the changelog,
// then the dense checkpoint.
func (u *Updater) writeLog(ctx context.Context, job *flushJob) error {
	if len(job.states) > 0 {
		if err := u.log.Write(ctx, job.states); err != nil {
			return fmt.Errorf("writing the changelog: %w", err)
		}
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

// seenVideos returns the distinct videos processed since the user's last
// snapshot, to add to the long watch history (cache.UserRecord.Seen): a new
// slice, owned by the job. (A restore writes the ring's videos there too.)
func seenVideos(seen []uint32) []uint32 {
	out := slices.Clone(seen)
	slices.Sort(out)
	return slices.Compact(out)
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
