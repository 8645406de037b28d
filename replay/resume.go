package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// Header names of replayed messages (see the package doc's resume rule).
const (
	HeaderPos = "replay-pos"
	HeaderRun = "replay-run"
)

// head is what a partition already holds of a replay: the position of its last
// replay message (-1: none) and that message's run identity.
type head struct {
	Pos    int64
	Run    string
	Offset int64 // the message's offset, -1 if none
}

// noHead is a partition without any replay message.
var noHead = head{Pos: -1, Offset: -1}

// checkHeads verifies that every head belongs to run (or to no run).
func checkHeads(heads []head, run string) error {
	var errs []error
	for p, h := range heads {
		if h.Pos >= 0 && h.Run != run {
			errs = append(errs, fmt.Errorf("partition %d holds replay run %s up to position %d (offset %d); this run is %s (other data or cut): use another topic or --resume=false",
				p, h.Run, h.Pos, h.Offset, run))
		}
	}
	return errors.Join(errs...)
}

// published reports whether the event at position pos on partition part is
// already in the topic: the resume rule, pos <= the partition's head.
func published(heads []head, part int, pos int) bool {
	return heads != nil && int64(pos) <= heads[part].Pos
}

// headerOf returns the value of the named header, or nil.
func headerOf(hs []kafka.Header, key string) []byte {
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i].Key == key {
			return hs[i].Value
		}
	}
	return nil
}

// headFromMessage returns the replay head carried by m, and false if m is not a
// replay message (no replay-run header).
func headFromMessage(m kafka.Message) (head, bool, error) {
	run := headerOf(m.Headers, HeaderRun)
	if run == nil {
		return head{}, false, nil
	}
	pos, err := strconv.ParseInt(string(headerOf(m.Headers, HeaderPos)), 10, 64)
	if err != nil || pos < 0 {
		return head{}, false, fmt.Errorf("partition %d offset %d: bad %s header %q", m.Partition, m.Offset, HeaderPos, headerOf(m.Headers, HeaderPos))
	}
	return head{Pos: pos, Run: string(run), Offset: m.Offset}, true, nil
}

// readHeads reads each partition's replay head from the broker: the last message
// with a replay-run header, scanning back at most scan messages from the end.
func readHeads(ctx context.Context, brokers []string, topic string, partitions, scan int) ([]head, error) {
	heads := make([]head, partitions)
	for p := range heads {
		h, err := readHead(ctx, brokers, topic, p, scan)
		if err != nil {
			return nil, fmt.Errorf("reading the replay head of %s/%d: %w", topic, p, err)
		}
		heads[p] = h
	}
	return heads, nil
}

// partitionOffsets returns the first and the next offset of a partition,
// retrying while a freshly created partition has no leader yet (up to 20 s).
func partitionOffsets(ctx context.Context, brokers []string, topic string, part int) (first, last int64, err error) {
	deadline := time.Now().Add(20 * time.Second)
	for attempt := 0; ; attempt++ {
		for _, b := range brokers {
			var conn *kafka.Conn
			if conn, err = kafka.DialLeader(ctx, "tcp", b, topic, part); err != nil {
				continue
			}
			first, last, err = conn.ReadOffsets()
			conn.Close()
			if err == nil {
				return first, last, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, 0, err
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
		}
	}
}

func readHead(ctx context.Context, brokers []string, topic string, part, scan int) (head, error) {
	first, last, err := partitionOffsets(ctx, brokers, topic, part)
	if err != nil {
		return head{}, err
	}
	const window = 1000
	end := last // exclusive
	for end > first {
		start := max(first, end-window)
		if last-start > int64(scan) {
			return head{}, fmt.Errorf("no replay message in the last %d messages (offsets %d..%d); raise --resume-scan or pass --resume=false", scan, last-int64(scan), last-1)
		}
		h, ok, err := lastReplayIn(ctx, brokers, topic, part, start, end)
		if err != nil {
			return head{}, err
		}
		if ok {
			return h, nil
		}
		end = start
	}
	return noHead, nil
}

// lastReplayIn reads offsets [start, end) of a partition and returns the last
// replay message's head.
func lastReplayIn(ctx context.Context, brokers []string, topic string, part int, start, end int64) (head, bool, error) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: part,
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(start); err != nil {
		return head{}, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var best head
	found := false
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return head{}, false, err
		}
		h, ok, err := headFromMessage(m)
		if err != nil {
			return head{}, false, err
		}
		if ok {
			best, found = h, true
		}
		if m.Offset >= end-1 {
			return best, found, nil
		}
	}
}
