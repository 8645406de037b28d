// Package config is the one configuration convention shared by every streamrec
// binary: command-line flags, each with an environment-variable fallback under the
// STREAMREC_ prefix, validated at start, plus the JSON slog logger and the
// signal-to-context wiring that every main uses.
//
// A flag named "redis-addr" on any binary falls back to STREAMREC_REDIS_ADDR when
// it is not given on the command line. Precedence: flag > environment > default.
package config

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// EnvPrefix prefixes every environment variable read by streamrec binaries.
const EnvPrefix = "STREAMREC_"

// EnvName returns the environment variable that backs the flag name:
// "redis-addr" -> "STREAMREC_REDIS_ADDR".
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
}

// Parse parses args into fs, then fills every flag that was not set on the command
// line from its environment variable (see EnvName). lookup is os.LookupEnv in
// production; tests pass their own. An environment value that does not parse is an
// error naming the variable.
func Parse(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		name := EnvName(f.Name)
		v, ok := lookup(name)
		if !ok {
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("environment %s=%q: %w", name, v, err))
		}
	})
	return errors.Join(errs...)
}

// Usage installs a usage function on fs that also lists each flag's environment
// variable, so that -h documents the whole convention.
func Usage(fs *flag.FlagSet, summary string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "%s\n\nFlags (each also read from its environment variable):\n", summary)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(w, "  -%s  [%s]%s\n      %s\n", f.Name, EnvName(f.Name), def, f.Usage)
		})
	}
}

// NewLogger returns the JSON slog logger every binary uses. level is one of
// debug, info, warn, error.
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// SignalContext returns a context cancelled on SIGINT or SIGTERM (docker stop
// sends SIGTERM). The first signal starts a graceful shutdown; from then on
// the signals have their default action again, so a second one ends the
// process at once (signal.NotifyContext would keep catching them).
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-ch:
		case <-ctx.Done():
		}
		signal.Stop(ch) // back to the default action: a second signal kills
		cancel()
	}()
	return ctx, cancel
}

// Main runs a binary's run function and maps its error to the exit code in one
// place: 0 on success or a clean cancel, 2 on a usage/config error, 1 otherwise.
func Main(name string, run func(ctx context.Context, args []string) error) {
	ctx, cancel := SignalContext(context.Background())
	err := run(ctx, os.Args[1:])
	cancel()
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.As(err, new(*UsageError)):
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// UsageError marks a configuration or usage error (exit code 2).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef builds a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}
