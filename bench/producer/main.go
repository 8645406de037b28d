// Command producer is the bench harness for the producer wrapper: it publishes the
// same events with stream.Producer and with kcat (librdkafka) to the same local
// Apache Kafka broker, acks=all, murmur2 partitioning and the same batching, and
// prints each tool's median rate over several runs measured in the same session.
//
//	go run ./bench/producer --brokers 127.0.0.1:19092 --events 1000000 --runs 5
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/bench/benchkit"
	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/stream"
)

func main() { config.Main("bench-producer", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench-producer", flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:19092", "Kafka broker")
	n := fs.Int("events", 1_000_000, "events per run")
	runs := fs.Int("runs", 5, "runs per tool (the median is reported)")
	partitions := fs.Int("partitions", 8, "partitions of the bench topic")
	chunk := fs.Int("chunk", 100_000, "events per Publish call")
	batch := fs.Int("batch", 5000, "messages per batch (kafka-go BatchSize, librdkafka batch.num.messages)")
	linger := fs.Duration("linger", 2*time.Millisecond, "batch timeout (kafka-go BatchTimeout, librdkafka linger.ms)")
	kcat := fs.String("kcat", "kcat", "kcat binary ('' skips the reference)")
	config.Usage(fs, "bench-producer: stream.Producer vs kcat on a local broker")
	if err := config.Parse(fs, args, nil); err != nil {
		return &config.UsageError{Err: err}
	}
	bl := []string{*brokers}
	rng := rand.New(rand.NewPCG(7, 7))
	evs := make([]stream.Event, *n)
	t0 := int64(1593878903438)
	produced := time.Now().UnixMicro()
	for i := range evs {
		ts := t0 + int64(i)
		dur := int64(3000 + rng.IntN(20000))
		play := rng.Int64N(2 * dur)
		evs[i] = stream.Event{EventID: stream.MakeEventID(ts, 0), UserID: uint32(rng.IntN(7176)), VideoID: uint32(rng.IntN(10728)),
			PlayDurationMs: play, VideoDurationMs: dur, EventTimeMs: ts, WatchRatio: float64(play) / float64(dur),
			Source: stream.SourceReplay, ProducedAtUs: produced}
	}
	// The same messages for kcat: key TAB value per line.
	dir, err := os.MkdirTemp("", "bench-producer")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "events.tsv")
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var line []byte
	for i := range evs {
		line = stream.AppendKey(line[:0], evs[i].UserID)
		line = append(line, '\t')
		line = stream.AppendEvent(line, &evs[i])
		line = append(line, '\n')
		w.Write(line)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	f.Close()

	var ours, theirs []float64
	for r := 0; r < *runs; r++ {
		topic := fmt.Sprintf("bench-producer-%d-%d", time.Now().UnixNano(), r)
		if err := stream.EnsureTopics(ctx, bl, stream.InteractionsTopic(topic, *partitions)); err != nil {
			return err
		}
		p, err := stream.NewProducer(stream.ProducerConfig{Brokers: bl, Topic: topic, BatchSize: *batch, BatchTimeout: *linger})
		if err != nil {
			return err
		}
		start := time.Now()
		for i := 0; i < len(evs); i += *chunk {
			if err := p.Publish(ctx, evs[i:min(i+*chunk, len(evs))]); err != nil {
				return err
			}
		}
		el := time.Since(start)
		p.Close()
		ours = append(ours, float64(len(evs))/el.Seconds())
		fmt.Printf("run %d  streamrec producer  %8.0f events/s  (%v)\n", r+1, ours[r], el.Round(time.Millisecond))

		if *kcat != "" {
			ktopic := topic + "-kcat"
			if err := stream.EnsureTopics(ctx, bl, stream.InteractionsTopic(ktopic, *partitions)); err != nil {
				return err
			}
			el, err := benchkit.Kcat{Bin: *kcat, Broker: *brokers, Topic: ktopic, File: file, Batch: *batch, Linger: *linger}.Run(ctx)
			if err != nil {
				return err
			}
			theirs = append(theirs, float64(len(evs))/el.Seconds())
			fmt.Printf("run %d  kcat (librdkafka)   %8.0f events/s  (%v, process start and file read included)\n", r+1, theirs[r], el.Round(time.Millisecond))
			if r == 0 {
				if err := checkPartitions(ctx, *brokers, ktopic, *partitions); err != nil {
					return err
				}
			}
		}
	}
	fmt.Printf("\nmedian of %d runs, %d events, %d partitions, acks=all, murmur2, batch %d, linger %v:\n",
		*runs, *n, *partitions, *batch, *linger)
	fmt.Printf("  streamrec producer  %8.0f events/s\n", benchkit.Median(ours))
	if len(theirs) > 0 {
		fmt.Printf("  kcat                %8.0f events/s\n  ratio               %8.2f\n", benchkit.Median(theirs), benchkit.Median(ours)/benchkit.Median(theirs))
	}
	return nil
}

// checkPartitions reads the head of each partition of kcat's topic and checks
// that librdkafka's murmur2_random put each key where stream.PartitionFor does.
func checkPartitions(ctx context.Context, broker, topic string, partitions int) error {
	checked := 0
	for p := 0; p < partitions; p++ {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		for i := 0; i < 200; i++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				return err
			}
			u, err := strconv.ParseUint(string(m.Key), 10, 32)
			if err != nil {
				r.Close()
				return err
			}
			if want := stream.PartitionFor(uint32(u), partitions); want != p {
				r.Close()
				return fmt.Errorf("kcat put key %s on partition %d, stream.PartitionFor says %d", m.Key, p, want)
			}
			checked++
		}
		r.Close()
	}
	fmt.Printf("       partitioning: %d kcat messages checked, each on the partition stream.PartitionFor gives\n", checked)
	return nil
}
