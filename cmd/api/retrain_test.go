package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/internal/api"
	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/online/drift"
)

// The retrain action starts its command as a process of its own, one at a
// time: while its child runs, or while any host holds the retrain lease, a
// start answers ErrRetrainRunning; drift alerts start at most one per
// interval, only for the configured detectors.
func TestRetrainerOneAtATime(t *testing.T) {
	store := retrainTestStore(t)
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if newRetrainer(retrainOptions{cmd: "  "}, store, log) != nil {
		t.Fatal("a blank command made a retrainer")
	}
	r := newRetrainer(retrainOptions{cmd: "sh", logDir: dir}, store, log)
	r.argv = append(r.argv, "-c", "echo retrain-ran; sleep 0.3") // quoting: argv set directly
	ctx := context.Background()
	s, err := r.Start(ctx, "admin call")
	if err != nil || s.PID <= 0 {
		t.Fatalf("Start: %+v %v", s, err)
	}
	if _, err := r.Start(ctx, "admin call"); !errors.Is(err, api.ErrRetrainRunning) {
		t.Fatalf("second Start while the child runs: %v", err)
	}
	for end := time.Now().Add(10 * time.Second); ; {
		r.mu.Lock()
		done := r.running == nil
		r.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the child did not finish")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b, err := os.ReadFile(s.Log); err != nil || !strings.Contains(string(b), "retrain-ran") {
		t.Fatalf("the child's output file %s: %q %v", s.Log, b, err)
	}
	// Another host's retrain holds the lease.
	lease, err := store.AcquireLease(ctx, cache.RetrainLease, "ingestor@elsewhere", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start(ctx, "admin call"); !errors.Is(err, api.ErrRetrainRunning) || !strings.Contains(err.Error(), "elsewhere") {
		t.Fatalf("Start with the lease held elsewhere: %v", err)
	}
	lease.Release(ctx)

	// Drift alerts: only the configured detectors, only when worse (the
	// error up), once per interval.
	r.argv = []string{"true"}
	alert := r.onAlert(ctx, "abs_err_adwin", time.Hour, 0)
	alert(drift.Alert{Detector: "hit_ph", Signal: "hit", Direction: "down"})
	alert(drift.Alert{Detector: "abs_err_adwin", Signal: "abs_err", Direction: "down"})
	time.Sleep(100 * time.Millisecond)
	if !r.lastAlert.IsZero() {
		t.Fatal("an alert of another detector, or of the error going down, started a retrain")
	}
	alert(drift.Alert{Detector: "abs_err_adwin", Signal: "abs_err", Direction: "up"})
	first := waitLastAlert(t, r)
	alert(drift.Alert{Detector: "abs_err_adwin", Signal: "abs_err", Direction: "up"})
	time.Sleep(100 * time.Millisecond)
	if r.lastAlert != first {
		t.Fatal("a second alert within the interval started another retrain")
	}
}

// With --drift-retrain-delay the retrain starts that long after the alert,
// not at it, and an alert in between starts nothing more.
func TestRetrainerDelay(t *testing.T) {
	store := retrainTestStore(t)
	dir := t.TempDir()
	r := newRetrainer(retrainOptions{cmd: "sh", logDir: dir}, store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.argv = append(r.argv, "-c", "echo ran >> "+dir+"/runs")
	const delay = 400 * time.Millisecond
	alert := r.onAlert(context.Background(), "abs_err_adwin", time.Hour, delay)
	t0 := time.Now()
	up := drift.Alert{Detector: "abs_err_adwin", Signal: "abs_err", Direction: "up"}
	alert(up)
	alert(up)
	runs := func() int {
		b, _ := os.ReadFile(dir + "/runs")
		return strings.Count(string(b), "ran")
	}
	time.Sleep(delay / 2)
	if n := runs(); n != 0 {
		t.Fatalf("%d retrains ran %v after the alert, before the delay of %v", n, time.Since(t0), delay)
	}
	for end := time.Now().Add(10 * time.Second); runs() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the delayed retrain never ran")
		}
	}
	if el := time.Since(t0); el < delay {
		t.Fatalf("the retrain ran %v after the alert, before the delay of %v", el, delay)
	}
	time.Sleep(200 * time.Millisecond)
	if n := runs(); n != 1 {
		t.Fatalf("%d retrains ran for two alerts within the interval, want 1", n)
	}
}

func waitLastAlert(t *testing.T, r *retrainer) time.Time {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		r.mu.Lock()
		la := r.lastAlert
		r.mu.Unlock()
		if !la.IsZero() {
			return la
		}
	}
	t.Fatal("the alert started no retrain")
	return time.Time{}
}

// retrainTestStore is a cache.Store on a miniredis of the test's own.
func retrainTestStore(t *testing.T) *cache.Store {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	store, err := cache.NewStore(rdb, cache.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return store
}
