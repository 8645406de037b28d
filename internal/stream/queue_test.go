package stream

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

func msgItem(off int64) item { return item{m: kafka.Message{Offset: off}} }

// Items come out in the order they were put, across several takes.
func TestQueueOrder(t *testing.T) {
	q := newQueue(100)
	in := &inbox{q: q}
	next := int64(0)
	for round := 0; round < 3; round++ {
		for i := 0; i < 10; i++ {
			if !q.put(t.Context(), msgItem(int64(10*round+i))) {
				t.Fatal("put refused")
			}
		}
		for i := 0; i < 10; i++ {
			it, st := in.recv(t.Context(), nil, nil)
			if st != recvItem || it.m.Offset != next {
				t.Fatalf("got offset %d (status %d), want %d", it.m.Offset, st, next)
			}
			next++
		}
	}
}

// A full queue holds its producer back until the loop takes the items; a
// waiting producer gives up when its context ends.
func TestQueueBackpressure(t *testing.T) {
	q := newQueue(2)
	q.put(t.Context(), msgItem(0))
	q.put(t.Context(), msgItem(1))
	put := make(chan bool)
	go func() { put <- q.put(context.Background(), msgItem(2)) }()
	select {
	case <-put:
		t.Fatal("put into a full queue did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	if got := q.take(nil); len(got) != 2 {
		t.Fatalf("took %d items, want 2", len(got))
	}
	if !<-put {
		t.Fatal("put refused after the queue was emptied")
	}
	q.put(t.Context(), msgItem(3)) // full again: 2 and 3
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if q.put(ctx, msgItem(4)) {
		t.Fatal("put into a full queue succeeded although its context ended")
	}
	if got := q.take(nil); len(got) != 2 || got[0].m.Offset != 2 || got[1].m.Offset != 3 {
		t.Fatalf("took %v, want offsets 2 and 3 only", got)
	}
}

// recv waits for an item; it ends on its timeout, on ctx, and on a closed
// queue only once the queue is drained.
func TestInboxRecv(t *testing.T) {
	q := newQueue(10)
	in := &inbox{q: q}
	if _, st := in.recv(t.Context(), time.After(10*time.Millisecond), nil); st != recvTimeout {
		t.Fatalf("status %d on an empty queue, want the timeout", st)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		q.put(context.Background(), msgItem(7))
	}()
	if it, st := in.recv(t.Context(), nil, nil); st != recvItem || it.m.Offset != 7 {
		t.Fatalf("got offset %d (status %d), want 7: recv must wait for a later put", it.m.Offset, st)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, st := in.recv(ctx, nil, nil); st != recvStopped {
		t.Fatalf("status %d with a cancelled context, want stopped", st)
	}
	q.put(t.Context(), msgItem(8))
	q.close()
	if it, st := in.recv(t.Context(), nil, nil); st != recvItem || it.m.Offset != 8 {
		t.Fatalf("got offset %d (status %d) from a closed queue with an item left, want 8", it.m.Offset, st)
	}
	if _, st := in.recv(t.Context(), nil, nil); st != recvClosed {
		t.Fatalf("status %d from a closed, drained queue, want closed", st)
	}
	if q.put(t.Context(), msgItem(9)) {
		t.Fatal("put into a closed queue succeeded")
	}
}
