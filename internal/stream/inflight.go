package stream

import (
	"context"
	"fmt"
	"sync"
)

// maxInFlight is how many handled batches may wait for their side effects
// at once. The consumer loop goes on fetching and handling while they
// become durable, and blocks only when this many wait.
const maxInFlight = 4

// pending is a handled batch whose commit waits for its side effects.
type pending struct {
	wait func() error // nil: already durable
	asg  *assignment
	last map[int]int64
	n    int

	done chan struct{} // closed once wait returned; err is its result
	err  error
}

// start calls wait in the background.
func (p *pending) start() {
	p.done = make(chan struct{})
	if p.wait == nil {
		close(p.done)
		return
	}
	go func() {
		defer close(p.done)
		p.err = p.wait()
	}()
}

func (p *pending) durable() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// pipeline is the batches in flight, oldest first, and the committer that
// commits them in that order once durable: a batch is committed only after
// every batch before it was durable and committed (a later commit on a
// partition covers every earlier offset of it). Commits run on their own
// goroutine, so that their round trip is not in front of the next batch.
// Used by the consumer loop alone.
type pipeline struct {
	c        *Consumer
	ctx      context.Context
	inflight []*pending
	commits  chan *pending
	wg       sync.WaitGroup // commits sent and not yet done
	stopped  chan struct{}
}

func newPipeline(ctx context.Context, c *Consumer) *pipeline {
	pl := &pipeline{c: c, ctx: ctx, commits: make(chan *pending, maxInFlight), stopped: make(chan struct{})}
	go func() {
		defer close(pl.stopped)
		for p := range pl.commits {
			c.commit(ctx, p)
			pl.wg.Done()
		}
	}()
	return pl
}

// add puts a handled batch in flight.
func (pl *pipeline) add(p *pending) {
	p.start()
	pl.inflight = append(pl.inflight, p)
}

// full reports whether the loop must wait before handling another batch.
func (pl *pipeline) full() bool { return len(pl.inflight) >= maxInFlight }

// head is closed when the oldest batch in flight is durable (nil: none).
func (pl *pipeline) head() <-chan struct{} {
	if len(pl.inflight) == 0 {
		return nil
	}
	return pl.inflight[0].done
}

// settle hands every batch at the head that is durable to the committer,
// waiting for the head first when block is set. An error (a batch that did
// not become durable) ends it: nothing from that batch on is committed.
func (pl *pipeline) settle(block bool) error {
	for len(pl.inflight) > 0 {
		p := pl.inflight[0]
		if block {
			<-p.done
		} else if !p.durable() {
			return nil
		}
		if p.err != nil {
			return fmt.Errorf("batch of %d records not durable: %w", p.n, p.err)
		}
		pl.inflight = pl.inflight[1:]
		pl.wg.Add(1)
		pl.commits <- p
	}
	return nil
}

// drain waits for every batch in flight and commits them, in order, then
// waits for the commits (before a new assignment, and at the end).
func (pl *pipeline) drain() error {
	err := pl.settle(true)
	pl.wg.Wait()
	return err
}

// close drains the pipeline and stops the committer.
func (pl *pipeline) close() error {
	err := pl.drain()
	close(pl.commits)
	<-pl.stopped
	return err
}
