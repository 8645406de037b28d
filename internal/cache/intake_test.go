package cache

import (
	"errors"
	"testing"
	"time"
)

func testIntake(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := t.Context()
	now := time.UnixMilli(1764180000000)
	const lease, ttl = 10 * time.Second, time.Hour
	body, other := []byte("body-hash-1"), []byte("body-hash-2")
	begin := func(client, key string, h []byte, at time.Time) (IntakeState, []byte) {
		t.Helper()
		st, ans, err := s.BeginIntake(ctx, client, key, h, at, lease, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return st, ans
	}
	if st, _ := begin("c1", "k", body, now); st != IntakeNew {
		t.Fatalf("first attempt: %v, want new", st)
	}
	// A concurrent retry while the first is pending; another body; another
	// client with the same key is another record.
	if st, _ := begin("c1", "k", body, now.Add(time.Second)); st != IntakeInProgress {
		t.Fatalf("concurrent retry: %v, want in_progress", st)
	}
	if st, _ := begin("c1", "k", other, now); st != IntakeReused {
		t.Fatalf("other body: %v, want reused", st)
	}
	if st, _ := begin("c2", "k", other, now); st != IntakeNew {
		t.Fatalf("other client: %v, want new", st)
	}
	// Failed: the retry takes it again.
	if err := s.FailIntake(ctx, "c1", "k", body, ttl); err != nil {
		t.Fatal(err)
	}
	if st, _ := begin("c1", "k", body, now.Add(2*time.Second)); st != IntakeRetry {
		t.Fatalf("after a failure: %v, want retry", st)
	}
	// Done: the stored answer, whatever the lease.
	if err := s.FinishIntake(ctx, "c1", "k", body, []byte(`{"accepted":1}`), ttl); err != nil {
		t.Fatal(err)
	}
	if st, ans := begin("c1", "k", body, now.Add(3*time.Second)); st != IntakeDone || string(ans) != `{"accepted":1}` {
		t.Fatalf("after success: %v %q, want done with the answer", st, ans)
	}
	if err := s.FailIntake(ctx, "c1", "k", body, ttl); err != nil {
		t.Fatal(err)
	}
	if st, _ := begin("c1", "k", body, now.Add(4*time.Second)); st != IntakeDone {
		t.Fatalf("a late failure undid done: %v", st)
	}
	// A pending record whose lease ran out (its owner died) is taken over.
	if st, _ := begin("c3", "k", body, now); st != IntakeNew {
		t.Fatal(st)
	}
	if st, _ := begin("c3", "k", body, now.Add(lease+time.Millisecond)); st != IntakeRetry {
		t.Fatalf("after the lease: %v, want retry", st)
	}
	// The record expires.
	if d := s.rdb.PTTL(ctx, s.k.intake("c1", "k")).Val(); d <= 0 || d > ttl {
		t.Fatalf("intake record TTL %v, want (0, %v]", d, ttl)
	}
	// Ending a record that is gone (flushed) says so.
	if err := s.FinishIntake(ctx, "c9", "k", body, []byte("x"), ttl); !errors.Is(err, ErrIntakeLost) {
		t.Fatalf("finishing a missing record: %v, want ErrIntakeLost", err)
	}
	if _, _, err := s.BeginIntake(ctx, "c1", "k", body, now, 0, ttl); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero lease: %v", err)
	}
}
