package cache

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// ServedList is the last list served to a user, remembered so that any API
// replica can join the user's next interactions to it (online metrics).
type ServedList struct {
	// ModelVersion that produced the list.
	ModelVersion string
	// ServedAtMs is when it was served (unix ms).
	ServedAtMs int64
	// Items are the video ids in rank order.
	Items []uint32
	// Scores are the ranking scores, parallel to Items; empty or len(Items).
	Scores []float32
	// Predicted are the predicted watch ratios, parallel to Items; empty or len(Items).
	Predicted []float32
}

// PutServed remembers l as the last list served to userID, replacing the
// previous one, for Config.ServedTTL. l is only read. Scores and Predicted
// must each be empty or as long as Items; at most 65536 items.
func (s *Store) PutServed(ctx context.Context, userID uint32, l ServedList) error {
	n := len(l.Items)
	switch {
	case len(l.Scores) != 0 && len(l.Scores) != n:
		return fmt.Errorf("%w: served list for user %d: %d scores for %d items", ErrInvalid, userID, len(l.Scores), n)
	case len(l.Predicted) != 0 && len(l.Predicted) != n:
		return fmt.Errorf("%w: served list for user %d: %d predictions for %d items", ErrInvalid, userID, len(l.Predicted), n)
	case n > maxServedItems:
		return fmt.Errorf("%w: served list for user %d: %d items > %d", ErrInvalid, userID, n, maxServedItems)
	case len(l.ModelVersion) > maxVersionLen:
		return fmt.Errorf("%w: served list for user %d: model version of %d bytes", ErrInvalid, userID, len(l.ModelVersion))
	}
	b := appendServedList(make([]byte, 0, servedFixed+len(l.ModelVersion)+12*n), &l)
	if err := s.rdb.Set(ctx, s.k.served(userID), b, s.cfg.ServedTTL).Err(); err != nil {
		return fmt.Errorf("writing served list for user %d: %w", userID, err)
	}
	return nil
}

// GetServed returns the last list served to userID. None (never served, or
// expired) is (zero, false, nil). The returned slices belong to the caller.
func (s *Store) GetServed(ctx context.Context, userID uint32) (ServedList, bool, error) {
	v, err := s.rdb.Get(ctx, s.k.served(userID)).Result()
	if errors.Is(err, redis.Nil) {
		return ServedList{}, false, nil
	}
	if err != nil {
		return ServedList{}, false, fmt.Errorf("reading served list for user %d: %w", userID, err)
	}
	var l ServedList
	if err := decodeServedList(v, &l); err != nil {
		return ServedList{}, false, fmt.Errorf("decoding served list for user %d: %w", userID, err)
	}
	return l, true, nil
}

// UserServed is one user's last served list, for PutServedBatch.
type UserServed struct {
	UserID uint32
	List   ServedList
}

// PutServedBatch is PutServed for each entry, in one pipelined round trip
// (the API's asynchronous writer). It returns how many entries were not
// stored (invalid, or their SET failed) and the first such error. The
// entries are only read.
func (s *Store) PutServedBatch(ctx context.Context, entries []UserServed) (int, error) {
	var first error
	failed := 0
	p := s.rdb.Pipeline()
	cmds := make([]*redis.StatusCmd, 0, len(entries))
	for i := range entries {
		e := &entries[i]
		l := &e.List
		n := len(l.Items)
		if (len(l.Scores) != 0 && len(l.Scores) != n) || (len(l.Predicted) != 0 && len(l.Predicted) != n) ||
			n > maxServedItems || len(l.ModelVersion) > maxVersionLen {
			failed++
			if first == nil {
				first = fmt.Errorf("%w: served list for user %d: %d items, %d scores, %d predictions, version of %d bytes",
					ErrInvalid, e.UserID, n, len(l.Scores), len(l.Predicted), len(l.ModelVersion))
			}
			continue
		}
		b := appendServedList(make([]byte, 0, servedFixed+len(l.ModelVersion)+12*n), l)
		cmds = append(cmds, p.Set(ctx, s.k.served(e.UserID), b, s.cfg.ServedTTL))
	}
	if len(cmds) == 0 {
		return failed, first
	}
	_, _ = p.Exec(ctx) // each command's own error is read below
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			failed++
			if first == nil {
				first = fmt.Errorf("writing served lists: %w", err)
			}
		}
	}
	return failed, first
}
