package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
)

type fakeRetrainer struct {
	running bool
	fail    error
	starts  []string
}

func (f *fakeRetrainer) Start(_ context.Context, reason string) (RetrainStarted, error) {
	if f.fail != nil {
		return RetrainStarted{}, f.fail
	}
	if f.running {
		return RetrainStarted{}, fmt.Errorf("%w: lease retrain is held by %q", ErrRetrainRunning, "ingestor@h:1")
	}
	f.running = true
	f.starts = append(f.starts, reason)
	return RetrainStarted{PID: 4242, Reason: reason, StartedAtMs: 1, Log: "out/retrain.log"}, nil
}

// POST /v1/admin/retrain: behind the token; 202 with the process; 409 while
// one runs (anywhere: the lease) and without a retrain command; 503 when the
// process cannot start.
func TestAdminRetrain(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AdminToken = "tok-retrain"
	f := newFixture(t, 10, 4, 1, cfg)
	tok := []string{"Authorization", "Bearer tok-retrain"}
	wantError(t, f.do(http.MethodPost, "/v1/admin/retrain", "", tok...), http.StatusConflict, CodeRetrainOff)
	wantError(t, f.do(http.MethodPost, "/v1/admin/retrain", ""), http.StatusUnauthorized, CodeUnauthorized)
	fr := &fakeRetrainer{}
	f.srv.deps.Retrain = fr
	w := f.do(http.MethodPost, "/v1/admin/retrain", "", tok...)
	if w.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	if s := decode[RetrainStarted](t, w); s.PID != 4242 || s.Reason != "admin call" {
		t.Fatalf("answer %+v", s)
	}
	wantError(t, f.do(http.MethodPost, "/v1/admin/retrain", "", tok...), http.StatusConflict, CodeRetrainRunning)
	if len(fr.starts) != 1 {
		t.Fatalf("%d retrains started; want 1", len(fr.starts))
	}
	fr.running, fr.fail = false, errors.New("exec: no such file")
	w = f.do(http.MethodPost, "/v1/admin/retrain", "", tok...)
	wantError(t, w, http.StatusServiceUnavailable, CodeRetrainFailed)
}
