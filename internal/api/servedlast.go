package api

import (
	"context"
	"time"

	"github.com/streamrec/streamrec/internal/cache"
)

// The last-list record without --eval (cache.Store.PutServed: each user's
// last served list, 24 h TTL) is written off the request path, as the
// served-list log of online.go is: a request queues the list and never
// waits; RunServedLog takes what is queued, up to lastBatch lists at a
// time, and writes them in one pipelined round trip when the store offers
// it (ServedBatchStore), else one PutServed each. A full queue drops the
// list and counts it (streamrec_api_served_lists_stored_total{result=
// "dropped"}); so does a server whose RunServedLog is not running, once
// Config.ServedQueue lists wait.

// ServedBatchStore is a UserStore that writes many last-list records in one
// round trip; *cache.Store implements it. It returns how many were not
// stored and the first error.
type ServedBatchStore interface {
	PutServedBatch(ctx context.Context, entries []cache.UserServed) (int, error)
}

// lastBatch bounds the lists of one write.
const lastBatch = 128

// lastWriteTimeout bounds one write of the last-list records.
const lastWriteTimeout = time.Second

// offerLast queues the last-list record of uid; it never blocks.
func (s *Server) offerLast(uid uint32, l cache.ServedList) {
	select {
	case s.last <- cache.UserServed{UserID: uid, List: l}:
	default:
		s.metrics.servedStore.WithLabelValues("dropped").Inc()
	}
}

// runLastServed is RunServedLog without Online.
func (s *Server) runLastServed(ctx context.Context, drain time.Duration) error {
	batch := make([]cache.UserServed, 0, lastBatch)
	bs, _ := s.deps.Store.(ServedBatchStore)
	write := func(wctx context.Context) {
		wctx, cancel := context.WithTimeout(wctx, lastWriteTimeout)
		defer cancel()
		failed := 0
		var err error
		if bs != nil {
			failed, err = bs.PutServedBatch(wctx, batch)
		} else {
			for i := range batch {
				if e := s.deps.Store.PutServed(wctx, batch[i].UserID, batch[i].List); e != nil {
					failed++
					err = e
				}
			}
		}
		if err != nil {
			s.log.Debug("storing served lists", "lists", len(batch), "failed", failed, "err", err)
		}
		if failed > 0 {
			s.metrics.servedStore.WithLabelValues("error").Add(float64(failed))
		}
		if failed < len(batch) {
			s.metrics.servedStore.WithLabelValues("ok").Add(float64(len(batch) - failed))
		}
		clear(batch) // drop the references to the lists' slices
		batch = batch[:0]
	}
	// fill adds what is queued now, up to lastBatch lists.
	fill := func() {
		for len(batch) < lastBatch {
			select {
			case e := <-s.last:
				batch = append(batch, e)
			default:
				return
			}
		}
	}
	// Writes are bounded by lastWriteTimeout, not by ctx: a list dequeued
	// as ctx ends is still written.
	wctx := context.WithoutCancel(ctx)
	for {
		select {
		case e := <-s.last:
			batch = append(batch, e)
			fill()
			write(wctx)
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), drain)
			defer cancel()
			for {
				fill()
				if len(batch) == 0 {
					return nil
				}
				write(dctx)
			}
		}
	}
}
