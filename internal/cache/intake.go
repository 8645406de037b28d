package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// IntakeState is what BeginIntake found for an idempotency key.
type IntakeState int

// The answers of BeginIntake.
const (
	// IntakeNew: no record; one is now pending, owned by the caller.
	IntakeNew IntakeState = iota + 1
	// IntakeRetry: an earlier attempt failed (or its pending lease ran out,
	// its owner presumably dead); the record is pending again, owned by the
	// caller, who publishes the same events (same ids) again.
	IntakeRetry
	// IntakeInProgress: another attempt holds the record pending.
	IntakeInProgress
	// IntakeDone: an earlier attempt succeeded; its stored answer is returned.
	IntakeDone
	// IntakeReused: the key was used with another body.
	IntakeReused
)

func (s IntakeState) String() string {
	switch s {
	case IntakeNew:
		return "new"
	case IntakeRetry:
		return "retry"
	case IntakeInProgress:
		return "in_progress"
	case IntakeDone:
		return "done"
	case IntakeReused:
		return "reused"
	}
	return "intake(" + strconv.Itoa(int(s)) + ")"
}

// An intake record is a hash at ns:intake:<hex SHA-256 of client, 0, key>:
// s (pending | failed | done), h (hex SHA-256 of the request body), l (the
// pending lease's end, Unix ms), r (the stored answer, once done). It expires
// ttl after its last change.
var intakeBeginScript = redis.NewScript(`
local st = redis.call('HMGET', KEYS[1], 's', 'h', 'l', 'r')
local now, lease = tonumber(ARGV[2]), tonumber(ARGV[3])
if not st[1] then
  redis.call('HSET', KEYS[1], 's', 'pending', 'h', ARGV[1], 'l', now + lease)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'new', ''}
end
if st[2] ~= ARGV[1] then return {'reused', ''} end
if st[1] == 'done' then return {'done', st[4] or ''} end
if st[1] == 'pending' and tonumber(st[3] or '0') > now then return {'in_progress', ''} end
redis.call('HSET', KEYS[1], 's', 'pending', 'l', now + lease)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {'retry', ''}
`)

var intakeEndScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'h') ~= ARGV[1] then return 0 end
if ARGV[2] == 'done' then
  redis.call('HSET', KEYS[1], 's', 'done', 'r', ARGV[3])
elseif redis.call('HGET', KEYS[1], 's') == 'pending' then
  redis.call('HSET', KEYS[1], 's', 'failed')
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`)

func (k keys) intake(client, key string) string {
	h := sha256.New()
	h.Write([]byte(client))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return k.ns + keySep + segIntake + keySep + hex.EncodeToString(h.Sum(nil))
}

// BeginIntake looks up the intake record of (client, key) for a request whose
// body hashes to bodyHash, and takes it (pending, for lease) when the request
// is to be published: IntakeNew or IntakeRetry. IntakeDone comes with the
// stored answer. now is the caller's clock (the lease's start).
func (s *Store) BeginIntake(ctx context.Context, client, key string, bodyHash []byte, now time.Time, lease, ttl time.Duration) (IntakeState, []byte, error) {
	if lease <= 0 || ttl < lease {
		return 0, nil, fmt.Errorf("%w: intake lease %v and ttl %v", ErrInvalid, lease, ttl)
	}
	res, err := intakeBeginScript.Run(ctx, s.rdb, []string{s.k.intake(client, key)}, hex.EncodeToString(bodyHash),
		now.UnixMilli(), lease.Milliseconds(), ttl.Milliseconds()).Slice()
	if err != nil {
		return 0, nil, fmt.Errorf("reading the intake record: %w", err)
	}
	if len(res) != 2 {
		return 0, nil, fmt.Errorf("%w: intake script answered %v", ErrCorrupt, res)
	}
	state, _ := res[0].(string)
	answer, _ := res[1].(string)
	switch state {
	case "new":
		return IntakeNew, nil, nil
	case "retry":
		return IntakeRetry, nil, nil
	case "in_progress":
		return IntakeInProgress, nil, nil
	case "done":
		return IntakeDone, []byte(answer), nil
	case "reused":
		return IntakeReused, nil, nil
	}
	return 0, nil, fmt.Errorf("%w: intake script answered %q", ErrCorrupt, state)
}

// ErrIntakeLost means the intake record is gone or belongs to another body
// (it expired, or Redis was flushed, while the request was published).
var ErrIntakeLost = errors.New("cache: intake record lost")

// FinishIntake marks the record of (client, key) done with the answer to
// return to later retries, for ttl.
func (s *Store) FinishIntake(ctx context.Context, client, key string, bodyHash, answer []byte, ttl time.Duration) error {
	return s.endIntake(ctx, client, key, bodyHash, "done", answer, ttl)
}

// FailIntake marks the pending record of (client, key) failed: the next
// retry publishes again.
func (s *Store) FailIntake(ctx context.Context, client, key string, bodyHash []byte, ttl time.Duration) error {
	return s.endIntake(ctx, client, key, bodyHash, "failed", nil, ttl)
}

func (s *Store) endIntake(ctx context.Context, client, key string, bodyHash []byte, state string, answer []byte, ttl time.Duration) error {
	n, err := intakeEndScript.Run(ctx, s.rdb, []string{s.k.intake(client, key)}, hex.EncodeToString(bodyHash), state,
		answer, ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("writing the intake record: %w", err)
	}
	if n == 0 {
		return ErrIntakeLost
	}
	return nil
}
