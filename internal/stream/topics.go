package stream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// Default topic names.
const (
	DefaultTopic    = "interactions"
	DefaultDLQTopic = "interactions.dlq"
)

// TopicSpec describes a topic that EnsureTopics creates explicitly (the test and
// production brokers run with auto.create.topics.enable=false).
type TopicSpec struct {
	Name       string
	Partitions int               // > 0
	Configs    map[string]string // topic-level configs, e.g. cleanup.policy
}

// InteractionsTopic is the spec of an interactions (or dead-letter) topic: the log
// is kept forever (retention.ms=-1, retention.bytes=-1); Kafka is the source of truth.
func InteractionsTopic(name string, partitions int) TopicSpec {
	return TopicSpec{Name: name, Partitions: partitions, Configs: map[string]string{
		"retention.ms":    "-1",
		"retention.bytes": "-1",
		"cleanup.policy":  "delete",
	}}
}

// CompactedTopic is the spec of a changelog or checkpoint topic keyed by entity:
// log compaction keeps the latest value per key forever.
func CompactedTopic(name string, partitions int) TopicSpec {
	return TopicSpec{Name: name, Partitions: partitions, Configs: map[string]string{
		"cleanup.policy":            "compact",
		"min.compaction.lag.ms":     "0",
		"segment.ms":                "600000",
		"min.cleanable.dirty.ratio": "0.1",
	}}
}

// EnsureTopics creates each topic that does not exist yet. A topic that exists
// with a different partition count is an error (keyed partitioning would change).
func EnsureTopics(ctx context.Context, brokers []string, specs ...TopicSpec) error {
	if len(brokers) == 0 {
		return errors.New("ensuring topics: no brokers")
	}
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 15 * time.Second}
	req := &kafka.CreateTopicsRequest{}
	for _, s := range specs {
		if s.Name == "" || s.Partitions <= 0 {
			return fmt.Errorf("ensuring topics: invalid spec %+v", s)
		}
		tc := kafka.TopicConfig{Topic: s.Name, NumPartitions: s.Partitions, ReplicationFactor: 1}
		keys := make([]string, 0, len(s.Configs))
		for k := range s.Configs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: s.Configs[k]})
		}
		req.Topics = append(req.Topics, tc)
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("creating topics: %w", err)
	}
	var errs []error
	var existing []string
	for name, terr := range resp.Errors {
		switch {
		case terr == nil:
		case errors.Is(terr, kafka.TopicAlreadyExists):
			existing = append(existing, name)
		default:
			errs = append(errs, fmt.Errorf("creating topic %q: %w", name, terr))
		}
	}
	if len(existing) > 0 {
		counts, err := PartitionCounts(ctx, brokers, existing...)
		if err != nil {
			errs = append(errs, err)
		}
		for _, s := range specs {
			if n, ok := counts[s.Name]; ok && n != s.Partitions {
				errs = append(errs, fmt.Errorf("topic %q exists with %d partitions, configured %d", s.Name, n, s.Partitions))
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// CreateTopics returns before every broker knows the topic: wait for metadata.
	return waitTopics(ctx, brokers, specs)
}

// PartitionCounts returns the partition count of each named topic that exists.
func PartitionCounts(ctx context.Context, brokers []string, topics ...string) (map[string]int, error) {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("reading topic metadata: %w", err)
	}
	out := map[string]int{}
	for _, t := range md.Topics {
		if t.Error == nil {
			out[t.Name] = len(t.Partitions)
		}
	}
	return out, nil
}

func waitTopics(ctx context.Context, brokers []string, specs []TopicSpec) error {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		counts, err := PartitionCounts(ctx, brokers, names...)
		if err == nil && len(counts) == len(names) {
			ready := true
			for _, s := range specs {
				ready = ready && counts[s.Name] == s.Partitions
			}
			if ready {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topics %v not visible in metadata after 20s (last error: %v)", names, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PartitionFor returns the partition that murmur2 (the Java client's default
// partitioner, kcat's murmur2_random, franz-go's default) assigns to a user's key.
func PartitionFor(userID uint32, partitions int) int {
	var b kafka.Murmur2Balancer
	parts := make([]int, partitions)
	for i := range parts {
		parts[i] = i
	}
	return b.Balance(kafka.Message{Key: AppendKey(nil, userID)}, parts...)
}

// splitHostPort validates a broker address.
func checkBroker(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("broker %q: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("broker %q: missing host", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("broker %q: bad port", addr)
	}
	return nil
}
