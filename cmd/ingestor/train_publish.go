package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/modellog"
	"github.com/streamrec/streamrec/internal/towers"
)

// userBatch is the number of user records written per PutUsers pipeline.
const userBatch = 2000

type publishReport struct {
	Addr      string `json:"redis_addr"`
	Namespace string `json:"namespace"`
	Version   string `json:"version"`
	Previous  string `json:"previous"`
	Items     int    `json:"items"`
	Users     int    `json:"users"`
	Chunks    int    `json:"chunks"`
	// AfterFlip is the error of a step after the flip (notice or GC), if
	// any: the version is current all the same.
	AfterFlip string `json:"after_flip_error,omitempty"`
	// ModelLog is the model log topic the version was written to ("": off).
	ModelLog string `json:"model_log,omitempty"`
}

// openStore connects to Redis at addr and checks that it answers, so that a
// bad address fails before training rather than after it. The caller closes
// the returned client.
func openStore(ctx context.Context, ro cache.ClientOptions, namespace string) (*cache.Store, *redis.Client, error) {
	if err := ro.Validate(); err != nil {
		return nil, nil, err
	}
	addr := ro.Addr
	rdb := ro.NewClient()
	cfg := cache.DefaultConfig()
	cfg.Namespace = namespace
	st, err := cache.NewStore(rdb, cfg)
	if err == nil {
		err = st.Ping(ctx)
	}
	if err != nil {
		_ = rdb.Close()
		return nil, nil, fmt.Errorf("redis at %s: %w", addr, err)
	}
	return st, rdb, nil
}

// publish publishes m to st (see publishModel) and logs a failure after the
// flip as a warning: the version is current all the same. With the model log
// (ml not nil) it first restores Redis from the log if Redis has no model
// (so that the version published now is registered after the log's, and the
// log's current version becomes previous), and then writes the version and
// the pointers to the log: the version survives a Redis flush once publish
// returns.
func publish(ctx context.Context, logger *slog.Logger, st *cache.Store, ml *modellog.Restorer, addr string, m *towers.TwoTower, feats *kuairec.Features, train []towers.Interactions, sets map[string][]uint32, lin lineage) (*publishReport, error) {
	if ml != nil {
		if _, err := st.CurrentVersion(ctx); errors.Is(err, cache.ErrNoModel) {
			rep, err := ml.Restore(ctx)
			if err != nil {
				return nil, fmt.Errorf("restoring Redis from the model log before publishing: %w", err)
			}
			if len(rep.Versions) > 0 {
				logger.Info("Redis had no model: restored from the model log first", "versions", rep.Versions, "users", rep.Users)
			}
		} else if err != nil {
			return nil, err
		}
	}
	now := time.Now()
	pr, err := publishModel(ctx, st, m, feats, train, sets, lin, now)
	if pr != nil {
		pr.Addr = addr
		if pr.AfterFlip != "" {
			logger.Warn("model version is current, but a step after the flip failed", "version", pr.Version, "err", pr.AfterFlip)
		}
	}
	if err != nil || ml == nil {
		return pr, err
	}
	if err := ml.Backup(ctx, now.UnixMilli()); err != nil {
		return pr, fmt.Errorf("model version %s is current in Redis, but writing it to the model log failed (a Redis flush would lose it until 'ingestor restore --follow' copies it): %w", pr.Version, err)
	}
	pr.ModelLog = ml.Log.Topic()
	return pr, nil
}

