package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/modellog"
)

// loggedModels writes the admin routes' changes of the model to the model log
// (--model-topic) as well as to Redis, before the route answers: a video
// registered through POST /v1/admin/videos, or a rollback, then survives a
// Redis flush at once, not only once the restorer (ingestor restore
// --follow) copied it.
type loggedModels struct {
	*cache.Store
	mu  sync.Mutex // modellog.Log is not safe for concurrent use
	log *modellog.Log
	lg  *slog.Logger
}

// RegisterItem registers the video in Redis, then writes its stored value to
// the log. A failure of the log write is an error (the route answers 503 and
// the client retries: registering again is idempotent).
func (m *loggedModels) RegisterItem(ctx context.Context, version string, id uint32, bias float32, vec []float32) error {
	if err := m.Store.RegisterItem(ctx, version, id, bias, vec); err != nil {
		return err
	}
	raw, err := m.Store.RegisteredRaw(ctx, version)
	if err != nil {
		return err
	}
	f := strconv.FormatUint(uint64(id), 10)
	v, ok := raw[f]
	if !ok {
		return fmt.Errorf("video %d registered under %s but not read back", id, version)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.log.WriteFields(ctx, version, "newitems", map[string][]byte{f: v})
}

// Rollback rolls back in Redis, then writes the new pointers to the log. A
// failure of the log write wraps cache.ErrAfterFlip (the rollback is done: a
// retry would roll forward again); the restorer copies the pointers later.
func (m *loggedModels) Rollback(ctx context.Context) (cache.ModelUpdate, error) {
	u, err := m.Store.Rollback(ctx)
	if err != nil {
		return u, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.log.WritePointers(ctx, modellog.Pointers{Current: u.Current, Previous: u.Previous}); err != nil {
		m.lg.Warn("rolled back, but writing the pointers to the model log failed; the restorer copies them", "err", err)
		return u, fmt.Errorf("%w: %w", cache.ErrAfterFlip, err)
	}
	return u, nil
}
