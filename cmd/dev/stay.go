package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/devstack"
)

// apiStep starts the HTTP API and shows it serving: an online-updated user's
// top-10, the popularity fallback for an unknown user, and an interaction
// posted to the API reaching the user's embedding through Kafka and the updater.
// stayOptions: what the demo does after its scripted steps.
type stayOptions struct {
	off      bool
	duration time.Duration
	port     int
	drift    bool
	driftAt  time.Time
}

// gentle makes a child stop with SIGINT (it drains and flushes) when the
// demo's context ends, and be killed only if it has not exited 15 s later.
// The child runs in its own process group, so that a Ctrl-C in the
// terminal reaches the demo alone and each child gets exactly one SIGINT.
func gentle(cmd *exec.Cmd) {
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// stayUp keeps everything running with a gentle closed loop in the
// background (replay sim: 2 users at a time, 4 sessions/s) until Ctrl-C or
// --duration, the dashboard on a fixed port. The loop's virtual clock runs
// from the cut through 8 days over the run (10 minutes without --duration),
// so that with --drift the preference change is reached midway.
func stayUp(ctx context.Context, bins string, st *devstack.Stack, base, data, cut string, stay *stayOptions, out string) error {
	from, err := time.Parse(time.RFC3339, cut)
	if err != nil {
		return err
	}
	span := stay.duration
	if span == 0 {
		span = 10 * time.Minute
	}
	runFor := "8760h" // until Ctrl-C
	if stay.duration > 0 {
		runFor = stay.duration.String()
	}
	logPath := filepath.Join(out, "sim.log")
	simLog, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer simLog.Close()
	speedup := float64(8*24*time.Hour) / float64(span)
	sim := exec.CommandContext(ctx, filepath.Join(bins, "replay"), "sim", "--api", base, "--data", data, "--redis-addr", st.RedisAddr(),
		"--duration", runFor, "--from", cut, "--speedup", strconv.FormatFloat(speedup, 'f', 1, 64), "--concurrency", "2", "--rate", "4",
		"--exclude-watched=false", "--probes", "0", "--observe-wait", "0", "--log-level", "warn")
	sim.Stdout, sim.Stderr = simLog, simLog
	gentle(sim)
	if err := sim.Start(); err != nil {
		return err
	}
	say("the demo stays up: dashboard %s/dashboard, API %s (OpenAPI %s/v1/openapi.json); a gentle closed loop runs in the background (log %s)", base, base, base, logPath)
	if stay.drift {
		say("--drift: 30%% of users change preferences at virtual time %s, reached after about %v; watch GET %s/v1/drift and the dashboard",
			stay.driftAt.Format(time.RFC3339), time.Duration(float64(stay.driftAt.Sub(from))/speedup).Round(time.Second), base)
	}
	if stay.duration > 0 {
		say("stopping by itself after %v (Ctrl-C stops earlier)", stay.duration)
	} else {
		say("Ctrl-C stops every child cleanly")
	}
	err = sim.Wait()
	if ctx.Err() != nil {
		say("stopping: the closed loop, the API and the updater get SIGINT and drain")
		return nil
	}
	if err != nil {
		return fmt.Errorf("the background closed loop: %w (see %s)", err, logPath)
	}
	say("the background closed loop ended after %v", stay.duration)
	return nil
}

// closedLoopStep runs a short closed loop (replay sim): the small matrix's
// users request lists, watch them with their true watch ratios, and the
// updater learns from what they watch; the simulator prints the exact
// metrics of the live lists beside the frozen twin's, the API's observed
// ones, and the pipeline latency.
func closedLoopStep(ctx context.Context, bins string, st *devstack.Stack, base, data, cut string) error {
	from, err := time.Parse(time.RFC3339, cut)
	if err != nil {
		return config.Usagef("--cut %q: %v", cut, err)
	}
	say("closed loop: replay sim for 15 s, virtual time from the cut through 7 days (exact metrics per 1-second window, live beside the frozen twin)")
	sim := exec.CommandContext(ctx, filepath.Join(bins, "replay"), "sim", "--api", base, "--data", data, "--redis-addr", st.RedisAddr(),
		"--duration", "15s", "--from", cut, "--until", from.Add(7*24*time.Hour).Format(time.RFC3339), "--concurrency", "4",
		"--exclude-watched=false", "--probes", "10", "--observe-wait", "5s", "--log-level", "warn")
	sim.Stdout, sim.Stderr = os.Stdout, os.Stdout
	if err := sim.Run(); err != nil {
		return fmt.Errorf("replay sim: %w", err)
	}
	return nil
}
