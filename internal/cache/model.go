package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrAfterFlip wraps a failure of a step that follows a successful pointer
// flip (the update notice or garbage collection): the new version IS current;
// only the follow-up failed. Readers that poll still see the new version.
var ErrAfterFlip = errors.New("cache: model version flipped, follow-up step failed")

// Calibration maps an inner-product score to a predicted watch ratio; the
// formula belongs to internal/towers, this package only stores the scalars.
type Calibration struct {
	GlobalMean float64 `json:"global_mean"`
	Scale      float64 `json:"scale"`
	// Extra holds further named scalars, if the model has any.
	Extra map[string]float64 `json:"extra,omitempty"`
}

// Items are a model version's item embeddings, row-major: row i is
// Vectors[i*dim:(i+1)*dim], the item with video id IDs[i] and bias Biases[i].
type Items struct {
	IDs     []uint32
	Biases  []float32 // len(IDs), or nil on Publish for all zeros
	Vectors []float32 // len(IDs)*dim
}

// Model is a whole model version, as published by the ingestor.
type Model struct {
	// Version names the version: 1-64 of [A-Za-z0-9._-]; immutable once published.
	Version string
	// Dim is the embedding dimension (item and user vectors alike).
	Dim int
	// CreatedAtMs is when the model was trained (unix ms).
	CreatedAtMs int64
	Calibration Calibration
	Items       Items
	// TowerWeights is the serialised user tower, opaque to this package.
	TowerWeights []byte
	// CandidateSets are named subsets of the items a request may restrict
	// its list to (for example "small_matrix": the videos of KuaiRec's fully
	// observed small matrix). Names follow the version's rules; every id must
	// be an item of the model.
	CandidateSets map[string][]uint32
	// TrainedOffsets, for a version trained on rows of the interactions log
	// (a retrain from the log), are per partition the last input offset it
	// trained on; the updater never applies those events on top of it (the
	// KuaiRec rows' cut is Calibration.Extra["cut_ms"]).
	TrainedOffsets map[int32]int64
	// Staged: Publish writes the version complete but does not make it
	// current (no flip, no notice, no garbage collection): a candidate for a
	// canary (StartCanary) or a later switch.
	Staged bool
	// TrainedExcludedSources names the event sources (stream.Source names)
	// the retrain left out of the log's rows: those events are not trained
	// on although their offsets are covered.
	TrainedExcludedSources []string
}

// ModelMeta describes a stored model version (stored as JSON).
type ModelMeta struct {
	Version     string      `json:"version"`
	Dim         int         `json:"dim"`
	CreatedAtMs int64       `json:"created_at_ms"`
	ItemCount   int         `json:"item_count"`
	Calibration Calibration `json:"calibration"`
	// TowerBytes is len(TowerWeights).
	TowerBytes int `json:"tower_bytes"`
	// ChunkItems is the number of items per item chunk (the last may hold fewer).
	ChunkItems int `json:"chunk_items"`
	// Chunks is the number of item chunks.
	Chunks int `json:"chunks"`
	// PublishedAtMs is when Publish wrote the version (unix ms).
	PublishedAtMs int64 `json:"published_at_ms"`
	// CandidateSets: see Model.CandidateSets.
	CandidateSets map[string][]uint32 `json:"candidate_sets,omitempty"`
	// TrainedOffsets: see Model.TrainedOffsets.
	TrainedOffsets map[int32]int64 `json:"trained_offsets,omitempty"`
	// TrainedExcludedSources: see Model.TrainedExcludedSources.
	TrainedExcludedSources []string `json:"trained_excluded_sources,omitempty"`
	// Registered is how many videos were registered after training
	// (RegisterItem) when ItemEmbeddings read the version; it adds them to
	// the published items (ItemCount then counts both). Never stored.
	Registered int `json:"-"`
	// RegisteredIDs are the registered videos ItemEmbeddings added (those
	// that are not published items). Never stored.
	RegisteredIDs []uint32 `json:"-"`
}

// ModelUpdate is the notice PUBLISHed on "<ns>:model-updates" after each flip.
type ModelUpdate struct {
	// Current is the version that is now current.
	Current string `json:"current"`
	// Previous is the version kept for rollback ("" if none).
	Previous string `json:"previous"`
	// Reason is "publish", "rollback", "items" (RegisterItem) or "restore"
	// (RestorePointers, after Redis lost the model).
	Reason string `json:"reason"`
	// AtMs is when the flip happened (unix ms, publisher's clock).
	AtMs int64 `json:"at_ms"`
}

