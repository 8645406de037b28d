// Command replay is the bench harness for the replay tool: it builds ./replay,
// publishes the first N events of a KuaiRec folder with it (the tool's own
// summary gives the publishing rate, loading excluded), then publishes the same
// messages (same keys, values and header sizes) with kcat (librdkafka) to the
// same broker with acks=all, murmur2 partitioning and the same batching, and
// prints each tool's median rate over several runs in the same session. Every
// bench topic is deleted after its run.
//
//	go run ./bench/replay --data .cache/full --brokers 127.0.0.1:19092 --events 2000000 --runs 5
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/bench/benchkit"
	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/stream"
)

func main() { config.Main("bench-replay", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench-replay", flag.ContinueOnError)
	data := fs.String("data", ".cache/full", "KuaiRec folder")
	brokers := fs.String("brokers", "127.0.0.1:19092", "Kafka broker")
	n := fs.Int("events", 2_000_000, "events per run (0: all)")
	runs := fs.Int("runs", 5, "runs per tool (the median is reported)")
	partitions := fs.Int("partitions", 8, "partitions of the bench topics")
	batch := fs.Int("batch", 5000, "messages per batch (replay --batch, librdkafka batch.num.messages)")
	linger := fs.Duration("linger", 2*time.Millisecond, "batch timeout (replay --linger, librdkafka linger.ms)")
	kcat := fs.String("kcat", "kcat", "kcat binary ('' skips the reference)")
	config.Usage(fs, "bench-replay: the replay tool vs kcat on a local broker")
	if err := config.Parse(fs, args, nil); err != nil {
		return &config.UsageError{Err: err}
	}
	dir, err := os.MkdirTemp("", "bench-replay")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "replay")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./replay").CombinedOutput(); err != nil {
		return fmt.Errorf("building ./replay: %v\n%s", err, out)
	}

	// The same messages for kcat: key TAB value per line, in the replay order.
	t0 := time.Now()
	ddir, err := kuairec.ResolveDataDir(*data)
	if err != nil {
		return err
	}
	ds, _, err := kuairec.Load(ddir, kuairec.Options{SkipSmall: true, SkipDaily: true})
	if err != nil {
		return err
	}
	m := ds.Big
	if *n <= 0 || *n > len(m.Order) {
		*n = len(m.Order)
	}
	file := filepath.Join(dir, "events.tsv")
	if *kcat != "" {
		if err := writeKcatFile(file, m, *n); err != nil {
			return err
		}
	}
	fmt.Printf("loaded %s (%d events per run) and wrote kcat's input in %v (not timed below)\n", ddir, *n, time.Since(t0).Round(time.Millisecond))
	ds, m = nil, nil

	bl := []string{*brokers}
	rateRe := regexp.MustCompile(`rate\s+(\d+) events/s over (\S+) publishing`)
	loadRe := regexp.MustCompile(`loading\s+(\S+)`)
	var ours, theirs []float64
	for r := 0; r < *runs; r++ {
		topic := fmt.Sprintf("bench-replay-%d-%d", time.Now().UnixNano(), r)
		cmd := exec.CommandContext(ctx, bin, "--data", *data, "--brokers", *brokers, "--topic", topic,
			"--partitions", strconv.Itoa(*partitions), "--limit", strconv.Itoa(*n), "--batch", strconv.Itoa(*batch),
			"--linger", linger.String(), "--progress=false", "--log-level", "warn")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		wall := time.Now()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("replay: %w\n%s", err, out.String())
		}
		mr, ml := rateRe.FindStringSubmatch(out.String()), loadRe.FindStringSubmatch(out.String())
		if mr == nil || ml == nil {
			return fmt.Errorf("no rate in the replay summary:\n%s", out.String())
		}
		rate, _ := strconv.ParseFloat(mr[1], 64)
		ours = append(ours, rate)
		fmt.Printf("run %d  replay            %8.0f events/s  (publishing %s; loading %s, apart; process wall %v)\n",
			r+1, rate, mr[2], ml[1], time.Since(wall).Round(time.Millisecond))
		deleteTopic(ctx, *brokers, topic)

		if *kcat != "" {
			ktopic := topic + "-kcat"
			if err := stream.EnsureTopics(ctx, bl, stream.InteractionsTopic(ktopic, *partitions)); err != nil {
				return err
			}
			// The replay's headers, with values of the same length (kcat's are constant).
			el, err := benchkit.Kcat{Bin: *kcat, Broker: *brokers, Topic: ktopic, File: file, Batch: *batch, Linger: *linger, Headers: []string{"replay-pos=1234567", "replay-run=0123456789abcdef"}}.Run(ctx)
			if err != nil {
				return err
			}
			theirs = append(theirs, float64(*n)/el.Seconds())
			fmt.Printf("run %d  kcat (librdkafka) %8.0f events/s  (%v, process start and file read included)\n", r+1, theirs[r], el.Round(time.Millisecond))
			deleteTopic(ctx, *brokers, ktopic)
		}
	}
	fmt.Printf("\nmedian of %d runs, %d events, %d partitions, acks=all, murmur2, batch %d, linger %v:\n",
		*runs, *n, *partitions, *batch, *linger)
	fmt.Printf("  replay   %8.0f events/s\n", benchkit.Median(ours))
	if len(theirs) > 0 {
		fmt.Printf("  kcat     %8.0f events/s\n  ratio    %8.2f\n", benchkit.Median(theirs), benchkit.Median(ours)/benchkit.Median(theirs))
	}
	return nil
}

// writeKcatFile writes the first n events of the replay order as kcat -K '\t'
// lines, encoded as the replay encodes them (tiebreak ids, source=replay).
func writeKcatFile(file string, m *kuairec.Interactions, n int) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	now := time.Now().UnixMicro()
	var line []byte
	var seq uint32
	for i := 0; i < n; i++ {
		r := m.Order[i]
		if i > 0 {
			q := m.Order[i-1]
			if m.TimeMS[q] == m.TimeMS[r] && m.User[q] == m.User[r] {
				seq++
			} else {
				seq = 0
			}
		}
		e := stream.Event{EventID: stream.MakeEventID(m.TimeMS[r], seq), UserID: m.User[r], VideoID: m.Video[r],
			PlayDurationMs: int64(m.PlayMS[r]), VideoDurationMs: int64(m.DurMS[r]), EventTimeMs: m.TimeMS[r],
			WatchRatio: m.WatchRatio[r], Source: stream.SourceReplay, ProducedAtUs: now}
		line = stream.AppendKey(line[:0], e.UserID)
		line = append(line, '\t')
		line = stream.AppendEvent(line, &e)
		line = append(line, '\n')
		w.Write(line)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func deleteTopic(ctx context.Context, broker, topic string) {
	c := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 30 * time.Second}
	if _, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}}); err != nil {
		fmt.Fprintf(os.Stderr, "deleting %s: %v\n", topic, err)
	}
}
