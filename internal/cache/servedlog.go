package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// A served-list log (version 2 of the served list): every list the API
// serves, with what produced it, kept where every replica and the online
// evaluator read it. Each list is a hash (the encoded record and the Redis
// server time it was written at, which decides whether it met the
// evaluator's grace period), indexed by serve time per partition of the
// interactions topic (the user's partition) and bounded per user.

// ServedSlot is one served video.
type ServedSlot struct {
	Video                                  uint32
	Score, PredictedWatchRatio, Propensity float32
}

// ServedRecord is one served list (version 2).
type ServedRecord struct {
	// ID is unique per list (at most 64 bytes).
	ID   string
	User uint32
	// Partition is the user's partition of the interactions topic.
	Partition int32
	Version   string
	// Fallback: "" (the model), "feature_tower" or "popularity".
	Fallback string
	// Candidates: "" (the whole catalogue) or the candidate set's name.
	Candidates string
	K          int
	// LastPartition and LastOffset are the input position of the last event
	// applied to the user's embedding (-1 when none), LastProducedMS its
	// produce time.
	LastPartition  int32
	LastOffset     int64
	LastProducedMS int64
	ServedMS       int64
	// UserVec and UserBias are the scored user vector (empty for a fallback).
	UserVec  []float32
	UserBias float32
	Slots    []ServedSlot
	// WrittenMS is the Redis server time the record was stored at (set by
	// PutServedRecord, returned by the readers).
	WrittenMS int64
}

// Served-log bounds: lists kept per user, and how long a list lives.
const (
	ServedPerUser   = 16
	ServedRetention = 2 * time.Hour
	maxServedVec    = 4096
)

const servedRecordVersion = 2

func appendServedRecord(b []byte, r *ServedRecord) []byte {
	str := func(s string) {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	b = append(b, servedRecordVersion)
	str(r.ID)
	b = binary.LittleEndian.AppendUint32(b, r.User)
	b = binary.LittleEndian.AppendUint32(b, uint32(r.Partition))
	str(r.Version)
	str(r.Fallback)
	str(r.Candidates)
	b = binary.LittleEndian.AppendUint32(b, uint32(r.K))
	b = binary.LittleEndian.AppendUint32(b, uint32(r.LastPartition))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.LastOffset))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.LastProducedMS))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.ServedMS))
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(r.UserBias))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.UserVec)))
	for _, x := range r.UserVec {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Slots)))
	for _, s := range r.Slots {
		b = binary.LittleEndian.AppendUint32(b, s.Video)
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(s.Score))
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(s.PredictedWatchRatio))
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(s.Propensity))
	}
	return b
}

var errShortRecord = errors.New("truncated served record")

func decodeServedRecord(b []byte, r *ServedRecord) error {
	if len(b) < 1 || b[0] != servedRecordVersion {
		return fmt.Errorf("%w: served record version", ErrCorrupt)
	}
	b = b[1:]
	fail := false
	str := func() string {
		if fail || len(b) < 1 || len(b) < 1+int(b[0]) {
			fail = true
			return ""
		}
		s := string(b[1 : 1+int(b[0])])
		b = b[1+int(b[0]):]
		return s
	}
	u32 := func() uint32 {
		if fail || len(b) < 4 {
			fail = true
			return 0
		}
		x := binary.LittleEndian.Uint32(b)
		b = b[4:]
		return x
	}
	u64 := func() uint64 {
		if fail || len(b) < 8 {
			fail = true
			return 0
		}
		x := binary.LittleEndian.Uint64(b)
		b = b[8:]
		return x
	}
	r.ID = str()
	r.User = u32()
	r.Partition = int32(u32())
	r.Version, r.Fallback, r.Candidates = str(), str(), str()
	r.K = int(u32())
	r.LastPartition = int32(u32())
	r.LastOffset = int64(u64())
	r.LastProducedMS = int64(u64())
	r.ServedMS = int64(u64())
	r.UserBias = math.Float32frombits(u32())
	n := u32()
	if fail || n > maxServedVec || uint64(len(b)) < 4*uint64(n) {
		return fmt.Errorf("%w: %v", ErrCorrupt, errShortRecord)
	}
	r.UserVec = make([]float32, n)
	for i := range r.UserVec {
		r.UserVec[i] = math.Float32frombits(u32())
	}
	n = u32()
	if fail || n > maxServedItems || uint64(len(b)) != 16*uint64(n) {
		return fmt.Errorf("%w: %v", ErrCorrupt, errShortRecord)
	}
	r.Slots = make([]ServedSlot, n)
	for i := range r.Slots {
		r.Slots[i] = ServedSlot{Video: u32(), Score: math.Float32frombits(u32()), PredictedWatchRatio: math.Float32frombits(u32()), Propensity: math.Float32frombits(u32())}
	}
	return nil
}

