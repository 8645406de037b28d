package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// OfflineUsers are a model version's user vectors as training left them: the
// frozen twin of the online evaluation scores with them, and nothing online
// ever writes them (the updater writes the serving records, UserRecord, under
// other keys). Row i is Vectors[i*Dim:(i+1)*Dim], user IDs[i], bias Biases[i].
//
// Keys: ns:model:v:uoff holds the number of chunks, ns:model:v:uoff:i chunk i
// (the item chunk encoding); under the version's prefix, so the version's
// garbage collection deletes them.
type OfflineUsers struct {
	Dim     int
	IDs     []uint32
	Biases  []float32
	Vectors []float32
}

func (k keys) offlineUsers(v string) string { return k.modelPrefix(v) + "uoff" }
func (k keys) offlineChunk(v string, i int) string {
	return k.modelPrefix(v) + "uoff" + keySep + strconv.Itoa(i)
}

// PutOfflineUsers stores a version's offline user vectors in chunks of about
// Config.ChunkBytes, the chunk count last. Write them before Publish makes the
// version current, as the ingestor does with the serving records.
func (s *Store) PutOfflineUsers(ctx context.Context, version string, u OfflineUsers) error {
	if err := checkVersion(version); err != nil {
		return err
	}
	n := len(u.IDs)
	if u.Dim <= 0 || u.Dim > maxDim || len(u.Vectors) != n*u.Dim || len(u.Biases) != n {
		return fmt.Errorf("%w: offline users of %s: %d ids, %d biases, %d values, dim %d", ErrInvalid, version, n, len(u.Biases), len(u.Vectors), u.Dim)
	}
	per := max(1, (s.cfg.ChunkBytes-itemChunkFixed)/(4*(2+u.Dim)))
	chunks := (n + per - 1) / per
	pipe := s.rdb.Pipeline()
	bytes := 0
	for c := range chunks {
		lo, hi := c*per, min(n, (c+1)*per)
		b := appendItemChunk(make([]byte, 0, itemChunkFixed+(hi-lo)*4*(2+u.Dim)), u.Dim, u.IDs[lo:hi], u.Biases[lo:hi], u.Vectors[lo*u.Dim:hi*u.Dim])
		pipe.Set(ctx, s.k.offlineChunk(version, c), b, 0)
		if bytes += len(b); bytes >= s.cfg.PipelineBytes {
			if _, err := pipe.Exec(ctx); err != nil {
				return fmt.Errorf("writing offline users of model version %s: %w", version, err)
			}
			bytes = 0
		}
	}
	pipe.Set(ctx, s.k.offlineUsers(version), chunks, 0)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("writing offline users of model version %s: %w", version, err)
	}
	return nil
}

// GetOfflineUsers reads a version's offline user vectors; found is false when
// the version has none (published before they were kept). The slices belong
// to the caller.
func (s *Store) GetOfflineUsers(ctx context.Context, version string) (u OfflineUsers, found bool, err error) {
	if err := checkVersion(version); err != nil {
		return u, false, err
	}
	chunks, err := s.rdb.Get(ctx, s.k.offlineUsers(version)).Int()
	if errors.Is(err, redis.Nil) {
		return u, false, nil
	}
	if err != nil {
		return u, false, fmt.Errorf("reading offline users of model version %s: %w", version, err)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, chunks)
	for c := range cmds {
		cmds[c] = pipe.Get(ctx, s.k.offlineChunk(version, c))
	}
	if chunks > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return u, false, fmt.Errorf("reading offline users of model version %s: %w", version, err)
		}
	}
	for c, cmd := range cmds {
		v, err := cmd.Result()
		if err != nil {
			return OfflineUsers{}, false, fmt.Errorf("reading offline user chunk %d of model version %s: %w", c, version, err)
		}
		if len(v) < itemChunkFixed {
			return OfflineUsers{}, false, fmt.Errorf("%w: offline user chunk %d of %s: short value", ErrCorrupt, c, version)
		}
		dim, n := int(le32(v, 1)), int(le32(v, 5))
		if dim <= 0 || dim > maxDim || n < 0 || n > len(v) || (u.Dim != 0 && dim != u.Dim) {
			return OfflineUsers{}, false, fmt.Errorf("%w: offline user chunk %d of %s: bad header", ErrCorrupt, c, version)
		}
		u.Dim = dim
		lo := len(u.IDs)
		u.IDs = append(u.IDs, make([]uint32, n)...)
		u.Biases = append(u.Biases, make([]float32, n)...)
		u.Vectors = append(u.Vectors, make([]float32, n*dim)...)
		if err := decodeItemChunk(v, dim, u.IDs[lo:], u.Biases[lo:], u.Vectors[lo*dim:]); err != nil {
			return OfflineUsers{}, false, fmt.Errorf("offline user chunk %d of %s: %w", c, version, err)
		}
	}
	return u, true, nil
}
