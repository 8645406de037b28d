package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Online-metric windows shared by every API replica (the online evaluator,
// internal/online/eval): a window holds integer fields (counts, and sums in
// integer micro-units, so that increments from several replicas add up
// exactly) and distinct-member sets. Each batch of increments is applied in
// one Lua script together with the input offsets it covers, per partition, so
// that a replica killed between its Redis write and its Kafka commit, and
// restarted, neither loses nor double-counts an interaction: a batch whose
// offsets are already recorded is skipped whole.

// Window kinds (WindowDelta.Kind): produce-time and count windows.
const (
	WindowByTime  byte = 't'
	WindowByCount byte = 'n'
)

// WindowDelta is one increment: Delta added to Field of window (Kind, Index),
// or, when Distinct, Member added to the set Field of that window.
type WindowDelta struct {
	Kind     byte
	Index    int64
	Field    string
	Delta    int64
	Distinct bool
	Member   uint32
}

// OffsetRange says that a batch covers the input offsets [From, To] of a
// partition (To >= From). Watermark, Resume and ResumeWatermark are recorded
// with it for the evaluator's restart: the partition's watermark after To, the
// offset from which to rebuild its in-memory state, and the watermark just
// before that offset.
type OffsetRange struct {
	Partition                          int32
	From, To                           int64
	Watermark, Resume, ResumeWatermark int64
}

// PartitionPosition is what the windows record of a partition: Next, the
// first offset no applied batch covers, and the Watermark and Resume of the
// last batch.
type PartitionPosition struct {
	Next, Watermark, Resume, ResumeWatermark int64
}

// ErrOffsets: a batch's offsets neither continue nor repeat what the windows
// have recorded (a gap, a partial overlap, or a mix): applying it would lose
// or double-count interactions.
var ErrOffsets = errors.New("cache: window batch offsets do not continue the recorded ones")

// WindowRetention is how long a window's keys live after its last increment,
// and WindowHistory how many windows of each kind the index keeps.
const (
	WindowRetention = 7 * 24 * time.Hour
	WindowHistory   = 10000
)

// applyWindowsScript: KEYS[1] offsets hash, KEYS[2] time index, KEYS[3] count
// index; ARGV[1] key prefix of the windows, ARGV[2] retention (s), ARGV[3]
// history, ARGV[4] number of ranges, then (partition, from, to, watermark,
// resume, resume watermark) per range,
// then (kind, index, field, delta, distinct, member) per delta. Returns 1 when
// applied, 0 when every range was already recorded (the batch is a repeat);
// an error STREAMREC_OFFSETS otherwise.
var applyWindowsScript = redis.NewScript(`
local n = tonumber(ARGV[4])
local fresh, repeated = 0, 0
for i = 0, n - 1 do
  local p, from, to = ARGV[5 + 6*i], tonumber(ARGV[6 + 6*i]), tonumber(ARGV[7 + 6*i])
  local nxt = redis.call('HGET', KEYS[1], p)
  if not nxt or tonumber(nxt) == from then
    fresh = fresh + 1
  elseif tonumber(nxt) > to then
    repeated = repeated + 1
  else
    return redis.error_reply('STREAMREC_OFFSETS partition ' .. p .. ' recorded next ' .. nxt .. ', batch ' .. from .. '-' .. to)
  end
end
if repeated == n and n > 0 then return 0 end
if repeated > 0 then
  return redis.error_reply('STREAMREC_OFFSETS a batch mixes recorded and new ranges')
end
for i = 0, n - 1 do
  local p = ARGV[5 + 6*i]
  redis.call('HSET', KEYS[1], p, tonumber(ARGV[7 + 6*i]) + 1, p .. ':wm', ARGV[8 + 6*i], p .. ':resume', ARGV[9 + 6*i], p .. ':resume-wm', ARGV[10 + 6*i])
end
local prefix, ttl, hist = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local touched = {}
local j = 5 + 6*n
while j <= #ARGV do
  local kind, idx, field, delta, distinct, member = ARGV[j], ARGV[j+1], ARGV[j+2], ARGV[j+3], ARGV[j+4], ARGV[j+5]
  local base = prefix .. kind .. ':' .. idx
  if distinct == '1' then
    local k = base .. ':set:' .. field
    redis.call('SADD', k, member)
    touched[k] = true
    redis.call('HSET', base .. ':sets', field, 1)
  else
    redis.call('HINCRBY', base, field, delta)
  end
  touched[base] = true
  touched[base .. ':sets'] = true
  local index = KEYS[2]
  if kind == 'n' then index = KEYS[3] end
  redis.call('ZADD', index, tonumber(idx), idx)
  j = j + 6
end
for k, _ in pairs(touched) do
  if redis.call('EXISTS', k) == 1 then redis.call('EXPIRE', k, ttl) end
end
for _, index in ipairs({KEYS[2], KEYS[3]}) do
  local c = redis.call('ZCARD', index)
  if c > hist then redis.call('ZREMRANGEBYRANK', index, 0, c - hist - 1) end
end
return 1
`)

// ApplyWindows adds deltas to the windows of evaluator group and records that
// they cover ranges, atomically. It returns false, with nothing changed, when
// every range was already recorded (a repeat after a restart); ErrOffsets
// when the ranges neither continue nor repeat the recorded offsets. A
// partition with no recorded offset accepts any From (a new group starts at
// the latest offset). deltas are only read.
func (s *Store) ApplyWindows(ctx context.Context, group string, ranges []OffsetRange, deltas []WindowDelta) (bool, error) {
	if !namePattern.MatchString(group) {
		return false, fmt.Errorf("%w: evaluator group %q", ErrInvalid, group)
	}
	args := make([]any, 0, 4+6*len(ranges)+6*len(deltas))
	args = append(args, s.k.windowPrefix(group), int64(WindowRetention/time.Second), WindowHistory, len(ranges))
	for _, r := range ranges {
		if r.To < r.From || r.From < 0 {
			return false, fmt.Errorf("%w: offset range %d-%d of partition %d", ErrInvalid, r.From, r.To, r.Partition)
		}
		args = append(args, r.Partition, r.From, r.To, r.Watermark, r.Resume, r.ResumeWatermark)
	}
	for _, d := range deltas {
		if d.Kind != WindowByTime && d.Kind != WindowByCount {
			return false, fmt.Errorf("%w: window kind %q", ErrInvalid, d.Kind)
		}
		if d.Field == "" || len(d.Field) > 200 {
			return false, fmt.Errorf("%w: window field of %d bytes", ErrInvalid, len(d.Field))
		}
		distinct := "0"
		if d.Distinct {
			distinct = "1"
		}
		args = append(args, string(d.Kind), d.Index, d.Field, d.Delta, distinct, d.Member)
	}
	keys := []string{s.k.windowOffsets(group), s.k.windowIndex(group, WindowByTime), s.k.windowIndex(group, WindowByCount)}
	n, err := applyWindowsScript.Run(ctx, s.rdb, keys, args...).Int()
	if err != nil {
		if isScriptError(err, "STREAMREC_OFFSETS") {
			return false, fmt.Errorf("%w: %v", ErrOffsets, err)
		}
		return false, fmt.Errorf("applying window increments: %w", err)
	}
	return n == 1, nil
}

// WindowOffsets returns, per partition, what the windows of group have
// recorded: where a restarted evaluator resumes.
func (s *Store) WindowOffsets(ctx context.Context, group string) (map[int32]PartitionPosition, error) {
	m, err := s.rdb.HGetAll(ctx, s.k.windowOffsets(group)).Result()
	if err != nil {
		return nil, fmt.Errorf("reading window offsets: %w", err)
	}
	out := make(map[int32]PartitionPosition, len(m))
	for f, v := range m {
		name, suffix, _ := strings.Cut(f, ":")
		pi, err1 := strconv.ParseInt(name, 10, 32)
		vi, err2 := strconv.ParseInt(v, 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: window offset %q=%q", ErrCorrupt, f, v)
		}
		pos := out[int32(pi)]
		switch suffix {
		case "":
			pos.Next = vi
		case "wm":
			pos.Watermark = vi
		case "resume":
			pos.Resume = vi
		case "resume-wm":
			pos.ResumeWatermark = vi
		default:
			return nil, fmt.Errorf("%w: window offset field %q", ErrCorrupt, f)
		}
		out[int32(pi)] = pos
	}
	return out, nil
}

// WindowIndexes returns the indexes of group's windows of kind that the
// history keeps, ascending.
func (s *Store) WindowIndexes(ctx context.Context, group string, kind byte) ([]int64, error) {
	vs, err := s.rdb.ZRange(ctx, s.k.windowIndex(group, kind), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("reading window indexes: %w", err)
	}
	out := make([]int64, 0, len(vs))
	for _, v := range vs {
		i, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: window index %q", ErrCorrupt, v)
		}
		out = append(out, i)
	}
	slices.Sort(out)
	return out, nil
}

// Window returns the fields of one window: sums for the plain fields and the
// number of members for the distinct ones. An absent window is empty.
func (s *Store) Window(ctx context.Context, group string, kind byte, index int64) (map[string]int64, error) {
	base := s.k.window(group, kind, index)
	p := s.rdb.Pipeline()
	fields := p.HGetAll(ctx, base)
	sets := p.HKeys(ctx, base+keySep+"sets")
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading window %c%d: %w", kind, index, err)
	}
	out := make(map[string]int64, len(fields.Val()))
	for f, v := range fields.Val() {
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: window field %s=%q", ErrCorrupt, f, v)
		}
		out[f] = x
	}
	if len(sets.Val()) > 0 {
		p := s.rdb.Pipeline()
		cards := make([]*redis.IntCmd, len(sets.Val()))
		for i, f := range sets.Val() {
			cards[i] = p.SCard(ctx, base+keySep+"set"+keySep+f)
		}
		if _, err := p.Exec(ctx); err != nil {
			return nil, fmt.Errorf("reading window %c%d sets: %w", kind, index, err)
		}
		for i, f := range sets.Val() {
			out[f] = cards[i].Val()
		}
	}
	return out, nil
}
