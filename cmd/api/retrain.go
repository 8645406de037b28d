package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamrec/streamrec/internal/api"
	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/online/drift"
)

// retrainOptions configure the retrain action (POST /v1/admin/retrain and
// the drift alert).
type retrainOptions struct {
	cmd         string
	logDir      string
	detectors   string
	minInterval time.Duration
	delay       time.Duration
}

func registerRetrainFlags(fs *flag.FlagSet, o *retrainOptions) {
	fs.StringVar(&o.cmd, "retrain-cmd", "", "the retrain command, split on spaces (no quoting), e.g. 'ingestor train --from-log --data DIR --cut T --report out/retrain.json ...'; empty: POST /v1/admin/retrain answers 409 retrain_off")
	fs.StringVar(&o.logDir, "retrain-log-dir", "out", "folder of the retrain processes' output files")
	fs.StringVar(&o.detectors, "drift-retrain-detectors", "", "comma-separated drift detectors whose alerts start a retrain (needs --eval --drift and --retrain-cmd); empty: off")
	fs.DurationVar(&o.minInterval, "drift-retrain-min-interval", 30*time.Minute, "at most one retrain started by drift alerts per this interval (admin calls are not limited)")
	fs.DurationVar(&o.delay, "drift-retrain-delay", 0, "wait this long after a drift alert before starting its retrain, so that the log it trains on holds that much traffic after the change (0: start at the alert, when the log holds almost none of it); the interval counts from the alert")
}

// retrainer starts the retrain command as a process of its own (its own
// process group: it outlives a stopped API), one at a time: a child of this
// process still running, or the retrain lease held in Redis by any host,
// answers ErrRetrainRunning. The child takes the lease itself, so two
// replicas that race past the check start one retrain, and the other child
// exits at once with "another retrain is running".
type retrainer struct {
	argv    []string
	logDir  string
	store   *cache.Store
	log     *slog.Logger
	actions *prometheus.CounterVec // may be nil

	mu        sync.Mutex
	running   *exec.Cmd
	lastAlert time.Time
}

func newRetrainer(o retrainOptions, store *cache.Store, log *slog.Logger) *retrainer {
	if strings.TrimSpace(o.cmd) == "" {
		return nil
	}
	return &retrainer{argv: strings.Fields(o.cmd), logDir: o.logDir, store: store, log: log.With("component", "retrain")}
}

// Start implements api.Retrainer.
func (r *retrainer) Start(ctx context.Context, reason string) (api.RetrainStarted, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running != nil {
		return api.RetrainStarted{}, fmt.Errorf("%w: this API's retrain (pid %d) has not finished", api.ErrRetrainRunning, r.running.Process.Pid)
	}
	holder, left, err := r.store.LeaseHolder(ctx, cache.RetrainLease)
	if err != nil {
		return api.RetrainStarted{}, err
	}
	if holder != "" {
		return api.RetrainStarted{}, fmt.Errorf("%w: the retrain lease is held by %q for another %v", api.ErrRetrainRunning, holder, left.Round(time.Millisecond))
	}
	if err := os.MkdirAll(r.logDir, 0o755); err != nil {
		return api.RetrainStarted{}, err
	}
	now := time.Now()
	path := filepath.Join(r.logDir, "retrain-"+now.UTC().Format("20060102T150405.000Z")+".log")
	f, err := os.Create(path)
	if err != nil {
		return api.RetrainStarted{}, err
	}
	cmd := exec.Command(r.argv[0], r.argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return api.RetrainStarted{}, fmt.Errorf("starting %q: %w", r.argv[0], err)
	}
	r.running = cmd
	r.log.Warn("retrain started", "reason", reason, "pid", cmd.Process.Pid, "log", path)
	go func() {
		err := cmd.Wait()
		f.Close()
		r.mu.Lock()
		r.running = nil
		r.mu.Unlock()
		result := "ok"
		if err != nil {
			result = "error"
			r.log.Error("retrain failed", "reason", reason, "err", err, "log", path)
		} else {
			r.log.Warn("retrain done: the new version is published", "reason", reason, "took", time.Since(now), "log", path)
		}
		if r.actions != nil {
			r.actions.WithLabelValues("retrain", result).Inc()
		}
	}()
	return api.RetrainStarted{PID: cmd.Process.Pid, Reason: reason, StartedAtMs: now.UnixMilli(), Log: path}, nil
}

// onAlert is the drift action "retrain from the log": an alert of one of
// detectors that says the model got worse (drift.Worse) starts a retrain,
// at most one per minInterval.
//
// A retrain started at the alert trains on the log as it is then: on next to
// nothing after the change that raised the alert. With delay > 0 it starts
// that long after the alert (logged at the alert), so that the version it
// publishes has seen that much of the changed traffic; alerts in between
// start nothing (the interval counts from the alert).
func (r *retrainer) onAlert(ctx context.Context, detectors string, minInterval, delay time.Duration) func(drift.Alert) {
	on := map[string]bool{}
	for _, d := range strings.Split(detectors, ",") {
		if d = strings.TrimSpace(d); d != "" {
			on[d] = true
		}
	}
	if r == nil || len(on) == 0 {
		return func(drift.Alert) {}
	}
	return func(a drift.Alert) {
		if !on[a.Detector] || !drift.Worse(a) {
			return
		}
		r.mu.Lock()
		if !r.lastAlert.IsZero() && time.Since(r.lastAlert) < minInterval {
			r.mu.Unlock()
			return
		}
		r.lastAlert = time.Now()
		r.mu.Unlock()
		if delay > 0 {
			r.log.Warn("drift action: retrain scheduled", "detector", a.Detector, "signal", a.Signal, "in", delay)
		}
		go func() {
			if delay > 0 {
				t := time.NewTimer(delay)
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done():
					return
				}
			}
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if _, err := r.Start(sctx, "drift alert "+a.Detector+" on "+a.Signal); err != nil {
				result := "error"
				if errors.Is(err, api.ErrRetrainRunning) {
					result = "running"
				}
				if r.actions != nil {
					r.actions.WithLabelValues("retrain", result).Inc()
				}
				r.log.Warn("drift action: no retrain started", "detector", a.Detector, "err", err)
			}
		}()
	}
}
