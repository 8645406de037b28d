package online

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/stream"
)

// Poison in the changelog (a key that is no user id, a value that does not
// decode) is counted and skipped: Read succeeds, and a user whose last record
// is poison is left out (materialised from Redis at its next event) rather
// than restored from an older record. Real Kafka, opt-in by
// STREAMREC_TEST_KAFKA.
func TestIntegrationChangelogSkipsPoison(t *testing.T) {
	brokers := os.Getenv("STREAMREC_TEST_KAFKA")
	if brokers == "" || testing.Short() {
		t.Skip("integration: set STREAMREC_TEST_KAFKA (and drop -short) to run")
	}
	topic := fmt.Sprintf("test-online-%08x.state", rand.Uint32())
	if err := stream.EnsureTopics(t.Context(), []string{brokers}, stream.CompactedTopic(topic, 1)); err != nil {
		t.Fatal(err)
	}
	state := func(uid uint32, off int64) []byte {
		return AppendState(nil, &UserState{UserID: uid, ModelVersion: "v1", Pos: Position{0, off}, Base: []float32{1}, Vec: []float32{float32(off)}})
	}
	w := &kafka.Writer{Addr: kafka.TCP(brokers), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	msgs := []kafka.Message{
		{Key: []byte("1"), Value: state(1, 10)},
		{Key: []byte("2"), Value: state(2, 11)},
		{Key: []byte("not-a-user"), Value: state(9, 12)},
		{Key: []byte("2"), Value: []byte{2, 0, 0, 1}}, // user 2's last record: poison
		{Key: []byte("3"), Value: []byte("garbage")},
		{Key: []byte("3"), Value: state(3, 14)}, // a good record after the poison one
	}
	if err := w.WriteMessages(t.Context(), msgs...); err != nil {
		t.Fatal(err)
	}
	c := NewChangelog([]string{brokers}, topic)
	defer c.Close()
	c.Poison = &Poison{}
	got, err := c.Read(t.Context(), []int{0})
	if err != nil {
		t.Fatalf("Read with poison records: %v", err)
	}
	if len(got) != 2 || got[1] == nil || got[1].Pos.Offset != 10 || got[3] == nil || got[3].Pos.Offset != 14 || got[2] != nil {
		t.Fatalf("restored %v, want users 1 and 3 (user 2's last record is poison)", got)
	}
	p := c.Poison.Counts()
	if p[PoisonChangelogKey] != 1 || p[PoisonChangelogState] != 2 {
		t.Fatalf("poison counts %v", p)
	}
}
