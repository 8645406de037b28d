package cache

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ModelSubscription delivers ModelUpdate notices. Pub/sub is at most once:
// notices sent while the connection is down are lost (go-redis reconnects
// and resubscribes), so a reader must also poll Versions; ItemCache.Follow
// does both.
//
// Updates may be received from any goroutine; Close is safe to call more
// than once and from any goroutine.
type ModelSubscription struct {
	ps        *redis.PubSub
	c         chan ModelUpdate
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// SubscribeModelUpdates subscribes to "<ns>:model-updates". It returns once
// the subscription is confirmed, so a notice published after it returns is
// delivered. The caller must Close it. Undecodable notices are skipped.
func (s *Store) SubscribeModelUpdates(ctx context.Context) (*ModelSubscription, error) {
	ps := s.rdb.Subscribe(ctx, s.k.modelUpdates())
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("subscribing to %s: %w", s.k.modelUpdates(), err)
	}
	sub := &ModelSubscription{ps: ps, c: make(chan ModelUpdate, 16), done: make(chan struct{})}
	go sub.run()
	return sub, nil
}

func (m *ModelSubscription) run() {
	defer close(m.c)
	in := m.ps.Channel()
	for {
		select {
		case <-m.done:
			return
		case msg, ok := <-in:
			if !ok {
				return
			}
			var u ModelUpdate
			if err := jsonUnmarshalString(msg.Payload, &u); err != nil || u.Current == "" {
				continue
			}
			select {
			case m.c <- u:
			case <-m.done:
				return
			}
		}
	}
}

// Updates returns the channel of notices; it is closed after Close.
func (m *ModelSubscription) Updates() <-chan ModelUpdate { return m.c }

// Close unsubscribes and releases the connection; Updates is then closed.
func (m *ModelSubscription) Close() error {
	m.closeOnce.Do(func() {
		close(m.done)
		if err := m.ps.Close(); err != nil {
			m.closeErr = fmt.Errorf("closing model update subscription: %w", err)
		}
	})
	return m.closeErr
}
