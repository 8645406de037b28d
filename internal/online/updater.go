package online

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/stream"
	"github.com/streamrec/streamrec/internal/towers"
)

// Items is the item side of one model version, as the updater needs it
// (*cache.ItemIndex implements it).
type Items interface {
	Version() string
	Dim() int
	// Item returns the item embedding as towers exports it (the last entry is
	// the item's bias term); the slice is read-only.
	Item(id uint32) (vec []float32, bias float32, ok bool)
}

// Model is the serving model the updater learns under.
type Model struct {
	Items      Items
	GlobalMean float32
	Scale      float32
	// TargetCap is the cap of the training targets the version was trained
	// with (0: unknown); Config.TargetCap, when set, overrides it.
	TargetCap float32
	// Dense, when set, fine-tunes the user tower online (dense mode).
	Dense *DenseTower
}

// UserStore is the Redis side (*cache.Store implements it).
type UserStore interface {
	GetUsers(ctx context.Context, version string, ids []uint32) ([]cache.UserRecord, []bool, error)
	PutUsersIfNewer(ctx context.Context, version string, recs []cache.UserRecord) (int, error)
}

// ChangelogWriter durably writes user states (acks=all) before returning.
type ChangelogWriter interface {
	Write(ctx context.Context, states []*UserState) error
}

// Config configures an Updater.
type Config struct {
	LR float32 // SGD learning rate on the user vector. Default: 0.05.
	// L2 is the pull toward the offline vector; 0 is no pull (DefaultConfig
	// has 0.001).
	L2 float32
	// TargetCap caps the target watch ratio; 0 (the default) takes the
	// model's own, Model.TargetCap, as trained (5 when the model does not
	// say); another value overrides it.
	TargetCap float32
	Now       func() time.Time
	Logger    *slog.Logger
	// ObserveFlush, if set, receives the seconds each successful flush took
	// (changelog and Redis writes).
	ObserveFlush func(seconds float64)
	// ObserveLateness, if set, receives the lateness in seconds (event time
	// behind the user's newest applied event) of each late event applied.
	ObserveLateness func(seconds float64)
}

// DefaultConfig returns the defaults: LR 0.05, L2 0.001, the model's target cap.
func DefaultConfig() Config { return Config{LR: 0.05, L2: 0.001} }

func (c *Config) setDefaults() {
	if c.LR == 0 {
		c.LR = 0.05
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Counters are the updater's cumulative counts.
type Counters struct {
	Applied uint64 // events applied (SGD step taken)
	// Redelivered counts messages skipped because the user's state already
	// covers their input position (after a crash, a rebalance, a retry).
	Redelivered uint64
	// Duplicates counts messages skipped because their event id is in the
	// user's ring of recent events (the same event published twice).
	Duplicates uint64
	// Late counts events applied although older (by event time) than the
	// user's newest applied event.
	Late      uint64
	ColdItems uint64 // events for a video without an embedding: recorded in the state, no step
	NewUsers  uint64 // users first seen with no offline vector (base 0)
	Flushes   uint64 // successful flushes
	Written   uint64 // user states written (changelog and Redis)
	Stale     uint64 // Redis writes skipped because Redis held a newer record
	// FlushRetries counts flushes that failed and were retried.
	FlushRetries uint64
	// AbsError is the sum over applied events of |prediction before the step -
	// capped target|: prequential (test-then-train) evaluation. AbsError /
	// Applied is the online MAE; over a window, the learning curve.
	AbsError float64
}

// Updater applies events to per-user state and flushes dirty users. Its
// methods are safe for concurrent use (one mutex; the consumer calls Handle from
// one goroutine, the Redis watcher calls Rebuild from another).
type Updater struct {
	cfg   Config
	users UserStore
	log   ChangelogWriter

	mu      sync.Mutex
	model   Model
	params  towers.OnlineParams
	states  map[uint32]*UserState
	dirty   []uint32
	isDirty map[uint32]bool
	pending batchKey
	applied bool // the pending batch was applied but not yet flushed

	denseBuf, gradBuf []float32

	jobs   chan *flushJob // to the flusher: one job at a time, in order
	stop   context.CancelFunc
	closed chan struct{}

	nApplied, redelivered, dups, late, cold, newUsers, flushes, written, stale, flushRetries atomic.Uint64
	absErrMicro                                                                              atomic.Uint64 // AbsError in 1e-6 units
	poison                                                                                   Poison
	fresh                                                                                    *Reservoir
}

type batchKey struct {
	partition int
	offset    int64
	n         int
}

// NewUpdater returns an Updater learning under m.
func NewUpdater(cfg Config, m Model, users UserStore, log ChangelogWriter) *Updater {
	cfg.setDefaults()
	u := &Updater{cfg: cfg, users: users, log: log, states: map[uint32]*UserState{}, isDirty: map[uint32]bool{},
		fresh: NewReservoir(1 << 16), jobs: make(chan *flushJob, 1), closed: make(chan struct{})}
	u.setModel(m)
	ctx, cancel := context.WithCancel(context.Background())
	u.stop = cancel
	go u.flusher(ctx)
	return u
}

// Close stops the flusher; a flush in flight then fails its wait.
func (u *Updater) Close() {
	u.stop()
	<-u.closed
}

func (u *Updater) setModel(m Model) {
	u.model = m
	u.denseBuf = make([]float32, m.Items.Dim())
	u.gradBuf = make([]float32, m.Items.Dim())
	capped := u.cfg.TargetCap
	if capped == 0 {
		capped = m.TargetCap
	}
	if capped == 0 {
		capped = 5
	}
	u.params = towers.OnlineParams{LR: u.cfg.LR, L2: u.cfg.L2, GlobalMean: m.GlobalMean, Scale: m.Scale, TargetCap: capped}
}

// SetModel switches to a new model version. Users are re-materialised under it
// lazily, at their next event, and eagerly by Rematerialize.
func (u *Updater) SetModel(m Model) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.setModel(m)
}

// Version returns the current model version.
func (u *Updater) Version() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.model.Items.Version()
}

