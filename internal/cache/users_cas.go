package cache

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// putIfNewerScript writes ARGV[1] (an encoded user record, format 3) at
// KEYS[1] unless the stored record (format 2 or 3) is from a newer fencing
// epoch (format 2: epoch 0), returning -1 (fenced), or is on the same input
// partition with a greater input next offset (equal rewrites: idempotent),
// returning 0 (stale). It compares the little-endian fields at their fixed
// offsets as two 32-bit halves, high half first (the 8 bytes read by one
// string.byte call), because Lua numbers cannot hold a uint64. A stored
// value of another format or length (a corrupt record) is overwritten. ARGV[2] is the TTL in ms (0: none). With
// KEYS[2] (the user's watch-history key), ARGV[3] is written there too, when
// the record is (same TTL). Returns 1 if written.
var putIfNewerScript = redis.NewScript(casLua + `
local r = verdict(redis.call('GET', KEYS[1]), ARGV[1])
if r ~= 1 then return r end
local new = ARGV[1]
local ttl = tonumber(ARGV[2])
for i = 1, #KEYS do
  local v = new
  if i == 2 then v = ARGV[3] end
  if ttl > 0 then
    redis.call('SET', KEYS[i], v, 'PX', ttl)
  else
    redis.call('SET', KEYS[i], v)
  end
end
return 1
`)

// putManyIfNewerScript is putIfNewerScript for many users in one call, each
// with its watch-history key: KEYS are (record key, watch-history key) pairs,
// ARGV[1] the TTL in ms, then (record, watch history) pairs. It returns one
// result per user, as putIfNewerScript's. One call instead of one per user
// saves the script call's fixed cost, most of the server's time per user.
var putManyIfNewerScript = redis.NewScript(casLua + `
local ttl = tonumber(ARGV[1])
local out = {}
for u = 1, #KEYS / 2 do
  local r = verdict(redis.call('GET', KEYS[2 * u - 1]), ARGV[2 * u])
  if r == 1 then
    for i = 0, 1 do
      if ttl > 0 then
        redis.call('SET', KEYS[2 * u - 1 + i], ARGV[2 * u + i], 'PX', ttl)
      else
        redis.call('SET', KEYS[2 * u - 1 + i], ARGV[2 * u + i])
      end
    end
  end
  out[u] = r
end
return out
`)

// casLua is the record guard both write scripts share: the record layout,
// the uint64 comparison in two exact 32-bit halves, and the verdict.
const casLua = `
local function layout(v)
  if string.len(v) < 2 then return nil end
  local f = string.byte(v, 1)
  if f ~= 2 and f ~= 3 then return nil end
  local o = 3 + string.byte(v, 2)
  local d = o + 32
  if f == 3 then d = o + 40 end
  if string.len(v) < d + 3 then return nil end
  local d1, d2, d3, d4 = string.byte(v, d, d + 3)
  local dim = d1 + 256 * (d2 + 256 * (d3 + 256 * d4))
  if string.len(v) ~= d + 3 + 4 * dim then return nil end
  return o, f
end
local function u64(s, a)
  local b1, b2, b3, b4, b5, b6, b7, b8 = string.byte(s, a, a + 7)
  return b5 + 256 * (b6 + 256 * (b7 + 256 * b8)), b1 + 256 * (b2 + 256 * (b3 + 256 * b4))
end
local function cmp8(x, a, y, b)
  local xh, xl = u64(x, a)
  local yh, yl = u64(y, b)
  if xh ~= yh then
    if xh > yh then return 1 end
    return -1
  end
  if xl > yl then return 1 end
  if xl < yl then return -1 end
  return 0
end
-- verdict: 1 to write new over old (absent, corrupt, or not newer), 0 if old
-- is at a later input position of the same version, -1 if old was written
-- under a newer fencing epoch.
local function verdict(old, new)
  if not old then return 1 end
  local oo, of = layout(old)
  if not oo then return 1 end
  local no = 3 + string.byte(new, 2)
  if of == 3 and cmp8(old, oo + 12, new, no + 12) > 0 then return -1 end
  if string.sub(old, oo, oo + 3) == string.sub(new, no, no + 3) and cmp8(old, oo + 4, new, no + 4) > 0 then return 0 end
  return 1
end
`

// putManyChunk is how many users one putManyIfNewerScript call writes: the
// script blocks the server while it runs (about 10 us a user).
const putManyChunk = 64

// PutResult counts the records a guarded write did not write.
type PutResult struct {
	// Stale: Redis held a record of the same user at a later input position.
	Stale int
	// Fenced: Redis held a record written under a newer fencing epoch
	// (UserRecord.Epoch): the writer lost the user's partition to another.
	Fenced int
}

