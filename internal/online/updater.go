package online

import (
	"context"
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
	LR        float32 // SGD learning rate on the user vector. Default: 0.05.
	L2        float32 // pull toward the offline vector. Default: 0.001.
	TargetCap float32 // cap of the target watch ratio, as in training. Default: 5.
	Now       func() time.Time
	Logger    *slog.Logger
	// ObserveFlush, if set, receives the seconds each successful flush took
	// (changelog and Redis writes).
	ObserveFlush func(seconds float64)
}

func (c *Config) setDefaults() {
	if c.LR == 0 {
		c.LR = 0.05
	}
	if c.L2 == 0 {
		c.L2 = 0.001
	}
	if c.TargetCap == 0 {
		c.TargetCap = 5
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
	Applied    uint64 // events applied (SGD step taken)
	Duplicates uint64 // events skipped: id not above the user's high-water mark
	ColdItems  uint64 // events for a video without an embedding: HWM advanced, no step
	NewUsers   uint64 // users first seen with no offline vector (base 0)
	Flushes    uint64 // successful flushes
	Written    uint64 // user states written (changelog and Redis)
	Stale      uint64 // Redis writes skipped because Redis held a newer record
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
	recBuf  []cache.UserRecord
	embBuf  []float32

	nApplied, dups, cold, newUsers, flushes, written, stale atomic.Uint64
	absErrMicro                                             atomic.Uint64 // AbsError in 1e-6 units
	fresh                                                   *Reservoir
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
		fresh: NewReservoir(1 << 16)}
	u.setModel(m)
	return u
}

func (u *Updater) setModel(m Model) {
	u.model = m
	u.params = towers.OnlineParams{LR: u.cfg.LR, L2: u.cfg.L2, GlobalMean: m.GlobalMean, Scale: m.Scale, TargetCap: u.cfg.TargetCap}
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
	return Counters{Applied: u.nApplied.Load(), Duplicates: u.dups.Load(), ColdItems: u.cold.Load(),
		NewUsers: u.newUsers.Load(), Flushes: u.flushes.Load(), Written: u.written.Load(), Stale: u.stale.Load(),
		AbsError: float64(u.absErrMicro.Load()) / 1e6}
}

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
	c.Base, c.Vec = slices.Clone(s.Base), slices.Clone(s.Vec)
	return c, true
}

// Handle is the consumer's Handler: apply the batch, then flush. A retry of the
// same batch after a failed flush does not apply it again.
func (u *Updater) Handle(ctx context.Context, batch []stream.Record) error {
	if len(batch) == 0 {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	key := batchKey{batch[0].Partition, batch[0].Offset, len(batch)}
	if !u.applied || u.pending != key {
		if err := u.apply(ctx, batch); err != nil {
			return err
		}
		u.pending, u.applied = key, true
	}
	if err := u.flush(ctx); err != nil {
		return err
	}
	u.applied = false
	// Freshness per event: produced -> its effect durable in Redis (duplicates
	// included: they are answered by state already there).
	u.fresh.AddSince(u.cfg.Now().UnixMicro(), batch)
	return nil
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
		e := &batch[i].Event
		s := u.states[e.UserID]
		if e.EventID <= s.HWM {
			u.dups.Add(1)
			continue
		}
		if item, _, ok := u.model.Items.Item(e.VideoID); ok {
			pred := towers.OnlineStep(s.Vec, s.Base, item, float32(e.WatchRatio), 1, u.params)
			y := float32(e.WatchRatio)
			if c := u.params.TargetCap; c > 0 && y > c {
				y = c
			}
			absErr += math.Abs(float64(pred - y))
			s.Applied++
			u.nApplied.Add(1)
		} else {
			u.cold.Add(1) // no embedding yet: the event counts as seen, the vector stays
		}
		s.HWM = e.EventID
		s.ProducedAtUs = e.ProducedAtUs
		s.UpdatedAtMs = now
		if !u.isDirty[e.UserID] {
			u.isDirty[e.UserID] = true
			u.dirty = append(u.dirty, e.UserID)
		}
	}
	u.absErrMicro.Add(uint64(absErr * 1e6))
	return nil
}