// flipScript makes ARGV[1] current and the old current previous, atomically,
// if the version is complete (its meta key KEYS[2] exists). It returns the
// old current ("" if none).
var flipScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then
  return redis.error_reply('STREAMREC_NOVERSION version is not complete')
end
local cur = redis.call('HGET', KEYS[1], 'current')
if cur == ARGV[1] then
  return cur
end
if cur then
  redis.call('HSET', KEYS[1], 'previous', cur)
end
redis.call('HSET', KEYS[1], 'current', ARGV[1])
return cur or ''
`)

// rollbackScript swaps current and previous if they still are ARGV[1] and
// ARGV[2] and the previous version is complete (KEYS[2] is its meta key).
var rollbackScript = redis.NewScript(`
local p = redis.call('HMGET', KEYS[1], 'current', 'previous')
if p[1] ~= ARGV[1] or p[2] ~= ARGV[2] then
  return redis.error_reply('STREAMREC_CONFLICT pointers changed')
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  return redis.error_reply('STREAMREC_NOVERSION previous version is gone')
end
redis.call('HSET', KEYS[1], 'current', ARGV[2], 'previous', ARGV[1])
return 1
`)

func validateModel(m *Model) error {
	if err := checkVersion(m.Version); err != nil {
		return err
	}
	n := len(m.Items.IDs)
	switch {
	case m.Dim <= 0 || m.Dim > maxDim:
		return fmt.Errorf("%w: model %s: dim %d", ErrInvalid, m.Version, m.Dim)
	case n == 0:
		return fmt.Errorf("%w: model %s: no items", ErrInvalid, m.Version)
	case len(m.Items.Vectors) != n*m.Dim:
		return fmt.Errorf("%w: model %s: %d vector values for %d items x dim %d", ErrInvalid, m.Version, len(m.Items.Vectors), n, m.Dim)
	case m.Items.Biases != nil && len(m.Items.Biases) != n:
		return fmt.Errorf("%w: model %s: %d biases for %d items", ErrInvalid, m.Version, len(m.Items.Biases), n)
	}
	seen := make(map[uint32]struct{}, n)
	for _, id := range m.Items.IDs {
		if _, dup := seen[id]; dup {
			return fmt.Errorf("%w: model %s: duplicate item id %d", ErrInvalid, m.Version, id)
		}
		seen[id] = struct{}{}
	}
	for p, off := range m.TrainedOffsets {
		if p < 0 || off < 0 {
			return fmt.Errorf("%w: model %s: trained offset %d on partition %d", ErrInvalid, m.Version, off, p)
		}
	}
	for name, ids := range m.CandidateSets {
		if !namePattern.MatchString(name) || len(ids) == 0 {
			return fmt.Errorf("%w: model %s: candidate set %q: want a name of [A-Za-z0-9._-]{1,64} and at least one id", ErrInvalid, m.Version, name)
		}
		in := make(map[uint32]struct{}, len(ids))
		for _, id := range ids {
			if _, ok := seen[id]; !ok {
				return fmt.Errorf("%w: model %s: candidate set %s: id %d is not an item", ErrInvalid, m.Version, name, id)
			}
			if _, dup := in[id]; dup {
				return fmt.Errorf("%w: model %s: candidate set %s: duplicate id %d", ErrInvalid, m.Version, name, id)
			}
			in[id] = struct{}{}
		}
	}
	return nil
}

// Publish stores m as a new, immutable version and makes it current:
//
//  1. the item chunks and the tower blob are written under the version's
//     keys, in pipelines of at most Config.PipelineBytes;
//  2. the meta key is written last (SET NX): it marks the version complete;
//  3. the "current" pointer flips atomically (the old current becomes
//     "previous"), so a reader sees either the old or the new version whole;
//  4. a ModelUpdate notice is PUBLISHed on "<ns>:model-updates";
//  5. versions other than current and previous are garbage collected,
//     including their user records.
//
// Publishing a version that is already complete fails with ErrVersionExists.
// If step 4 or 5 fails, the error wraps ErrAfterFlip (m is current). m is
// only read. Publish is safe for concurrent use, but two concurrent
// publishers race for "current" (the later flip wins; both stay stored), and
// two concurrent Publish calls of the same version name with different
// content are not supported (the chunks of both may interleave).
func (s *Store) Publish(ctx context.Context, m Model) (ModelMeta, error) {
	if err := validateModel(&m); err != nil {
		return ModelMeta{}, err
	}
	v, dim, n := m.Version, m.Dim, len(m.Items.IDs)
	exists, err := s.rdb.Exists(ctx, s.k.meta(v)).Result()
	if err != nil {
		return ModelMeta{}, fmt.Errorf("checking model version %s: %w", v, err)
	}
	if exists > 0 {
		return ModelMeta{}, fmt.Errorf("publishing model version %s: %w", v, ErrVersionExists)
	}
	// Register the version before writing it, so that a crashed publish is
	// garbage collected by a later one.
	seq, err := s.rdb.Incr(ctx, s.k.seq()).Result()
	if err != nil {
		return ModelMeta{}, fmt.Errorf("registering model version %s: %w", v, err)
	}
	if err := s.rdb.ZAdd(ctx, s.k.versions(), redis.Z{Score: float64(seq), Member: v}).Err(); err != nil {
		return ModelMeta{}, fmt.Errorf("registering model version %s: %w", v, err)
	}

	rowBytes := 4 * (2 + dim)
	chunkItems := max(1, (s.cfg.ChunkBytes-itemChunkFixed)/rowBytes)
	chunks := (n + chunkItems - 1) / chunkItems
	biases := m.Items.Biases
	if biases == nil {
		biases = make([]float32, n)
	}
	pipe := s.rdb.Pipeline()
	pending := 0
	flush := func() error {
		if pipe.Len() == 0 {
			return nil
		}
		_, err := pipe.Exec(ctx)
		pending = 0
		return err
	}
	for c := range chunks {
		lo, hi := c*chunkItems, min(n, (c+1)*chunkItems)
		b := make([]byte, 0, itemChunkFixed+(hi-lo)*rowBytes)
		b = appendItemChunk(b, dim, m.Items.IDs[lo:hi], biases[lo:hi], m.Items.Vectors[lo*dim:hi*dim])
		pipe.Set(ctx, s.k.itemChunk(v, c), b, 0)
		if pending += len(b); pending >= s.cfg.PipelineBytes {
			if err := flush(); err != nil {
				return ModelMeta{}, fmt.Errorf("writing items of model version %s: %w", v, err)
			}
		}
	}
	pipe.Set(ctx, s.k.tower(v), m.TowerWeights, 0)
	if err := flush(); err != nil {
		return ModelMeta{}, fmt.Errorf("writing items and tower of model version %s: %w", v, err)
	}

	meta := ModelMeta{
		Version:       v,
		Dim:           dim,
		CreatedAtMs:   m.CreatedAtMs,
		ItemCount:     n,
		Calibration:   m.Calibration,
		TowerBytes:    len(m.TowerWeights),
		ChunkItems:    chunkItems,
		Chunks:        chunks,
		CandidateSets: m.CandidateSets, TrainedOffsets: m.TrainedOffsets, TrainedExcludedSources: m.TrainedExcludedSources,
		PublishedAtMs: time.Now().UnixMilli(),
	}
	js, err := json.Marshal(meta)
	if err != nil {
		return ModelMeta{}, fmt.Errorf("encoding meta of model version %s: %w", v, err)
	}
	ok, err := s.rdb.SetNX(ctx, s.k.meta(v), js, 0).Result()
	if err != nil {
		return ModelMeta{}, fmt.Errorf("writing meta of model version %s: %w", v, err)
	}
	if !ok {
		return ModelMeta{}, fmt.Errorf("publishing model version %s: %w (concurrent publish)", v, ErrVersionExists)
	}

	if m.Staged {
		return meta, nil
	}
	prev, err := flipScript.Run(ctx, s.rdb, []string{s.k.pointers(), s.k.meta(v)}, v).Text()
	if err != nil {
		return ModelMeta{}, fmt.Errorf("flipping current model version to %s: %w", v, err)
	}
	if prev == v { // cannot happen: v was not complete before; kept for safety
		prev = ""
	}
	var after []error
	if err := s.notify(ctx, ModelUpdate{Current: v, Previous: prev, Reason: "publish"}); err != nil {
		after = append(after, err)
	}
	if _, err := s.CollectGarbage(ctx); err != nil {
		after = append(after, err)
	}
	if len(after) > 0 {
		return meta, fmt.Errorf("%w: %s: %w", ErrAfterFlip, v, errors.Join(after...))
	}
	return meta, nil
}

func (s *Store) notify(ctx context.Context, u ModelUpdate) error {
	u.AtMs = time.Now().UnixMilli()
	js, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("encoding model update: %w", err)
	}
	// The notice, and the kept history of flips (publish, rollback,
	// restore) for the versions timeline: the last maxModelEvents.
	pipe := s.rdb.TxPipeline()
	pub := pipe.Publish(ctx, s.k.modelUpdates(), js)
	if u.Reason != "items" {
		pipe.RPush(ctx, s.k.modelEvents(), js)
		pipe.LTrim(ctx, s.k.modelEvents(), -maxModelEvents, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil || pub.Err() != nil {
		return fmt.Errorf("publishing model update notice: %w", errors.Join(err, pub.Err()))
	}
	return nil
}

// maxModelEvents bounds the kept history of version flips.
const maxModelEvents = 1000

func (k keys) modelEvents() string { return k.ns + keySep + segModel + keySep + "events" }

// ModelEvents returns the kept history of version flips (publish, rollback,
// restore; ModelUpdate, oldest first, at most the last 1,000). It is not
// rebuilt after a Redis flush.
func (s *Store) ModelEvents(ctx context.Context) ([]ModelUpdate, error) {
	raw, err := s.rdb.LRange(ctx, s.k.modelEvents(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the model events: %w", err)
	}
	out := make([]ModelUpdate, 0, len(raw))
	for _, r := range raw {
		var u ModelUpdate
		if json.Unmarshal([]byte(r), &u) == nil {
			out = append(out, u)
		}
	}
	return out, nil
}

// Versions returns the current and previous model versions ("" when unset).
func (s *Store) Versions(ctx context.Context) (current, previous string, err error) {
	vals, err := s.rdb.HMGet(ctx, s.k.pointers(), fieldCurrent, fieldPrevious).Result()
	if err != nil {
		return "", "", fmt.Errorf("reading model version pointers: %w", err)
	}
	current, _ = vals[0].(string)
	previous, _ = vals[1].(string)
	return current, previous, nil
}

// CurrentVersion returns the current model version, or ErrNoModel.
func (s *Store) CurrentVersion(ctx context.Context) (string, error) {
	cur, _, err := s.Versions(ctx)
	if err != nil {
		return "", err
	}
	if cur == "" {
		return "", ErrNoModel
	}
	return cur, nil
}

// Rollback makes the previous version current again (and the current one
// previous, so a second Rollback rolls forward), then PUBLISHes a notice.
// It fails with ErrNoPrevious when there is no previous version. If only the
// notice fails, the error wraps ErrAfterFlip.
func (s *Store) Rollback(ctx context.Context) (ModelUpdate, error) {
	for attempt := 0; ; attempt++ {
		cur, prev, err := s.Versions(ctx)
		if err != nil {
			return ModelUpdate{}, err
		}
		if cur == "" || prev == "" {
			return ModelUpdate{}, fmt.Errorf("rolling back from %q: %w", cur, ErrNoPrevious)
		}
		err = rollbackScript.Run(ctx, s.rdb, []string{s.k.pointers(), s.k.meta(prev)}, cur, prev).Err()
		if err != nil && isScriptError(err, "STREAMREC_CONFLICT") && attempt < 3 {
			continue
		}
		if err != nil && isScriptError(err, "STREAMREC_NOVERSION") {
			return ModelUpdate{}, fmt.Errorf("rolling back from %s to %s: %w", cur, prev, ErrNoPrevious)
		}
		if err != nil {
			return ModelUpdate{}, fmt.Errorf("rolling back from %s to %s: %w", cur, prev, err)
		}
		u := ModelUpdate{Current: prev, Previous: cur, Reason: "rollback"}
		if err := s.notify(ctx, u); err != nil {
			return u, fmt.Errorf("%w: rollback to %s: %w", ErrAfterFlip, prev, err)
		}
		return u, nil
	}
}

func isScriptError(err error, code string) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	return len(msg) >= len(code) && msg[:len(code)] == code
}

// Meta returns the meta of a complete version, or ErrVersionNotFound.
func (s *Store) Meta(ctx context.Context, version string) (ModelMeta, error) {
	if err := checkVersion(version); err != nil {
		return ModelMeta{}, err
	}
	js, err := s.rdb.Get(ctx, s.k.meta(version)).Bytes()
	if errors.Is(err, redis.Nil) {
		return ModelMeta{}, fmt.Errorf("reading meta of model version %s: %w", version, ErrVersionNotFound)
	}
	if err != nil {
		return ModelMeta{}, fmt.Errorf("reading meta of model version %s: %w", version, err)
	}
	var m ModelMeta
	if err := json.Unmarshal(js, &m); err != nil {
		return ModelMeta{}, fmt.Errorf("%w: meta of model version %s: %w", ErrCorrupt, version, err)
	}
	if m.Version != version || m.Dim <= 0 || m.Dim > maxDim || m.ItemCount <= 0 || m.ChunkItems <= 0 ||
		m.Chunks != (m.ItemCount+m.ChunkItems-1)/m.ChunkItems {
		return ModelMeta{}, fmt.Errorf("%w: meta of model version %s is inconsistent: %+v", ErrCorrupt, version, m)
	}
	return m, nil
}

// TowerWeights returns the user-tower blob of a complete version (owned by
// the caller), or ErrVersionNotFound.
func (s *Store) TowerWeights(ctx context.Context, version string) ([]byte, error) {
	if _, err := s.Meta(ctx, version); err != nil {
		return nil, err
	}
	b, err := s.rdb.Get(ctx, s.k.tower(version)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading tower of model version %s: %w (deleted)", version, ErrVersionNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading tower of model version %s: %w", version, err)
	}
	return b, nil
}

// ItemEmbeddings reads all items of a complete version into freshly
// allocated slices owned by the caller: one GET per chunk, pipelined, decoded
// straight into the contiguous row-major Vectors. ErrVersionNotFound if the
// version is not complete or is deleted while being read.
func (s *Store) ItemEmbeddings(ctx context.Context, version string) (ModelMeta, Items, error) {
	meta, err := s.Meta(ctx, version)
	if err != nil {
		return ModelMeta{}, Items{}, err
	}
	n, dim := meta.ItemCount, meta.Dim
	items := Items{
		IDs:     make([]uint32, n),
		Biases:  make([]float32, n),
		Vectors: make([]float32, n*dim),
	}
	chunkBytes := itemChunkFixed + meta.ChunkItems*4*(2+dim)
	perPipe := max(1, s.cfg.PipelineBytes/chunkBytes)
	for first := 0; first < meta.Chunks; first += perPipe {
		last := min(meta.Chunks, first+perPipe)
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.StringCmd, 0, last-first)
		for c := first; c < last; c++ {
			cmds = append(cmds, pipe.Get(ctx, s.k.itemChunk(version, c)))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return ModelMeta{}, Items{}, fmt.Errorf("reading items of model version %s: %w", version, err)
		}
		for i, cmd := range cmds {
			c := first + i
			val, err := cmd.Result()
			if errors.Is(err, redis.Nil) {
				return ModelMeta{}, Items{}, fmt.Errorf("reading item chunk %d of model version %s: %w (deleted)", c, version, ErrVersionNotFound)
			}
			if err != nil {
				return ModelMeta{}, Items{}, fmt.Errorf("reading item chunk %d of model version %s: %w", c, version, err)
			}
			lo, hi := c*meta.ChunkItems, min(n, (c+1)*meta.ChunkItems)
			if err := decodeItemChunk(val, dim, items.IDs[lo:hi], items.Biases[lo:hi], items.Vectors[lo*dim:hi*dim]); err != nil {
				return ModelMeta{}, Items{}, fmt.Errorf("decoding item chunk %d of model version %s: %w", c, version, err)
			}
		}
	}
	// Videos registered after training join the published ones.
	rids, rbias, rvecs, fields, err := s.registeredItems(ctx, version, dim)
	if err != nil {
		return ModelMeta{}, Items{}, err
	}
	meta.Registered = fields
	if len(rids) > 0 {
		published := make(map[uint32]bool, n)
		for _, id := range items.IDs {
			published[id] = true
		}
		for i, id := range rids {
			if published[id] {
				continue
			}
			items.IDs = append(items.IDs, id)
			items.Biases = append(items.Biases, rbias[i])
			items.Vectors = append(items.Vectors, rvecs[i*dim:(i+1)*dim]...)
			meta.RegisteredIDs = append(meta.RegisteredIDs, id)
		}
		meta.ItemCount = len(items.IDs)
	}
	return meta, items, nil
}
