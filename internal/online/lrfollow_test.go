package online

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// On a real broker: a control written by LRControlWriter reaches a
// follower's schedule before the schedule covers its start, a malformed
// record is skipped, and the raised factor holds from AtMs until UntilMs.
func TestIntegrationLRControls(t *testing.T) {
	broker := os.Getenv("STREAMREC_TEST_KAFKA")
	if broker == "" || testing.Short() {
		t.Skip("integration: set STREAMREC_TEST_KAFKA (and drop -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := fmt.Sprintf("test-lr-%08x.control", rand.Uint32())
	brokers := []string{broker}
	if err := EnsureLRControlTopic(ctx, brokers, topic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second}
		c.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	})
	bad := &kafka.Writer{Addr: kafka.TCP(broker), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	if err := bad.WriteMessages(ctx, kafka.Message{Value: []byte("not json")}, kafka.Message{Value: []byte(`{"id":"x","at_ms":1,"until_ms":2,"factor":50}`)}); err != nil {
		t.Fatal(err)
	}
	bad.Close()
	w := NewLRControlWriter(brokers, topic, 2*time.Second)
	defer w.Close()
	c, err := w.Raise(ctx, 3, 10*time.Second, "test")
	if err != nil {
		t.Fatal(err)
	}
	s := NewLRSchedule()
	fctx, fcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- FollowLRControls(fctx, brokers, topic, s, 2*time.Second, 50*time.Millisecond, slog.New(slog.DiscardHandler))
	}()
	if err := s.WaitCovered(ctx, c.AtMs); err != nil {
		t.Fatal(err)
	}
	for tm, want := range map[int64]float32{c.AtMs - 1: 1, c.AtMs: 3, c.UntilMs - 1: 3, c.UntilMs: 1} {
		if got := s.Factor(tm); got != want {
			t.Errorf("factor at %d (control %d..%d) = %v, want %v", tm, c.AtMs, c.UntilMs, got, want)
		}
	}
	fcancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
