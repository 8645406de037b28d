package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// UserRecord is a user's serving state under one model version.
type UserRecord struct {
	// UserID identifies the user (not part of the encoded value; it is in the key).
	UserID uint32
	// ModelVersion is the model version the embedding was made under. On
	// PutUsers it must be empty (it is then the version argument) or equal to
	// the version argument.
	ModelVersion string
	// Embedding is the user vector, of the model's dim.
	Embedding []float32
	// Bias is the user bias of the score calibration.
	Bias float32
	// UpdatedAtMs is when the embedding was computed (unix ms): its age is
	// now - UpdatedAtMs.
	UpdatedAtMs int64
	// InputPartition and InputNext are the input position of the last event
	// the embedding reflects: its interactions topic partition, and its offset
	// + 1 (the offset after it, as Kafka commits offsets). InputNext 0 (the
	// zero value, as the ingestor's offline records have it): no event. A
	// user's events all come from one partition, so InputNext orders the
	// user's records (see PutUsersIfNewer); event ids do not (they need not
	// increase).
	InputPartition int32
	InputNext      int64
	// Epoch is the fencing epoch of the updater that wrote the record
	// (stream.AcquireEpoch; 0 for the ingestor's offline records):
	// PutUsersFenced refuses a write from an older epoch than the stored
	// record's.
	Epoch uint64
	// EventProducedAtMs is when that last event was produced (unix ms), for
	// end-to-end freshness (event produced -> embedding in Redis).
	EventProducedAtMs int64
	// Watched, when not nil, are the videos of the user's recent
	// interactions (the updater's ring of recent events): PutUsersIfNewer
	// writes them, with the record, to the user's watch-history key, which
	// does not depend on the model version ("ns:watched:uid"); the record's
	// encoding does not hold them. GetUserWatched reads them back.
	Watched []uint32
	// Seen, read only with Watched, are videos to add to the user's long
	// watch history ("ns:seen:uid"): an append-only log of video ids
	// (APPEND, in the write's pipeline but outside its guard: a stale or
	// redelivered record adds videos that are true anyway), of which
	// GetUserWatched reads the last MaxHistory with the ring. The updater
	// gives every video it processed for the user since its last write.
	Seen []uint32
}

// Age returns how old the embedding is at now.
func (r *UserRecord) Age(now time.Time) time.Duration {
	return now.Sub(time.UnixMilli(r.UpdatedAtMs))
}

// PutUsers writes recs under model version in one pipeline (one round trip),
// overwriting any record of the same user and version unconditionally (the
// updater is the single writer per user and owns the high-water mark logic).
// Each record's ModelVersion must be empty or equal to version; its embedding
// may have any length up to 65536, but all users of a version should have the
// model's dim (not checked here). recs is only read.
//
// On error some records may have been written and others not; writes are
// idempotent, so the caller retries the whole batch.
func (s *Store) PutUsers(ctx context.Context, version string, recs []UserRecord) error {
	if err := s.checkUsers(version, recs); err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	size := userRecordFixed + len(version) + 4*len(recs[0].Embedding)
	buf := make([]byte, 0, size*len(recs))
	for i := range recs {
		start := len(buf)
		buf = appendUserRecord(buf, version, &recs[i])
		// The pipeline keeps a reference to each value until Exec: give each
		// its own, non-overlapping sub-slice of buf.
		pipe.Set(ctx, s.k.user(version, recs[i].UserID), buf[start:len(buf):len(buf)], s.cfg.UserTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("writing %d user records under version %s: %w", len(recs), version, err)
	}
	return nil
}

func (s *Store) checkUsers(version string, recs []UserRecord) error {
	if err := checkVersion(version); err != nil {
		return err
	}
	for i := range recs {
		r := &recs[i]
		if r.ModelVersion != "" && r.ModelVersion != version {
			return fmt.Errorf("%w: user %d: record version %q under version %q", ErrInvalid, r.UserID, r.ModelVersion, version)
		}
		if len(r.Embedding) > maxDim {
			return fmt.Errorf("%w: user %d: dim %d > %d", ErrInvalid, r.UserID, len(r.Embedding), maxDim)
		}
	}
	return nil
}

// GetUser reads the record of userID under version. A missing user is
// (zero, false, nil), not an error. The returned record (and its Embedding)
// belongs to the caller.
func (s *Store) GetUser(ctx context.Context, version string, userID uint32) (UserRecord, bool, error) {
	if err := checkVersion(version); err != nil {
		return UserRecord{}, false, err
	}
	v, err := s.rdb.Get(ctx, s.k.user(version, userID)).Result()
	if errors.Is(err, redis.Nil) {
		return UserRecord{}, false, nil
	}
	if err != nil {
		return UserRecord{}, false, fmt.Errorf("reading user %d under version %s: %w", userID, version, err)
	}
	rec := UserRecord{UserID: userID}
	if err := decodeUserRecord(v, &rec); err != nil {
		return UserRecord{}, false, fmt.Errorf("decoding user %d under version %s: %w", userID, version, err)
	}
	if rec.ModelVersion != version {
		return UserRecord{}, false, fmt.Errorf("%w: user %d under version %s holds version %q", ErrCorrupt, userID, version, rec.ModelVersion)
	}
	return rec, true, nil
}

// GetUsers reads the records of ids under version in one MGET. recs[i] and
// found[i] answer ids[i]; a missing user has found[i] == false and a zero
// record (with UserID set). Both slices belong to the caller. Records that do
// not decode (or hold another version) are reported as not found, and the
// call then returns the others together with a *CorruptUsersError (which is
// ErrCorrupt) naming them: a caller can skip them and go on.
func (s *Store) GetUsers(ctx context.Context, version string, ids []uint32) (recs []UserRecord, found []bool, err error) {
	if err := checkVersion(version); err != nil {
		return nil, nil, err
	}
	if len(ids) == 0 {
		return nil, nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.k.user(version, id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("reading %d users under version %s: %w", len(ids), version, err)
	}
	if len(vals) != len(ids) {
		return nil, nil, fmt.Errorf("%w: MGET returned %d values for %d keys", ErrCorrupt, len(vals), len(ids))
	}
	recs = make([]UserRecord, len(ids))
	found = make([]bool, len(ids))
	var bad *CorruptUsersError
	corrupt := func(i int, err error) {
		if bad == nil {
			bad = &CorruptUsersError{Version: version, Users: map[uint32]error{}}
		}
		bad.Users[ids[i]] = err
		recs[i] = UserRecord{UserID: ids[i]}
	}
	for i, v := range vals {
		recs[i].UserID = ids[i]
		if v == nil {
			continue
		}
		str, ok := v.(string)
		if !ok {
			return nil, nil, fmt.Errorf("%w: user %d: unexpected reply type %T", ErrCorrupt, ids[i], v)
		}
		if err := decodeUserRecord(str, &recs[i]); err != nil {
			corrupt(i, err)
			continue
		}
		if recs[i].ModelVersion != version {
			corrupt(i, fmt.Errorf("%w: user record holds version %q", ErrCorrupt, recs[i].ModelVersion))
			continue
		}
		found[i] = true
	}
	if bad != nil {
		return recs, found, bad
	}
	return recs, found, nil
}

// CorruptUsersError names the user records GetUsers could not decode.
type CorruptUsersError struct {
	Version string
	Users   map[uint32]error
}

func (e *CorruptUsersError) Error() string {
	return fmt.Sprintf("%d corrupt user records under version %s", len(e.Users), e.Version)
}

// Is makes a *CorruptUsersError match ErrCorrupt.
func (e *CorruptUsersError) Is(target error) bool { return target == ErrCorrupt }
