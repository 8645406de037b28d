package online

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/streamrec/streamrec/internal/stream"
)

// Changelog keeps the updater's durable state in Kafka (through
// stream.StateLog): the compacted topic of user states, keyed by user id and
// co-partitioned with the interactions topic (same partition count, murmur2
// on the same key), so the owner of an input partition restores exactly the
// changelog partition of the same number; and, beside it, the compacted topic
// of dense checkpoints (DenseTopic). It owns the values' encoding and what a
// restore makes of them (stale writers, poison).
type Changelog struct {
	// Poison, if set, counts the records Read and ReadDense skip as
	// undecodable; Logger, if set, logs each once with its position.
	Poison *Poison
	Logger *slog.Logger

	states *stream.StateLog
	dense  *stream.StateLog
	buf    []byte
	recs   []stream.StateRecord
}

// NewChangelog returns a writer and reader of the state topic and its dense
// topic.
func NewChangelog(brokers []string, topic string) *Changelog {
	return &Changelog{states: stream.NewStateLog(brokers, topic, 1<<20),
		dense: stream.NewStateLog(brokers, DenseTopic(topic), 16<<20)}
}

// Write writes the states and returns once every record is acknowledged by all
// in-sync replicas. It is not safe for concurrent use (the Updater serialises).
func (c *Changelog) Write(ctx context.Context, states []*UserState) error {
	c.buf = c.buf[:0]
	offs := make([]int, 0, 2*len(states)+1)
	for _, s := range states {
		offs = append(offs, len(c.buf))
		c.buf = stream.AppendKey(c.buf, s.UserID)
		offs = append(offs, len(c.buf))
		c.buf = AppendState(c.buf, s)
	}
	offs = append(offs, len(c.buf))
	c.recs = c.recs[:0]
	for i := range states {
		k0, v0, end := offs[2*i], offs[2*i+1], offs[2*i+2]
		c.recs = append(c.recs, stream.StateRecord{Key: c.buf[k0:v0:v0], Value: c.buf[v0:end:end]})
	}
	if err := c.states.Write(ctx, c.recs); err != nil {
		return fmt.Errorf("writing %d user states: %w", len(states), err)
	}
	return nil
}

// Close flushes and closes the writers.
func (c *Changelog) Close() error { return errors.Join(c.states.Close(), c.dense.Close()) }

// Read returns the latest state of every user on the given partitions, reading
// each from its start to the end it had when Read began. A record at an
// earlier input position than the user's previous record is a stale writer's
// and is ignored (see staleAfter); a poison record is counted and skipped,
// and a user whose last record is poison is left out (it is materialised from
// its Redis record at its next event) rather than restored from an older one.
func (c *Changelog) Read(ctx context.Context, partitions []int) (map[uint32]*UserState, error) {
	out := map[uint32]*UserState{}
	err := c.states.Read(ctx, partitions, func(p int, off int64, key, value []byte) error {
		uid, err := strconv.ParseUint(string(key), 10, 32)
		if err != nil {
			c.poison(PoisonChangelogKey, c.states.Topic(), p, off, fmt.Errorf("key %q is not a user id", truncateKey(key)))
			return nil
		}
		s := &UserState{UserID: uint32(uid), durable: true}
		if err := DecodeState(value, s); err != nil {
			c.poison(PoisonChangelogState, c.states.Topic(), p, off, fmt.Errorf("user %d: %w", uid, err))
			delete(out, uint32(uid))
			return nil
		}
		if prev, ok := out[s.UserID]; !ok || !staleAfter(prev, s) {
			out[s.UserID] = s
		} else {
			prev.repair = true // the latest record is stale: write prev again
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Changelog) poison(reason, topic string, partition int, offset int64, err error) {
	if c.Poison != nil {
		c.Poison.Add(reason)
	}
	if c.Logger != nil {
		c.Logger.Warn("skipping a poison record", "reason", reason, "topic", topic,
			"partition", partition, "offset", offset, "err", err)
	}
}

func truncateKey(k []byte) string {
	if len(k) > 32 {
		return string(k[:32]) + "..."
	}
	return string(k)
}

// DenseTopic is the topic of dense checkpoints next to a changelog topic.
func DenseTopic(changelog string) string { return changelog + ".dense" }

// WriteDense writes a dense checkpoint (key = model version) to the dense
// topic and returns once it is acknowledged (acks=all).
func (c *Changelog) WriteDense(ctx context.Context, cp *DenseCheckpoint) error {
	if err := c.dense.Write(ctx, []stream.StateRecord{{Key: []byte(cp.Version), Value: AppendDense(nil, cp)}}); err != nil {
		return fmt.Errorf("writing the dense checkpoint: %w", err)
	}
	return nil
}

// ReadDense returns the latest dense checkpoint (the last record of the dense
// topic's single partition), or nil when there is none or it is poison.
func (c *Changelog) ReadDense(ctx context.Context) (*DenseCheckpoint, error) {
	v, off, err := c.dense.ReadLast(ctx, 0)
	if err != nil || v == nil {
		return nil, err
	}
	cp, err := DecodeDense(v)
	if err != nil {
		// The tower then restarts from the version's published weights.
		c.poison(PoisonDense, c.dense.Topic(), 0, off, err)
		return nil, nil
	}
	return cp, nil
}

// staleAfter reports whether next, a record after prev in the changelog, is a
// stale write to ignore: one from an older fencing epoch (a writer that lost
// its partitions and still flushed), or at an earlier input position on the
// same partition. Equal positions take the later record (a
// re-materialisation under a new model version keeps the position). Event
// ids say nothing here: they need not increase. Kafka cannot refuse the
// stale writer's record, and log compaction keeps only the latest record per
// user, so the owner writes the kept state again after its restore
// (Updater.Repair) and a later record replaces the stale one.
func staleAfter(prev, next *UserState) bool {
	return next.Epoch < prev.Epoch || next.Pos.Partition == prev.Pos.Partition && next.Pos.Offset < prev.Pos.Offset
}