// materialize (re)builds the state of users under the current version from
// their offline records in Redis, keeping any high-water mark they had.
func (u *Updater) materialize(ctx context.Context, ids []uint32) error {
	version := u.model.Items.Version()
	dim := u.model.Items.Dim()
	recs, found, err := u.users.GetUsers(ctx, version, ids)
	if err != nil {
		return fmt.Errorf("reading offline user vectors: %w", err)
	}
	for i, uid := range ids {
		s := u.states[uid]
		if s == nil {
			s = &UserState{UserID: uid}
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
			if s.HWM == 0 {
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
		if r.LastEventID > s.HWM {
			// Redis holds a fresher serving vector than any state we have: the
			// changelog lost this user. Continue from Redis rather than regress.
			s.HWM = r.LastEventID
			u.cfg.Logger.Warn("user state taken from Redis: not in the changelog", "user", uid, "hwm", r.LastEventID)
		}
	}
	return nil
}

// flush writes every dirty user to the changelog, then to Redis.
func (u *Updater) flush(ctx context.Context) error {
	if len(u.dirty) == 0 {
		return nil
	}
	start := time.Now()
	states := make([]*UserState, len(u.dirty))
	for i, uid := range u.dirty {
		states[i] = u.states[uid]
	}
	// The input offsets are committed only after both writes succeeded. When
	// every user in the flush already has a state in the changelog, the two
	// writes run concurrently: Redis may then briefly hold a state the
	// changelog lacks (a crash between the two), and the restarted updater
	// recomputes it deterministically from the changelog's older state while
	// PutUsersIfNewer keeps Redis from regressing. A user's first state goes to
	// the changelog before Redis, so that Redis never holds the only copy of
	// an online vector whose offline base was overwritten.
	allDurable := true
	for _, s := range states {
		allDurable = allDurable && s.durable
	}
	if allDurable {
		logErr := make(chan error, 1)
		go func() { logErr <- u.log.Write(ctx, states) }()
		rerr := u.writeRedis(ctx, states)
		if err := <-logErr; err != nil {
			return fmt.Errorf("writing the changelog: %w", err)
		}
		if rerr != nil {
			return rerr
		}
	} else {
		if err := u.log.Write(ctx, states); err != nil {
			return fmt.Errorf("writing the changelog: %w", err)
		}
		if err := u.writeRedis(ctx, states); err != nil {
			return err
		}
	}
	for _, s := range states {
		s.durable = true
		delete(u.isDirty, s.UserID)
	}
	u.dirty = u.dirty[:0]
	if u.cfg.ObserveFlush != nil {
		u.cfg.ObserveFlush(time.Since(start).Seconds())
	}
	u.flushes.Add(1)
	u.written.Add(uint64(len(states)))
	return nil
}

// writeRedis writes the serving records of states (all under one version).
func (u *Updater) writeRedis(ctx context.Context, states []*UserState) error {
	if len(states) == 0 {
		return nil
	}
	dim := len(states[0].Base)
	if cap(u.embBuf) < dim*len(states) {
		u.embBuf = make([]float32, dim*len(states))
	}
	u.recBuf = u.recBuf[:0]
	byVersion := map[string][]cache.UserRecord{}
	for i, s := range states {
		emb := u.embBuf[i*dim : (i+1)*dim : (i+1)*dim]
		bias := towers.UserEmbedding(emb, s.Base, s.Vec, u.model.Scale)
		byVersion[s.ModelVersion] = append(byVersion[s.ModelVersion], cache.UserRecord{UserID: s.UserID, Embedding: emb, Bias: bias,
			UpdatedAtMs: s.UpdatedAtMs, LastEventID: s.HWM, EventProducedAtMs: s.ProducedAtUs / 1000})
	}
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
	defer u.mu.Unlock()
	version := u.model.Items.Version()
	var ids []uint32
	for uid, s := range u.states {
		if s.ModelVersion != version {
			ids = append(ids, uid)
		}
	}
	slices.Sort(ids)
	for i := 0; i < len(ids); i += 1000 {
		chunk := ids[i:min(i+1000, len(ids))]
		if err := u.materialize(ctx, chunk); err != nil {
			return i, err
		}
		for _, uid := range chunk {
			if !u.isDirty[uid] {
				u.isDirty[uid] = true
				u.dirty = append(u.dirty, uid)
			}
		}
		if err := u.flush(ctx); err != nil {
			return i, err
		}
	}
	return len(ids), nil
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
		if err := u.writeRedis(ctx, states[i:min(i+1000, len(states))]); err != nil {
			return i, err
		}
	}
	return len(states), nil
}