// PutUsersIfNewer is PutUsersFenced returning the count of records not
// written (stale or fenced).
func (s *Store) PutUsersIfNewer(ctx context.Context, version string, recs []UserRecord) (skipped int, err error) {
	r, err := s.PutUsersFenced(ctx, version, recs)
	return r.Stale + r.Fenced, err
}

// PutUsersFenced is PutUsers with a per-user guard, applied atomically in
// Redis: a record is written only if the stored record of the same user and
// version has an Epoch no greater than the new one's and, on the same input
// partition, an InputNext no greater than the new one's (or there is none).
// It protects Redis from a stale writer (for example an updater instance
// that lost its partitions but still flushes) overwriting a fresher vector.
// One pipeline of EVALSHA, a call per putManyChunk records with a watch
// history and one per record without (one extra round trip when the
// scripts are not yet cached by the server). It returns how many records were skipped as older.
// A record with Watched not nil also writes them to the user's
// watch-history key, in the same script (so only when the record is
// written), and adds its Seen to the user's long history (in the same
// pipeline, whatever the verdict: they are facts about the log, true
// whichever writer adds them; see queueSeen). Same argument rules, ownership and retry advice as PutUsers.
func (s *Store) PutUsersFenced(ctx context.Context, version string, recs []UserRecord) (res PutResult, err error) {
	if err := s.checkUsers(version, recs); err != nil {
		return res, err
	}
	if len(recs) == 0 {
		return res, nil
	}
	keys := make([][]string, len(recs))
	vals := make([][]byte, len(recs))
	hist := make([][]byte, len(recs))
	buf := make([]byte, 0, (userRecordFixed+len(version)+4*len(recs[0].Embedding))*len(recs))
	for i := range recs {
		start := len(buf)
		buf = appendUserRecord(buf, version, &recs[i])
		keys[i], vals[i] = []string{s.k.user(version, recs[i].UserID)}, buf[start:len(buf):len(buf)]
		if w := recs[i].Watched; w != nil {
			keys[i] = append(keys[i], s.k.watched(recs[i].UserID))
			hist[i] = appendWatched(make([]byte, 0, 4*len(w)), w)
		}
	}
	ttl := strconv.FormatInt(s.cfg.UserTTL.Milliseconds(), 10)
	// Records with a watch history go many to a script call; the others
	// (callers that do not keep one) one to a call.
	var many, single []int
	for i := range recs {
		if len(keys[i]) == 2 {
			many = append(many, i)
		} else {
			single = append(single, i)
		}
	}
	loaded := false // the scripts loaded after a NOSCRIPT
	var seenCmds map[uint32]*redis.IntCmd
	for {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, 0, len(single)+len(many)/putManyChunk+1)
		for _, i := range single {
			cmds = append(cmds, putIfNewerScript.EvalSha(ctx, pipe, keys[i], vals[i], ttl))
		}
		for lo := 0; lo < len(many); lo += putManyChunk {
			chunk := many[lo:min(lo+putManyChunk, len(many))]
			ks := make([]string, 0, 2*len(chunk))
			args := make([]any, 0, 1+2*len(chunk))
			args = append(args, ttl)
			for _, i := range chunk {
				ks = append(ks, keys[i]...)
				args = append(args, vals[i], hist[i])
			}
			cmds = append(cmds, putManyIfNewerScript.EvalSha(ctx, pipe, ks, args...))
		}
		if seenCmds == nil { // appended once: not again when the scripts are retried
			seenCmds = s.queueSeen(ctx, pipe, recs, many)
		}
		_, err := pipe.Exec(ctx)
		for _, c := range seenCmds {
			if c.Err() != nil {
				seenCmds = nil // appended again with the retry, if any
				break
			}
		}
		if err != nil && !loaded && redis.HasErrorPrefix(err, "NOSCRIPT") {
			loaded = true
			if err := putIfNewerScript.Load(ctx, s.rdb).Err(); err != nil {
				return res, fmt.Errorf("loading the user write script: %w", err)
			}
			if err := putManyIfNewerScript.Load(ctx, s.rdb).Err(); err != nil {
				return res, fmt.Errorf("loading the user write script: %w", err)
			}
			continue
		}
		if err != nil {
			return res, fmt.Errorf("writing %d user records if newer under version %s: %w", len(recs), version, err)
		}
		count := func(n int64) {
			switch n {
			case 0:
				res.Stale++
			case -1:
				res.Fenced++
			}
		}
		for j, c := range cmds {
			if j < len(single) {
				n, _ := c.Int64()
				count(n)
				continue
			}
			rs, err := c.Int64Slice()
			if err != nil {
				return res, fmt.Errorf("reading the user write script's results: %w", err)
			}
			for _, n := range rs {
				count(n)
			}
		}
		return res, s.trimSeen(ctx, seenCmds)
	}
}
