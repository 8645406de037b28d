package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/towers"
)

// FallbackFeatureTower is the fallback of a user without a usable embedding
// whose features the version holds: the version's user tower applied to
// them.
const FallbackFeatureTower = "feature_tower"

// ColdStartSource is what the cold-start data is loaded from at swap time;
// *cache.Store implements it.
type ColdStartSource interface {
	TowerWeights(ctx context.Context, version string) ([]byte, error)
	GetUserFeatures(ctx context.Context, version string) (cache.UserFeatures, bool, error)
	GetPopularity(ctx context.Context, version string) (cache.Popularity, bool, error)
}

// coldStart is a version's cold-start data, attached to its item index
// (cache.ItemIndex.Attach) when the index is loaded: the user tower and the
// users' features (the feature-tower fallback) and the popularity ranking.
// Immutable once attached.
type coldStart struct {
	// tower is the version's user tower; nil: no feature-tower fallback
	// (the version has no tower or no user features, or they do not fit).
	tower  []towers.LayerWeights
	widest int
	inDim  int
	rows   map[uint32]int32 // user id -> row of feats
	feats  []float32        // len(rows) x inDim
	scale  float32
	// itemTower is the version's item tower (registering a video embeds its
	// features with it); nil: the version has none that fits.
	itemTower  []towers.LayerWeights
	itemWidest int
	// popular is every item, best first: by count of positive interactions
	// (label), then by the model's item-bias score (see fallbackCache).
	popular []cache.Scored
	label   string
}

// ColdStartExtender returns an ItemCache.Extend that attaches the version's
// cold-start data to each loaded index. A version without a tower, user
// features or popularity (or with ones that do not fit the index) is served
// without that part, with a warning; only a failure to read Redis is an
// error (the swap is retried).
func ColdStartExtender(src ColdStartSource, logger *slog.Logger) func(ctx context.Context, x *cache.ItemIndex) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "cold-start")
	return func(ctx context.Context, x *cache.ItemIndex) error {
		cs, warn, err := loadColdStart(ctx, src, x)
		if err != nil {
			return err
		}
		for _, w := range warn {
			logger.Warn("cold start of model version "+x.Version(), "problem", w)
		}
		logger.Info("cold start loaded", "version", x.Version(), "feature_tower", cs.tower != nil, "users_with_features", len(cs.rows),
			"popularity_label", cs.label)
		x.Attach(cs)
		return nil
	}
}

func loadColdStart(ctx context.Context, src ColdStartSource, x *cache.ItemIndex) (*coldStart, []string, error) {
	v := x.Version()
	cs := &coldStart{scale: float32(x.Meta().Calibration.Scale)}
	var warn []string
	blob, err := src.TowerWeights(ctx, v)
	switch {
	case errors.Is(err, cache.ErrVersionNotFound):
		warn = append(warn, "no tower weights: no feature-tower fallback")
	case err != nil:
		return nil, nil, err
	}
	var user []towers.LayerWeights
	if len(blob) > 0 {
		tw, err := towers.DecodeTowers(blob)
		if err != nil {
			warn = append(warn, fmt.Sprintf("tower weights: %v: no feature-tower fallback", err))
		} else {
			if user = towers.FindTower(tw, "user"); user == nil {
				warn = append(warn, "no user tower: no feature-tower fallback")
			}
			if it := towers.FindTower(tw, "item"); it != nil && it[len(it)-1].Out == x.Dim() {
				cs.itemTower = it
				for _, l := range it {
					cs.itemWidest = max(cs.itemWidest, l.Out)
				}
			} else {
				warn = append(warn, "no item tower of the index's dim: videos cannot be registered")
			}
		}
	}
	if user != nil {
		f, found, err := src.GetUserFeatures(ctx, v)
		switch {
		case err != nil && !errors.Is(err, cache.ErrCorrupt):
			return nil, nil, err
		case err != nil:
			warn = append(warn, fmt.Sprintf("user features: %v: no feature-tower fallback", err))
		case !found:
			warn = append(warn, "no user features: no feature-tower fallback")
		case f.Dim != user[0].In || user[len(user)-1].Out != x.Dim():
			warn = append(warn, fmt.Sprintf("user tower %d -> %d does not fit features of %d and items of dim %d: no feature-tower fallback",
				user[0].In, user[len(user)-1].Out, f.Dim, x.Dim()))
		default:
			cs.tower, cs.inDim, cs.feats = user, f.Dim, f.Feats
			cs.rows = make(map[uint32]int32, len(f.IDs))
			for i, id := range f.IDs {
				cs.rows[id] = int32(i)
			}
			for _, l := range user {
				cs.widest = max(cs.widest, l.Out)
			}
		}
	}
	pop, found, err := src.GetPopularity(ctx, v)
	switch {
	case err != nil && !errors.Is(err, cache.ErrCorrupt):
		return nil, nil, err
	case err != nil:
		warn = append(warn, fmt.Sprintf("popularity: %v: the item-bias order instead", err))
	case !found:
		warn = append(warn, "no popularity counts: the item-bias order instead")
	}
	cs.label = pop.Label
	cs.popular = popularRanking(x, pop)
	return cs, warn, nil
}

// popularRanking orders every item of x by its count in p (descending),
// then by the item-bias score (itemBiasRanking), then by id.
func popularRanking(x *cache.ItemIndex, p cache.Popularity) []cache.Scored {
	ranked := itemBiasRanking(x)
	if len(p.IDs) == 0 {
		return ranked
	}
	counts := make(map[uint32]uint32, len(p.IDs))
	for i, id := range p.IDs {
		counts[id] = p.Counts[i]
	}
	pos := make(map[uint32]int, len(ranked))
	for i, r := range ranked {
		pos[r.ID] = i
	}
	slices.SortStableFunc(ranked, func(a, b cache.Scored) int {
		if c := cmp.Compare(counts[b.ID], counts[a.ID]); c != 0 {
			return c
		}
		return cmp.Compare(pos[a.ID], pos[b.ID])
	})
	return ranked
}

// userEmbedding writes the feature tower's embedding of user into dst (the
// index's dim) and returns the user bias; false when the user has no
// features or the version no feature tower.
func (cs *coldStart) userEmbedding(user uint32, dst []float32) (float32, bool) {
	if cs == nil || cs.tower == nil {
		return 0, false
	}
	r, ok := cs.rows[user]
	if !ok {
		return 0, false
	}
	dense := make([]float32, len(dst)+2*cs.widest)
	scratch := dense[len(dst):]
	dense = dense[:len(dst)]
	towers.ApplyTower(dense, cs.tower, cs.feats[int(r)*cs.inDim:(int(r)+1)*cs.inDim], scratch)
	bias := towers.UserEmbedding(dst, dense, make([]float32, len(dst)), cs.scale)
	if !finite(bias) || !allFinite(dst) {
		return 0, false
	}
	return bias, true
}

func coldStartOf(x *cache.ItemIndex) *coldStart {
	cs, _ := x.Attached().(*coldStart)
	return cs
}
