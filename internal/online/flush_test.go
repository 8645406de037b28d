package online

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/cache"
)

// gatedUsers is a fakeUsers whose PutUsersIfNewer calls wait for their gate
// (the first n calls), and which checks, at each call, that every user
// written already has a state in the changelog (Redis never holds the only
// copy of a state).
type gatedUsers struct {
	*fakeUsers
	log   *fakeLog
	gates []chan struct{}

	mu      sync.Mutex
	started int
	errs    []error
}

func (g *gatedUsers) PutUsersIfNewer(ctx context.Context, v string, recs []cache.UserRecord) (int, error) {
	g.mu.Lock()
	call := g.started
	g.started++
	g.mu.Unlock()
	g.log.mu.Lock()
	logged := map[uint32]bool{}
	for _, s := range g.log.writes {
		logged[s.UserID] = true
	}
	g.log.mu.Unlock()
	for _, r := range recs {
		if !logged[r.UserID] {
			g.mu.Lock()
			g.errs = append(g.errs, fmt.Errorf("call %d: user %d written to Redis before any state of it reached the changelog", call, r.UserID))
			g.mu.Unlock()
		}
	}
	if call < len(g.gates) {
		<-g.gates[call]
	}
	return g.fakeUsers.PutUsersIfNewer(ctx, v, recs)
}

func (g *gatedUsers) calls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.started
}

func (l *fakeLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.writes)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Two flushes overlap: while the first one's Redis write hangs, the next
// flush writes its changelog and starts its own Redis write; neither is done
// before its Redis write is, and the newer records win in Redis whatever
// the order the writes land in. A user's first state reaches the changelog
// before Redis.
func TestFlusherOverlapsFlushes(t *testing.T) {
	_, users, m := fixture(t)
	log := &fakeLog{}
	open, gate0, gate1 := make(chan struct{}), make(chan struct{}), make(chan struct{})
	close(open) // the first flush is not held
	g := &gatedUsers{fakeUsers: users, log: log, gates: []chan struct{}{open, gate0, gate1}}
	u := newTestUpdater(t, m, g, log)
	var release0, release1 sync.Once
	t.Cleanup(func() { // before u.Close: a failed test must not leave a write hanging
		release0.Do(func() { close(gate0) })
		release1.Do(func() { close(gate1) })
	})
	evs := events(300, 7)
	distinct := func(from, to int) int {
		seen := map[uint32]bool{}
		for _, e := range evs[from:to] {
			seen[e.Event.UserID] = true
		}
		return len(seen)
	}
	ctx := t.Context()
	if err := u.Handle(ctx, evs[:100]); err != nil {
		t.Fatal(err)
	}
	logged := log.count()
	waitA, err := u.HandleAsync(ctx, evs[100:200])
	if err != nil || waitA == nil {
		t.Fatalf("HandleAsync: wait %v, %v", waitA != nil, err)
	}
	logged += distinct(100, 200)
	eventually(t, "the second flush's changelog and Redis writes", func() bool { return log.count() == logged && g.calls() == 2 })
	waitB, err := u.HandleAsync(ctx, evs[200:])
	if err != nil || waitB == nil {
		t.Fatalf("HandleAsync: wait %v, %v", waitB != nil, err)
	}
	// The third flush writes its changelog and starts its Redis write while
	// the second's Redis write still hangs.
	logged += distinct(200, 300)
	eventually(t, "the third flush's changelog and Redis writes", func() bool { return log.count() == logged && g.calls() == 3 })
	doneA, doneB := make(chan error, 1), make(chan error, 1)
	go func() { doneA <- waitA() }()
	go func() { doneB <- waitB() }()
	select {
	case err := <-doneA:
		t.Fatalf("the second flush was done (%v) before its Redis write", err)
	case err := <-doneB:
		t.Fatalf("the third flush was done (%v) before its Redis write", err)
	case <-time.After(20 * time.Millisecond):
	}
	// The later flush's Redis write lands first; the earlier one's then
	// finds newer records for the users both hold, and skips them.
	release1.Do(func() { close(gate1) })
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
	release0.Do(func() { close(gate0) })
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	for _, err := range g.errs {
		t.Error(err)
	}
	g.mu.Unlock()
	users.mu.Lock()
	defer users.mu.Unlock()
	for uid := uint32(0); uid < 12; uid++ {
		s, ok := u.State(uid)
		r, found := users.recs[ukey("v1", uid)]
		if !ok || !found || r.InputNext != s.Pos.Offset+1 {
			t.Errorf("user %d: Redis at next offset %d (found %v), state at %d", uid, r.InputNext, found, s.Pos.Offset)
		}
	}
}
