package online

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/streamrec/streamrec/internal/stream"
)

// MarkerStore holds an instance's liveness marker in Redis (*cache.Store
// implements it): the marker's disappearance says Redis lost its data.
type MarkerStore interface {
	// TouchMarker extends the marker's TTL and reports whether it existed.
	TouchMarker(ctx context.Context, name string, ttl time.Duration) (bool, error)
	SetMarker(ctx context.Context, name string, value int64, ttl time.Duration) error
}

// StateSource is where the state of assigned partitions comes from
// (*Changelog implements it).
type StateSource interface {
	Read(ctx context.Context, partitions []int) (map[uint32]*UserState, error)
	ReadDense(ctx context.Context) (*DenseCheckpoint, error)
}

// Keeper is the updater's restore and rebuild policy: on every partition
// assignment it restores those partitions' user states (and, in dense mode,
// the dense checkpoint) from the changelog, as Kafka Streams restores a state
// store; and whenever its Redis marker is gone (a flush) it rewrites every
// user it holds to Redis. Its methods are the consumer's OnAssign and the
// Redis watcher.
type Keeper struct {
	Updater *Updater
	State   StateSource
	Markers MarkerStore
	// Marker is this instance's marker name (one per instance, so that every
	// instance notices a flush and rebuilds its own users); it lives
	// MarkerTTL unless touched.
	Marker    string
	MarkerTTL time.Duration
	// Partitions is the interactions topic's partition count the updater
	// started with; CountPartitions, if set, reads the current one, and an
	// assignment under another count stops the consumer (users moved
	// partitions, so input positions no longer say what was applied).
	Partitions      int
	CountPartitions func(ctx context.Context) (int, error)
	// Fence, if set, acquires a new fencing epoch (stream.AcquireEpoch) at
	// every assignment, before the restore: every state and record written
	// under the assignment carries it, and Redis refuses writes from older
	// epochs (a paused updater that lost its partitions).
	Fence func(ctx context.Context) (uint64, error)
	// Dense restores the dense checkpoint too.
	Dense  bool
	Logger *slog.Logger
}

// OnAssign is the consumer's OnAssign: it restores the state of parts and
// makes sure Redis holds it.
func (k *Keeper) OnAssign(ctx context.Context, parts []int) error {
	start := time.Now()
	if k.CountPartitions != nil {
		n, err := k.CountPartitions(ctx)
		if err != nil {
			return err
		}
		if n != k.Partitions {
			return stream.Permanent(fmt.Errorf("the partition count of the interactions topic changed from %d to %d while the updater ran: "+
				"users moved partitions, so input positions no longer say what was applied; stopping", k.Partitions, n))
		}
	}
	if k.Fence != nil {
		epoch, err := k.Fence(ctx)
		if err != nil {
			return err
		}
		k.Updater.SetEpoch(epoch)
	}
	restored, err := k.State.Read(ctx, parts)
	if err != nil {
		return err
	}
	k.Updater.Restore(restored, parts, k.Partitions)
	k.logger().Info("state restored from the changelog", "partitions", parts, "users", len(restored), "epoch", k.Updater.Epoch(), "took", time.Since(start))
	if n, err := k.Updater.Repair(ctx); err != nil {
		return err
	} else if n > 0 {
		k.logger().Warn("users written again: their latest changelog record was a stale writer's", "users", n, "epoch", k.Updater.Epoch())
	}
	if k.Dense {
		cp, err := k.State.ReadDense(ctx)
		if err != nil {
			return err
		}
		if ok, err := k.Updater.RestoreDense(cp); err != nil {
			return err
		} else if ok {
			k.logger().Info("dense weights restored from their checkpoint", "version", cp.Version, "steps", cp.Steps, "offsets", cp.Offsets)
		}
	}
	// Whatever Redis holds, the restored states are written once more when
	// the marker says Redis lost them.
	return k.EnsureRedis(ctx)
}

// EnsureRedis touches the marker; when it is gone, it rewrites every held
// user to Redis (Updater.Rebuild) and sets the marker again.
func (k *Keeper) EnsureRedis(ctx context.Context) error {
	if ok, err := k.Markers.TouchMarker(ctx, k.Marker, k.MarkerTTL); err != nil || ok {
		return err
	}
	n, err := k.Updater.Rebuild(ctx)
	if err != nil {
		return fmt.Errorf("rebuilding Redis from the changelog: %w", err)
	}
	k.logger().Info("Redis (re)built from the changelog", "users", n)
	return k.Markers.SetMarker(ctx, k.Marker, time.Now().UnixMilli(), k.MarkerTTL)
}

// WatchRedis runs EnsureRedis every interval until ctx ends.
func (k *Keeper) WatchRedis(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := k.EnsureRedis(ctx); err != nil && ctx.Err() == nil {
				k.logger().Warn("checking Redis", "err", err)
			}
		}
	}
}

func (k *Keeper) logger() *slog.Logger {
	if k.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return k.Logger
}