// putServedScript: KEYS[1] the list's hash, KEYS[2] the partition index,
// KEYS[3] the user's index; ARGV[1] record, ARGV[2] list id, ARGV[3] serve
// time (ms), ARGV[4] retention (ms), ARGV[5] lists per user. Returns the
// server time (ms) the record was written at.
var putServedScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ret = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'r', ARGV[1], 'w', now)
redis.call('PEXPIRE', KEYS[1], ret)
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - ret))
redis.call('PEXPIRE', KEYS[2], ret)
redis.call('ZADD', KEYS[3], tonumber(ARGV[3]), ARGV[2])
local c = redis.call('ZCARD', KEYS[3])
local keep = tonumber(ARGV[5])
if c > keep then redis.call('ZREMRANGEBYRANK', KEYS[3], 0, c - keep - 1) end
redis.call('PEXPIRE', KEYS[3], ret)
return now
`)

// PutServedRecord stores r in the served-list log and returns the server time
// it was written at (also set in r.WrittenMS). r is otherwise only read.
func (s *Store) PutServedRecord(ctx context.Context, r *ServedRecord) (int64, error) {
	switch {
	case r.ID == "" || len(r.ID) > 64 || !namePattern.MatchString(r.ID):
		return 0, fmt.Errorf("%w: served list id %q", ErrInvalid, r.ID)
	case len(r.Version) > maxVersionLen || len(r.Fallback) > 32 || len(r.Candidates) > 64:
		return 0, fmt.Errorf("%w: served list %s: version, fallback or candidates too long", ErrInvalid, r.ID)
	case len(r.UserVec) > maxServedVec || len(r.Slots) > maxServedItems || r.Partition < 0:
		return 0, fmt.Errorf("%w: served list %s: %d-dim vector, %d slots, partition %d", ErrInvalid, r.ID, len(r.UserVec), len(r.Slots), r.Partition)
	}
	b := appendServedRecord(make([]byte, 0, 96+4*len(r.UserVec)+16*len(r.Slots)), r)
	keys := []string{s.k.servedList(r.ID), s.k.servedByPartition(r.Partition), s.k.servedByUser(r.User)}
	w, err := putServedScript.Run(ctx, s.rdb, keys, b, r.ID, r.ServedMS, ServedRetention.Milliseconds(), ServedPerUser).Int64()
	if err != nil {
		return 0, fmt.Errorf("writing served list %s: %w", r.ID, err)
	}
	r.WrittenMS = w
	return w, nil
}

// ServedInPartition returns the lists of partition served in [fromMS, toMS],
// by serve time (ties by id). A list whose record has expired or fails to
// decode is skipped and counted in the second result.
func (s *Store) ServedInPartition(ctx context.Context, partition int32, fromMS, toMS int64) ([]ServedRecord, int, error) {
	ids, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.k.servedByPartition(partition),
		Start: strconv.FormatInt(fromMS, 10), Stop: strconv.FormatInt(toMS, 10), ByScore: true}).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("reading the served index of partition %d: %w", partition, err)
	}
	return s.servedByIDs(ctx, ids)
}

// ServedForUser returns the user's kept lists, by serve time.
func (s *Store) ServedForUser(ctx context.Context, user uint32) ([]ServedRecord, int, error) {
	ids, err := s.rdb.ZRange(ctx, s.k.servedByUser(user), 0, -1).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("reading the served index of user %d: %w", user, err)
	}
	return s.servedByIDs(ctx, ids)
}

func (s *Store) servedByIDs(ctx context.Context, ids []string) ([]ServedRecord, int, error) {
	if len(ids) == 0 {
		return nil, 0, nil
	}
	p := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = p.HMGet(ctx, s.k.servedList(id), "r", "w")
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("reading served lists: %w", err)
	}
	out := make([]ServedRecord, 0, len(ids))
	bad := 0
	for _, c := range cmds {
		v := c.Val()
		rec, ok1 := v[0].(string)
		ws, ok2 := v[1].(string)
		if !ok1 || !ok2 {
			bad++ // expired between the index read and this one
			continue
		}
		var r ServedRecord
		w, err := strconv.ParseInt(ws, 10, 64)
		if err != nil || decodeServedRecord([]byte(rec), &r) != nil {
			bad++
			continue
		}
		r.WrittenMS = w
		out = append(out, r)
	}
	return out, bad, nil
}
