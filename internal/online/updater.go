package online

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamrec/streamrec/internal/cache"
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
	// Offline, when set, are the version's offline user vectors: users are
	// (re-)materialised from them. When nil (a version published before
	// they were kept), from the version's serving records in Redis, which
	// the updater itself overwrites: a rollback then starts from an online
	// vector, not the true offline base.
	Offline OfflineVectors
	// Trained is what the version was trained on: those events are never
	// applied on top of it (counted as trained), and a switch re-applies
	// the others from each user's ring (handover.go).
	Trained TrainedThrough
}

// UserStore is the Redis side (*cache.Store implements it). Its methods are
// called concurrently: the flusher has a PutUsersIfNewer call in flight for
// each flush not yet done, and they may land in any order, so
// PutUsersIfNewer must keep the newer of two records of a user (by input
// position) whatever the order of the calls.
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
	// LRSchedule, if not nil, multiplies LR by the factor of each event's
	// message time (lrcontrol.go); the updater waits until the schedule
	// covers an event before applying it.
	LRSchedule *LRSchedule
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
	// BeforeWrite, if set, runs in the flusher before each job's writes (a
	// test hook: the fencing test pauses a flush there, so that the updater
	// holds a batch in flight while another takes its partitions over).
	BeforeWrite func(ctx context.Context)
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
	// Trained counts events skipped because the current version was trained
	// on them (Model.Trained).
	Trained uint64
	// HandoverReplayed counts events re-applied from users' rings when they
	// were re-based on a new version; HandoverTruncated counts users whose
	// ring may not have held every event the new version did not train on.
	HandoverReplayed, HandoverTruncated uint64
	// Late counts events applied although older (by event time) than the
	// user's newest applied event.
	Late      uint64
	ColdItems uint64 // events for a video without an embedding: recorded in the state, no step
	NewUsers  uint64 // users first seen with no offline vector (base 0)
	Flushes   uint64 // successful flushes
	Written   uint64 // user states written (changelog and Redis)
	Stale     uint64 // Redis writes skipped because Redis held a newer record
	// Fenced counts Redis writes refused because Redis held a record from a
	// newer fencing epoch: another updater owns the user's partition now.
	Fenced uint64
	// Repaired counts users written again after a restore because their
	// latest changelog record was a stale writer's.
	Repaired uint64
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

	mu     sync.Mutex
	model  Model
	params towers.OnlineParams
	// canary, when set, is the version a share of the users learn under
	// (cache.InCanary); gen counts model changes (SetModel, SetCanary).
	canary  *canarySlot
	gen     uint64
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
	trained, handoverReplayed, handoverTruncated, fenced, repaired                           atomic.Uint64
	epoch                                                                                    atomic.Uint64
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
	u.params = u.paramsOf(m)
	u.gen++
}

func (u *Updater) paramsOf(m Model) towers.OnlineParams {
	capped := u.cfg.TargetCap
	if capped == 0 {
		capped = m.TargetCap
	}
	if capped == 0 {
		capped = 5
	}
	return towers.OnlineParams{LR: u.cfg.LR, L2: u.cfg.L2, GlobalMean: m.GlobalMean, Scale: m.Scale, TargetCap: capped}
}

// SetModel switches to a new model version. Users are re-materialised under it
// lazily, at their next event, and eagerly by Rematerialize.
func (u *Updater) SetModel(m Model) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.setModel(m)
}

// SetItems replaces the item embeddings of the current version (with the
// videos registered after training), keeping everything else (the dense
// tower and its online steps included). Items of another version are
// refused (false): switch versions with SetModel.
func (u *Updater) SetItems(items Items) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if items.Version() != u.model.Items.Version() || items.Dim() != u.model.Items.Dim() {
		return false
	}
	u.model.Items = items
	return true
}

// Items returns the current item embeddings.
func (u *Updater) Items() Items {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.model.Items
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
		FlushRetries: u.flushRetries.Load(), Trained: u.trained.Load(),
		HandoverReplayed: u.handoverReplayed.Load(), HandoverTruncated: u.handoverTruncated.Load(),
		Fenced: u.fenced.Load(), Repaired: u.repaired.Load(),
		AbsError: float64(u.absErrMicro.Load()) / 1e6}
}

// SetEpoch sets the fencing epoch stamped on every state and record written
// from now on (stream.AcquireEpoch, taken at each partition assignment).
func (u *Updater) SetEpoch(e uint64) { u.epoch.Store(e) }

// Epoch returns the current fencing epoch.
func (u *Updater) Epoch() uint64 { return u.epoch.Load() }

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
