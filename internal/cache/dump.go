package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// A model version's Redis values as stored, for a durable copy outside Redis
// (internal/modellog keeps them in a compacted Kafka topic) and for writing
// them back after Redis lost them (a FLUSHALL, a restart without
// persistence). The values are the exact bytes, so a restored version is
// bit-exact with the dumped one whatever the encodings inside.

// VersionDump is every key under a version's model prefix ("ns:model:v:*").
type VersionDump struct {
	Version string
	// Seq is the version's registration order (its score in
	// "ns:model:versions"); 0 if it was not registered.
	Seq int64
	// Strings: key name under the prefix ("meta", "items:0", "tower", ...) ->
	// value. Hashes: key name ("newitems") -> field -> value.
	Strings map[string][]byte
	Hashes  map[string]map[string][]byte
}

// DumpVersion reads every key of a complete version's model data (the item
// chunks, tower, user features, offline user vectors, popularity, registered
// videos, meta; whatever lives under the prefix). ErrVersionNotFound if the
// version is not complete. It reads the meta first and again last, and fails
// with ErrVersionNotFound if the version was collected in between.
func (s *Store) DumpVersion(ctx context.Context, version string) (VersionDump, error) {
	if _, err := s.Meta(ctx, version); err != nil {
		return VersionDump{}, err
	}
	d := VersionDump{Version: version, Strings: map[string][]byte{}, Hashes: map[string]map[string][]byte{}}
	prefix := s.k.modelPrefix(version)
	var names []string
	var cursor uint64
	for {
		batch, next, err := s.rdb.Scan(ctx, cursor, s.k.modelPattern(version), scanBatch).Result()
		if err != nil {
			return VersionDump{}, fmt.Errorf("listing the keys of model version %s: %w", version, err)
		}
		names = append(names, batch...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	slices.Sort(names)
	names = slices.Compact(names) // SCAN may return a key twice
	for lo := 0; lo < len(names); lo += 64 {
		batch := names[lo:min(lo+64, len(names))]
		pipe := s.rdb.Pipeline()
		types := make([]*redis.StatusCmd, len(batch))
		for i, k := range batch {
			types[i] = pipe.Type(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return VersionDump{}, fmt.Errorf("reading the key types of model version %s: %w", version, err)
		}
		pipe = s.rdb.Pipeline()
		gets := make([]*redis.StringCmd, len(batch))
		hgets := make([]*redis.MapStringStringCmd, len(batch))
		for i, k := range batch {
			switch t := types[i].Val(); t {
			case "string":
				gets[i] = pipe.Get(ctx, k)
			case "hash":
				hgets[i] = pipe.HGetAll(ctx, k)
			case "none": // deleted since the scan
			default:
				return VersionDump{}, fmt.Errorf("%w: key %s of model version %s is a %s (want string or hash)", ErrCorrupt, k, version, t)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return VersionDump{}, fmt.Errorf("reading the keys of model version %s: %w", version, err)
		}
		for i, k := range batch {
			name := strings.TrimPrefix(k, prefix)
			switch {
			case gets[i] != nil:
				b, err := gets[i].Bytes()
				if errors.Is(err, redis.Nil) {
					continue
				}
				if err != nil {
					return VersionDump{}, fmt.Errorf("reading %s: %w", k, err)
				}
				d.Strings[name] = b
			case hgets[i] != nil:
				h := map[string][]byte{}
				for f, v := range hgets[i].Val() {
					h[f] = []byte(v)
				}
				d.Hashes[name] = h
			}
		}
	}
	seq, err := s.rdb.ZScore(ctx, s.k.versions(), version).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return VersionDump{}, fmt.Errorf("reading the registration of model version %s: %w", version, err)
	}
	d.Seq = int64(seq)
	if _, ok := d.Strings[segMeta]; !ok {
		return VersionDump{}, fmt.Errorf("dumping model version %s: %w (collected while read)", version, ErrVersionNotFound)
	}
	if _, err := s.Meta(ctx, version); err != nil {
		return VersionDump{}, err
	}
	return d, nil
}

// RegisteredRaw returns the registered videos of a version as stored (the
// "newitems" hash: field -> value), for DumpVersion's consumers to follow
// registrations without dumping the whole version.
func (s *Store) RegisteredRaw(ctx context.Context, version string) (map[string][]byte, error) {
	if err := checkVersion(version); err != nil {
		return nil, err
	}
	h, err := s.rdb.HGetAll(ctx, s.k.newItems(version)).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the registered videos of version %s: %w", version, err)
	}
	out := make(map[string][]byte, len(h))
	for f, v := range h {
		out[f] = []byte(v)
	}
	return out, nil
}

// seqAtLeastScript raises the registration counter KEYS[1] to ARGV[1] if it
// is lower (or missing), so that a version published after a restore is
// registered after the restored ones.
var seqAtLeastScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
`)

// RestoreVersion writes a dumped version back, each key and hash field only
// where it is absent (SET NX, HSETNX: a value already there, written since
// by its owner, is never overwritten), the meta last (it marks the version
// complete, as Publish writes it), and registers the version with its
// sequence number. It returns how many keys and fields it wrote. It does not
// touch the version pointers (RestorePointers) nor the user records.
func (s *Store) RestoreVersion(ctx context.Context, d VersionDump) (written int, err error) {
	if err := checkVersion(d.Version); err != nil {
		return 0, err
	}
	meta, ok := d.Strings[segMeta]
	if !ok {
		return 0, fmt.Errorf("%w: dump of model version %s has no meta", ErrInvalid, d.Version)
	}
	names := make([]string, 0, len(d.Strings))
	for name := range d.Strings {
		if name != segMeta {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	prefix := s.k.modelPrefix(d.Version)
	var cmds []*redis.BoolCmd
	pipe := s.rdb.Pipeline()
	bytes := 0
	exec := func() error {
		if pipe.Len() == 0 {
			return nil
		}
		_, err := pipe.Exec(ctx)
		for _, c := range cmds {
			if c.Val() {
				written++
			}
		}
		cmds, bytes = cmds[:0], 0
		if err != nil {
			return fmt.Errorf("restoring model version %s: %w", d.Version, err)
		}
		return nil
	}
	for _, name := range names {
		v := d.Strings[name]
		cmds = append(cmds, pipe.SetNX(ctx, prefix+name, v, 0))
		if bytes += len(v); bytes >= s.cfg.PipelineBytes {
			if err := exec(); err != nil {
				return written, err
			}
		}
	}
	for name, h := range d.Hashes {
		for f, v := range h {
			cmds = append(cmds, pipe.HSetNX(ctx, prefix+name, f, v))
			if bytes += len(v); bytes >= s.cfg.PipelineBytes {
				if err := exec(); err != nil {
					return written, err
				}
			}
		}
	}
	if err := exec(); err != nil {
		return written, err
	}
	cmds = append(cmds, pipe.SetNX(ctx, prefix+segMeta, meta, 0))
	if d.Seq > 0 {
		pipe.ZAddNX(ctx, s.k.versions(), redis.Z{Score: float64(d.Seq), Member: d.Version})
		seqAtLeastScript.Eval(ctx, pipe, []string{s.k.seq()}, d.Seq) // EVAL: a pipeline cannot fall back from NOSCRIPT
	}
	if err := exec(); err != nil {
		return written, err
	}
	return written, nil
}

// restorePointersScript sets the pointers (ARGV[1] current, ARGV[2] previous,
// "" for none) only if there is no current pointer, and the current version
// is complete (KEYS[2], its meta). Returns 1 if set, 0 if a current pointer
// was there.
var restorePointersScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'current') == 1 then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  return redis.error_reply('STREAMREC_NOVERSION version is not complete')
end
redis.call('HSET', KEYS[1], 'current', ARGV[1])
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'previous', ARGV[2])
end
return 1
`)

// RestorePointers makes current (and previous, "" for none) the version
// pointers if Redis has no current version, then PUBLISHes a ModelUpdate
// notice with Reason "restore" so that followers load it. It reports whether
// it set them: false when a current pointer was there (a version published
// since is never replaced). The current version must be complete.
func (s *Store) RestorePointers(ctx context.Context, current, previous string) (bool, error) {
	if err := checkVersion(current); err != nil {
		return false, err
	}
	if previous != "" {
		if err := checkVersion(previous); err != nil {
			return false, err
		}
	}
	n, err := restorePointersScript.Run(ctx, s.rdb, []string{s.k.pointers(), s.k.meta(current)}, current, previous).Int()
	if err != nil && isScriptError(err, "STREAMREC_NOVERSION") {
		return false, fmt.Errorf("restoring the version pointers to %s: %w", current, ErrVersionNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("restoring the version pointers to %s: %w", current, err)
	}
	if n == 0 {
		return false, nil
	}
	if err := s.notify(ctx, ModelUpdate{Current: current, Previous: previous, Reason: "restore"}); err != nil {
		return true, fmt.Errorf("%w: pointers restored to %s: %w", ErrAfterFlip, current, err)
	}
	return true, nil
}

// PutUsersIfAbsent writes recs under version where the user has no record
// (SET NX, with Config.UserTTL), in one pipeline: a record written since by
// the updater (online, newer) is never replaced by an offline one. It
// returns how many it wrote. Same argument rules as PutUsers.
func (s *Store) PutUsersIfAbsent(ctx context.Context, version string, recs []UserRecord) (written int, err error) {
	if err := s.checkUsers(version, recs); err != nil {
		return 0, err
	}
	if len(recs) == 0 {
		return 0, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.BoolCmd, len(recs))
	buf := make([]byte, 0, (userRecordFixed+len(version)+4*len(recs[0].Embedding))*len(recs))
	for i := range recs {
		start := len(buf)
		buf = appendUserRecord(buf, version, &recs[i])
		cmds[i] = pipe.SetNX(ctx, s.k.user(version, recs[i].UserID), buf[start:len(buf):len(buf)], s.cfg.UserTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("writing %d user records if absent under version %s: %w", len(recs), version, err)
	}
	for _, c := range cmds {
		if c.Val() {
			written++
		}
	}
	return written, nil
}
