package stream

import (
	"context"
	"sync"
	"time"
)

// queue hands items from a source's producers (the partition pumps, the group
// loop) to the consumer loop. Producers append one item at a time under a
// mutex and wake the loop with a non-blocking signal; the loop takes every
// item there in one swap of slices. Under a backlog that is one lock per
// message and one wake-up per batch, where a channel cost the pump and the
// loop a select each per message (about a sixth of the updater's CPU in a
// backlog drain). Items of one producer keep their order.
type queue struct {
	mu      sync.Mutex
	items   []item
	limit   int           // put waits while this many items are queued
	space   chan struct{} // closed (and replaced) by take when producers wait
	waiting int           // producers waiting for space
	ready   chan struct{} // capacity 1: signalled after each put
	done    chan struct{} // closed by close: no more items will come
	closed  bool
}

func newQueue(limit int) *queue {
	return &queue{limit: max(limit, 1), items: make([]item, 0, max(limit, 1)),
		space: make(chan struct{}), ready: make(chan struct{}, 1), done: make(chan struct{})}
}

// put appends it, waiting while the queue is full. It returns false, having
// queued nothing, when ctx ends first or the queue is closed.
func (q *queue) put(ctx context.Context, it item) bool {
	q.mu.Lock()
	for len(q.items) >= q.limit && !q.closed {
		ch := q.space
		q.waiting++
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		q.mu.Lock()
		q.waiting--
		if ctx.Err() != nil {
			q.mu.Unlock()
			return false
		}
	}
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default: // a signal is pending already
	}
	return true
}

// take returns every queued item, in order, and keeps spare (emptied) as the
// queue's next buffer: the caller hands back the slice it took last time once
// it is done with it. It never blocks; wait on ready (and done) for more.
func (q *queue) take(spare []item) []item {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.items
	clear(spare) // drop the old messages' references
	q.items = spare[:0]
	if q.waiting > 0 && len(out) > 0 {
		close(q.space)
		q.space = make(chan struct{})
	}
	return out
}

// close ends the queue: producers stop, and the loop sees done once it has
// taken what is left.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.done)
		close(q.space)
		q.space = make(chan struct{})
	}
}

// recvStatus says how inbox.recv ended.
type recvStatus int

const (
	recvItem    recvStatus = iota // an item
	recvTimeout                   // the timeout fired first
	recvStopped                   // ctx ended first
	recvClosed                    // the queue is closed and empty
	recvWake                      // the wake channel was closed first
)

// inbox is the consumer loop's end of a queue: it takes the queue's items in
// bulk and hands them out one by one.
type inbox struct {
	q   *queue
	buf []item
	i   int
}

// recv returns the next item, waiting until there is one, timeout fires or
// wake is closed (nil channels never are), ctx ends, or the queue is closed
// and drained.
func (in *inbox) recv(ctx context.Context, timeout <-chan time.Time, wake <-chan struct{}) (item, recvStatus) {
	for {
		if in.i < len(in.buf) {
			it := in.buf[in.i]
			in.i++
			return it, recvItem
		}
		in.buf, in.i = in.q.take(in.buf), 0
		if len(in.buf) > 0 {
			continue
		}
		select {
		case <-in.q.ready:
		case <-in.q.done:
			if in.buf, in.i = in.q.take(in.buf), 0; len(in.buf) > 0 {
				continue
			}
			return item{}, recvClosed
		case <-timeout:
			return item{}, recvTimeout
		case <-wake:
			return item{}, recvWake
		case <-ctx.Done():
			return item{}, recvStopped
		}
	}
}