// Counters returns the counts so far.
func (u *Updater) Counters() Counters {
	return Counters{Applied: u.nApplied.Load(), Redelivered: u.redelivered.Load(), Duplicates: u.dups.Load(),
		Late: u.late.Load(), ColdItems: u.cold.Load(),
		NewUsers: u.newUsers.Load(), Flushes: u.flushes.Load(), Written: u.written.Load(), Stale: u.stale.Load(),
		FlushRetries: u.flushRetries.Load(),
		AbsError:     float64(u.absErrMicro.Load()) / 1e6}
}

// Poison returns the counts of records skipped as undecodable. A Changelog
// whose Poison is this counts into it too.
func (u *Updater) Poison() *Poison { return &u.poison }

// Freshness returns the reservoir of event-produced -> embedding-in-Redis delays.
func (u *Updater) Freshness() *Reservoir { return u.fresh }

// Users returns how many users the updater holds state for.
func (u *Updater) Users() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.states)
}

// State returns a copy of a user's state.
func (u *Updater) State(uid uint32) (UserState, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	s, ok := u.states[uid]
	if !ok {
		return UserState{}, false
	}
	c := *s
	c.Base, c.Vec, c.Ring = slices.Clone(s.Base), slices.Clone(s.Vec), slices.Clone(s.Ring)
	return c, true
}

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
	version := u.model.Items.Version()
	var missing []uint32
	seen := map[uint32]bool{}
	for i := range batch {
		uid := batch[i].Event.UserID
		if s, ok := u.states[uid]; (!ok || s.ModelVersion != version) && !seen[uid] {
			seen[uid] = true
			missing = append(missing, uid)
		}
	}
	if len(missing) > 0 {
		if err := u.materialize(ctx, missing); err != nil {
			return err
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
		if item, _, ok := u.model.Items.Item(e.VideoID); ok {
			dense, tuned := s.Base, false
			if d := u.model.Dense; d != nil && d.Dense(u.denseBuf, s.Base, e.UserID) {
				dense, tuned = u.denseBuf, true
			}
			pred := towers.OnlineStep(s.Vec, dense, item, float32(e.WatchRatio), 1, u.params)
			y := float32(e.WatchRatio)
			if c := u.params.TargetCap; c > 0 && y > c {
				y = c
			}
			absErr += math.Abs(float64(pred - y))
			if tuned {
				// The same loss's gradient with respect to the dense input
				// (OnlineStep's formula), back-propagated into the tower.
				g, r := u.gradBuf, 2*(pred-y)
				last := len(g) - 1
				for j := 0; j < last; j++ {
					g[j] = r * u.params.Scale * item[j]
				}
				g[last] = r
				u.model.Dense.Step(g)
			}
			s.Applied++
			u.nApplied.Add(1)
		} else {
			u.cold.Add(1) // no embedding yet: the event counts as seen, the vector stays
		}
		s.Pos = pos
		s.NewestEventMs = max(s.NewestEventMs, e.EventTimeMs)
		s.remember(RecentEvent{EventID: e.EventID, VideoID: e.VideoID, WatchRatio: float32(e.WatchRatio),
			EventTimeMs: e.EventTimeMs, Offset: rec.Offset})
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

// materialize (re)builds the state of users under the current version from
// their offline records in Redis, keeping any high-water mark they had.
func (u *Updater) materialize(ctx context.Context, ids []uint32) error {
	version := u.model.Items.Version()
	dim := u.model.Items.Dim()
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
		return fmt.Errorf("reading offline user vectors: %w", err)
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
		if !found[i] || len(r.Embedding) != dim {
			if s.Pos == NoPosition {
				u.newUsers.Add(1)
			}
			clear(s.Base)
			continue
		}
		// Invert towers.UserEmbedding: e = [scale*a[:D-1], 1], bias = a[D-1].
		for j := 0; j < dim-1; j++ {
			s.Base[j] = r.Embedding[j] / u.model.Scale
		}
		s.Base[dim-1] = r.Bias
		if rp := (Position{Partition: r.InputPartition, Offset: r.InputNext - 1}); r.InputNext > 0 &&
			(s.Pos == NoPosition || rp.Partition == s.Pos.Partition && rp.Offset > s.Pos.Offset) {
			// Redis holds a serving vector past any state we have: the
			// changelog lost this user. Continue from Redis's position rather
			// than apply its events twice (the ring is lost with the state).
			s.Pos = rp
			u.cfg.Logger.Warn("user position taken from Redis: not in the changelog", "user", uid,
				"partition", rp.Partition, "offset", rp.Offset)
		}
	}
	return nil
}

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
		if d := u.model.Dense; d != nil && d.Dense(u.denseBuf, s.Base, uid) {
			dense = u.denseBuf
		}
		bias := towers.UserEmbedding(emb, dense, s.Vec, u.model.Scale)
		job.recs[s.ModelVersion] = append(job.recs[s.ModelVersion], cache.UserRecord{UserID: uid, Embedding: emb, Bias: bias,
			UpdatedAtMs: s.UpdatedAtMs, InputPartition: s.Pos.Partition, InputNext: s.Pos.Offset + 1, EventProducedAtMs: s.ProducedAtUs / 1000})
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

func (u *Updater) putRecords(ctx context.Context, byVersion map[string][]cache.UserRecord) error {
	for v, recs := range byVersion {
		skipped, err := u.users.PutUsersIfNewer(ctx, v, recs)
		if err != nil {
			return fmt.Errorf("writing user embeddings to Redis: %w", err)
		}
		u.stale.Add(uint64(skipped))
	}
	return nil
}

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

// Rematerialize re-bases every held user on the current model version (from
// the version's offline user records; the online residual restarts at zero,
// the high-water mark is kept) and flushes them, so that the API finds every
// active user under a new version at once rather than at the user's next event.
func (u *Updater) Rematerialize(ctx context.Context) (int, error) {
	u.mu.Lock()
	version := u.model.Items.Version()
	var ids []uint32
	for uid, s := range u.states {
		if s.ModelVersion != version {
			ids = append(ids, uid)
		}
	}
	u.mu.Unlock()
	slices.Sort(ids)
	for i := 0; i < len(ids); i += 1000 {
		chunk := ids[i:min(i+1000, len(ids))]
		u.mu.Lock()
		if u.model.Items.Version() != version {
			u.mu.Unlock()
			return i, fmt.Errorf("model version changed again during re-materialisation")
		}
		var stale []uint32
		for _, uid := range chunk {
			if s, ok := u.states[uid]; ok && s.ModelVersion != version {
				stale = append(stale, uid)
			}
		}
		if err := u.materialize(ctx, stale); err != nil {
			u.mu.Unlock()
			return i, err
		}
		for _, uid := range stale {
			u.markDirty(uid)
		}
		job := u.snapshot()
		u.mu.Unlock()
		wait, err := u.enqueue(job)
		if err == nil && wait != nil {
			err = wait()
		}
		if err != nil {
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

// Rebuild writes every held state of the current version to Redis (after
// Redis lost its data). Changelog states are already durable.
func (u *Updater) Rebuild(ctx context.Context) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	version := u.model.Items.Version()
	var states []*UserState
	for _, s := range u.states {
		if s.ModelVersion == version {
			states = append(states, s)
		}
	}
	slices.SortFunc(states, func(a, b *UserState) int { return int(a.UserID) - int(b.UserID) })
	for i := 0; i < len(states); i += 1000 {
		chunk := states[i:min(i+1000, len(states))]
		recs := make([]cache.UserRecord, len(chunk))
		for j, s := range chunk {
			emb := make([]float32, len(s.Base))
			dense := s.Base
			if d := u.model.Dense; d != nil && d.Dense(u.denseBuf, s.Base, s.UserID) {
				dense = u.denseBuf
			}
			bias := towers.UserEmbedding(emb, dense, s.Vec, u.model.Scale)
			recs[j] = cache.UserRecord{UserID: s.UserID, Embedding: emb, Bias: bias,
				UpdatedAtMs: s.UpdatedAtMs, InputPartition: s.Pos.Partition, InputNext: s.Pos.Offset + 1, EventProducedAtMs: s.ProducedAtUs / 1000}
		}
		if err := u.putRecords(ctx, map[string][]cache.UserRecord{version: recs}); err != nil {
			return i, err
		}
	}
	return len(states), nil
}