// publishModel publishes m as a new model version to st and writes every
// user's initial embedding under it:
//
//   - items: every video of item_categories.csv (the item feature rows), with
//     e_i = T_i(x_i) + q_i as towers exports it; videos unseen in training get
//     the item tower's output on their features alone (q_i = 0). The item
//     bias is the vector's last coordinate (the user embedding's last
//     coordinate is 1), so Items.Biases are left zero: TopK with or without
//     UseBias ranks the same;
//   - calibration: GlobalMean mu and Scale s; predicted watch ratio =
//     mu + UserRecord.Bias + <e_u, e_i>. Extra holds "target_cap" and, when
//     the model was trained with a cut, "cut_ms" (see towers.MetaCutMS);
//   - tower weights: the towers tower-weights blob (towers.DecodeTowers),
//     towers "user" and "item";
//   - candidate sets: sets, restricted to the published items (train
//     publishes "small_matrix", the videos of the small matrix);
//   - popularity: per video, the positive interactions (PopularityLabel)
//     of train, for the API's popularity fallback;
//
// and for every user of user_features.csv the record {Embedding e_u, Bias
// a_u[D-1], UpdatedAtMs now, no input position (InputNext 0)}. The user records are written
// first (PutUsers in batches, under the new version's keys, which nobody reads
// yet), then Store.Publish writes the items and flips the current version (the
// old current is kept as previous for rollback), so a reader that sees the new
// version finds every user's embedding at once. If the process dies between
// the two, the user records of the never-registered version are left behind
// (they are not garbage collected; set Config.UserTTL to bound them).
func publishModel(ctx context.Context, st *cache.Store, m *towers.TwoTower, feats *kuairec.Features, train []towers.Interactions, sets map[string][]uint32, lin lineage, now time.Time) (*publishReport, error) {
	D := m.Dim()
	nItems := len(feats.Items.IDs)
	emb := m.ItemEmbeddings(feats.Items.Reduced, allRows32(nItems))
	items := cache.Items{IDs: append([]uint32(nil), feats.Items.IDs...), Vectors: make([]float32, nItems*D)}
	for i, v := range emb.Data {
		items.Vectors[i] = float32(v)
	}
	extra := map[string]float64{}
	for _, k := range []string{towers.MetaCutMS, towers.MetaTargetCap, towers.MetaLastTrainMS} {
		if v, ok := m.Meta[k]; ok {
			extra[k] = v
		}
	}
	model := cache.Model{
		Version: m.Version, Dim: D, CreatedAtMs: now.UnixMilli(),
		Calibration:  cache.Calibration{GlobalMean: m.GlobalMean, Scale: m.Scale(), Extra: extra},
		Items:        items,
		TowerWeights: m.TowerBlob(),
		// What the version trained on beyond the cut: the updater never
		// applies those events on top of it.
		TrainedOffsets: lin.offsets, TrainedExcludedSources: lin.excluded, Staged: lin.staged,
	}
	if len(sets) > 0 {
		known := make(map[uint32]bool, nItems)
		for _, id := range items.IDs {
			known[id] = true
		}
		model.CandidateSets = map[string][]uint32{}
		for name, ids := range sets {
			var in []uint32
			for _, id := range ids {
				if known[id] {
					in = append(in, id)
				}
			}
			if len(in) > 0 {
				model.CandidateSets[name] = in
			}
		}
	}
	pr := &publishReport{Namespace: st.Namespace(), Version: m.Version, Items: nItems}
	if _, err := st.Meta(ctx, m.Version); err == nil {
		return nil, fmt.Errorf("publishing model version %s: %w", m.Version, cache.ErrVersionExists)
	} else if !errors.Is(err, cache.ErrVersionNotFound) {
		return nil, fmt.Errorf("checking model version %s: %w", m.Version, err)
	}
	nUsers := len(feats.Users.IDs)
	ue, bias := m.UserEmbeddings(feats.Users.Reduced, allRows32(nUsers))
	recs := make([]cache.UserRecord, 0, userBatch)
	// The offline vectors, kept apart from the serving records (the updater
	// overwrites those): the frozen twin of the online evaluation scores
	// with them.
	off := cache.OfflineUsers{Dim: D, IDs: feats.Users.IDs, Biases: make([]float32, nUsers), Vectors: make([]float32, 0, nUsers*D)}
	for lo := 0; lo < nUsers; lo += userBatch {
		recs = recs[:0]
		for u := lo; u < min(lo+userBatch, nUsers); u++ {
			vec := make([]float32, D)
			for j, v := range ue.Row(u) {
				vec[j] = float32(v)
			}
			recs = append(recs, cache.UserRecord{UserID: feats.Users.IDs[u], ModelVersion: m.Version,
				Embedding: vec, Bias: float32(bias[u]), UpdatedAtMs: now.UnixMilli()})
			off.Vectors, off.Biases[u] = append(off.Vectors, vec...), float32(bias[u])
		}
		if err := st.PutUsers(ctx, m.Version, recs); err != nil {
			return nil, fmt.Errorf("publishing user embeddings of version %s (%d of %d written): %w", m.Version, lo, nUsers, err)
		}
		pr.Users += len(recs)
	}
	// The users' model input features, for the updater's dense mode (online
	// fine-tuning of the user tower); before the flip, like the users.
	uf := cache.UserFeatures{Dim: feats.Users.Reduced.RawMatrix().Cols, IDs: feats.Users.IDs}
	uf.Feats = make([]float32, 0, nUsers*uf.Dim)
	for u := 0; u < nUsers; u++ {
		for _, v := range feats.Users.Reduced.RawRowView(u) {
			uf.Feats = append(uf.Feats, float32(v))
		}
	}
	if err := st.PutUserFeatures(ctx, m.Version, uf); err != nil {
		return nil, fmt.Errorf("publishing user features of version %s: %w", m.Version, err)
	}
	if err := st.PutOfflineUsers(ctx, m.Version, off); err != nil {
		return nil, fmt.Errorf("publishing offline user vectors of version %s: %w", m.Version, err)
	}
	// The popularity the API's cold start ranks by (before the flip too).
	if err := st.PutPopularity(ctx, m.Version, popularity(feats.Items.IDs, train)); err != nil {
		return nil, fmt.Errorf("publishing the popularity of version %s: %w", m.Version, err)
	}
	meta, err := st.Publish(ctx, model)
	if err != nil && !errors.Is(err, cache.ErrAfterFlip) {
		return nil, fmt.Errorf("publishing model version %s: %w", m.Version, err)
	}
	if err != nil {
		pr.AfterFlip = err.Error()
	}
	pr.Chunks = meta.Chunks
	if _, prev, verr := st.Versions(ctx); verr == nil {
		pr.Previous = prev
	}

	return pr, nil
}

// PopularityLabel is what the published popularity counts: interactions
// with a watch ratio of at least 0.8 (towers.RelevantAt08, the relevance
// threshold of the offline metrics and of their popularity baseline).
const PopularityLabel = "watch_ratio>=0.8"

// popularity counts, per video (feature row), the positive interactions
// (PopularityLabel) of the training data (train and validation rows: every
// row before the cut); videos without one are left out.
func popularity(itemIDs []uint32, train []towers.Interactions) cache.Popularity {
	counts := make([]uint32, len(itemIDs))
	for _, x := range train {
		for k, i := range x.Item {
			if towers.RelevantAt08.Relevant(float64(x.WatchRatio[k])) {
				counts[i]++
			}
		}
	}
	p := cache.Popularity{Label: PopularityLabel}
	for i, c := range counts {
		if c > 0 {
			p.IDs = append(p.IDs, itemIDs[i])
			p.Counts = append(p.Counts, c)
		}
	}
	return p
}

func allRows32(n int) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = int32(i)
	}
	return s
}
