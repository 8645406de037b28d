// Package benchkit holds what the bench harnesses share: the kcat reference run
// (librdkafka producing the same messages with the same settings) and medians.
package benchkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"time"
)

// Kcat is one kcat producer run: the messages of File (key TAB value per line)
// to Topic on Broker, acks=all, murmur2_random partitioning (the Java
// client's murmur2 for keyed messages), no compression, and the given batching.
type Kcat struct {
	Bin     string // kcat binary
	Broker  string
	Topic   string
	File    string
	Batch   int           // batch.num.messages
	Linger  time.Duration // linger.ms
	Headers []string      // "name=value" headers on every message
}

// Run produces the file and returns the wall time (process start and file
// read included).
func (k Kcat) Run(ctx context.Context) (time.Duration, error) {
	args := []string{"-P", "-b", k.Broker, "-t", k.Topic, "-K", "\t", "-l"}
	for _, h := range k.Headers {
		args = append(args, "-H", h)
	}
	args = append(args,
		"-X", "acks=all", "-X", "partitioner=murmur2_random", "-X", "linger.ms="+strconv.FormatInt(k.Linger.Milliseconds(), 10),
		"-X", "batch.num.messages="+strconv.Itoa(k.Batch), "-X", "batch.size=1048576",
		"-X", "queue.buffering.max.messages=2000000", "-X", "compression.type=none", k.File)
	cmd := exec.CommandContext(ctx, k.Bin, args...)
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("kcat: %w", err)
	}
	return time.Since(start), nil
}

// Median returns the median of xs (0 when empty).
func Median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
