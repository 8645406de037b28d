package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/segmentio/kafka-go"
)

// fakeWriter records what each partition received, and fails a chosen call.
type fakeWriter struct {
	mu       sync.Mutex
	got      map[int][]int64 // partition -> positions, in write order
	calls    map[int]int
	failPart int
	failCall int // 1-based call on failPart that fails; 0: never
}

func (f *fakeWriter) write(part int, msgs []kafka.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[part]++
	if f.failCall > 0 && part == f.failPart && f.calls[part] == f.failCall {
		return errors.New("broker gone")
	}
	for _, m := range msgs {
		h, _, err := headFromMessage(m)
		if err != nil {
			return err
		}
		f.got[part] = append(f.got[part], h.Pos)
	}
	return nil
}

func randomPlan(n int) *plan {
	rng := rand.New(rand.NewPCG(5, 6))
	var rs [][2]int64
	for i := 0; i < n; i++ {
		rs = append(rs, [2]int64{int64(rng.IntN(40)), 1_600_000_000_000 + int64(rng.IntN(n/3))})
	}
	return newPlan(fabricated(rs))
}

func replayFake(t *testing.T, p *plan, fw *fakeWriter, heads []head, limit int64, parts, batch int) (*summary, error) {
	t.Helper()
	pub := newPublisher(fw, "run", parts, batch)
	r := &replayer{plan: p, pt: newPartitioner(parts), heads: heads, limit: limit, pacer: newPacer(0, 0, 0)}
	sum := &summary{}
	err := r.run(context.Background(), pub, 0, p.Len(), sum)
	cerr := pub.close()
	sum.Published = pub.published.Load()
	if err == nil {
		err = cerr
	}
	return sum, err
}

// TestPublisherOrderAndResume runs the planner and the per-partition writers on
// a fake broker: --limit, then resumed runs from the heads the fake holds,
// publish every position once, each partition in position order.
func TestPublisherOrderAndResume(t *testing.T) {
	p := randomPlan(3000)
	const parts, batch = 4, 7
	fw := &fakeWriter{got: map[int][]int64{}, calls: map[int]int{}}
	for _, limit := range []int64{1000, 1, 999, 0} {
		heads := make([]head, parts)
		for q := range heads {
			heads[q] = noHead
			if g := fw.got[q]; len(g) > 0 {
				heads[q] = head{Pos: g[len(g)-1], Run: "run"}
			}
		}
		sum, err := replayFake(t, p, fw, heads, limit, parts, batch)
		if err != nil {
			t.Fatal(err)
		}
		if limit > 0 && sum.Published != limit {
			t.Fatalf("limit %d: published %d", limit, sum.Published)
		}
	}
	pt := newPartitioner(parts)
	total := 0
	for q, g := range fw.got {
		for i, pos := range g {
			if i > 0 && pos <= g[i-1] {
				t.Fatalf("partition %d: position %d after %d", q, pos, g[i-1])
			}
			if pt.of(p.userAt(int(pos))) != q {
				t.Fatalf("position %d on partition %d", pos, q)
			}
		}
		total += len(g)
	}
	if total != p.Len() {
		t.Fatalf("%d positions published, want %d", total, p.Len())
	}
}

// TestPublisherStopsAtFirstFailure: after a failed write nothing later is written
// on that partition (no gap for the resume rule), and the run returns the error.
func TestPublisherStopsAtFirstFailure(t *testing.T) {
	p := randomPlan(3000)
	const parts, batch = 4, 7
	fw := &fakeWriter{got: map[int][]int64{}, calls: map[int]int{}, failPart: 2, failCall: 5}
	_, err := replayFake(t, p, fw, nil, 0, parts, batch)
	if err == nil {
		t.Fatal("no error")
	}
	if n := len(fw.got[2]); n != 4*batch {
		t.Fatalf("partition 2 holds %d positions, want the %d before the failed call", n, 4*batch)
	}
	// What each partition holds is a prefix of its positions.
	pt := newPartitioner(parts)
	for q, g := range fw.got {
		j := 0
		for i := 0; i < p.Len() && j < len(g); i++ {
			if pt.of(p.userAt(i)) == q {
				if int64(i) != g[j] {
					t.Fatalf("partition %d: %d-th message is position %d, want %d (gap)", q, j, g[j], i)
				}
				j++
			}
		}
	}
}
