package cache

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
)

// Videos registered after training (Store.RegisterItem) are kept per model
// version in the hash "ns:model:v:newitems" (field: the decimal video id;
// value: the bias and the vector, float32 little endian) and join the
// version's items wherever they are read (ItemEmbeddings, so LoadItemIndex
// and every ItemCache); the version's garbage collection deletes them.

// RegisterItem adds (or replaces) the embedding of a video that is not an
// item of the published version, then PUBLISHes a ModelUpdate notice with
// Reason "items" so that every follower reloads the version's items. The
// caller checks that id is not a published item (a registered id that is
// also a published one is ignored on load). vec has the version's dim and
// is only read.
func (s *Store) RegisterItem(ctx context.Context, version string, id uint32, bias float32, vec []float32) error {
	meta, err := s.Meta(ctx, version)
	if err != nil {
		return err
	}
	if len(vec) != meta.Dim {
		return fmt.Errorf("%w: registered item %d: dim %d, version %s has %d", ErrInvalid, id, len(vec), version, meta.Dim)
	}
	b := make([]byte, 0, 4+4*len(vec))
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(bias))
	for _, v := range vec {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%w: registered item %d: non-finite value", ErrInvalid, id)
		}
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	if err := s.rdb.HSet(ctx, s.k.newItems(version), strconv.FormatUint(uint64(id), 10), b).Err(); err != nil {
		return fmt.Errorf("registering video %d under version %s: %w", id, version, err)
	}
	cur, prev, err := s.Versions(ctx)
	if err != nil {
		return fmt.Errorf("%w: video %d registered: %w", ErrAfterFlip, id, err)
	}
	if err := s.notify(ctx, ModelUpdate{Current: cur, Previous: prev, Reason: "items"}); err != nil {
		return fmt.Errorf("%w: video %d registered: %w", ErrAfterFlip, id, err)
	}
	return nil
}

// RegisteredCount returns how many videos are registered under version.
func (s *Store) RegisteredCount(ctx context.Context, version string) (int, error) {
	n, err := s.rdb.HLen(ctx, s.k.newItems(version)).Result()
	if err != nil {
		return 0, fmt.Errorf("counting the registered videos of version %s: %w", version, err)
	}
	return int(n), nil
}

// registeredItems reads the videos registered under version (of dim dim);
// values that do not decode are skipped. fields is the hash's length (what
// RegisteredCount returns).
func (s *Store) registeredItems(ctx context.Context, version string, dim int) (ids []uint32, biases, vecs []float32, fields int, err error) {
	h, err := s.rdb.HGetAll(ctx, s.k.newItems(version)).Result()
	if err != nil {
		return nil, nil, nil, 0, fmt.Errorf("reading the registered videos of version %s: %w", version, err)
	}
	for f, v := range h {
		id, err := strconv.ParseUint(f, 10, 32)
		if err != nil || len(v) != 4+4*dim {
			continue
		}
		ids = append(ids, uint32(id))
		biases = append(biases, math.Float32frombits(binary.LittleEndian.Uint32([]byte(v[:4]))))
		for j := range dim {
			vecs = append(vecs, math.Float32frombits(binary.LittleEndian.Uint32([]byte(v[4+4*j:8+4*j]))))
		}
	}
	return ids, biases, vecs, len(h), nil
}
