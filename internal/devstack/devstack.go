// Package devstack is the embedded default for demos: one process that serves a
// Kafka-protocol broker (franz-go's kfake) and a Redis-protocol server (miniredis)
// on loopback ports, so the real streamrec binaries run, over the same wire
// protocols as production, with nothing installed but Go. It is never used by the
// integration suite, which runs against real Apache Kafka and Redis.
package devstack

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Config chooses the loopback ports; 0 picks a free port.
type Config struct {
	KafkaPort int
	RedisPort int
}

// Stack is a running embedded broker and Redis server.
type Stack struct {
	kafka *kfake.Cluster
	redis *miniredis.Miniredis
	stop  chan struct{}
	done  chan struct{}
}

// Start starts both servers on 127.0.0.1.
func Start(cfg Config) (*Stack, error) {
	kport := cfg.KafkaPort
	if kport == 0 {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		kport = p
	}
	kc, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(kport),
		kfake.ClusterID("streamrec-dev"),
		kfake.GroupMinSessionTimeout(time.Second),
	)
	if err != nil {
		return nil, fmt.Errorf("starting the embedded Kafka broker on port %d: %w", kport, err)
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:" + strconv.Itoa(cfg.RedisPort)); err != nil {
		kc.Close()
		return nil, fmt.Errorf("starting the embedded Redis on port %d: %w", cfg.RedisPort, err)
	}
	st := &Stack{kafka: kc, redis: mr, stop: make(chan struct{}), done: make(chan struct{})}
	go st.expire()
	return st, nil
}

// expire advances miniredis's clock with the wall clock every second, so
// that keys with a TTL expire as they would on a real Redis (miniredis only
// expires keys when its clock is moved) and a long-running demo does not
// grow without bound.
func (s *Stack) expire() {
	defer close(s.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			s.redis.FastForward(now.Sub(last))
			last = now
		}
	}
}

// KafkaAddr returns the broker's host:port.
func (s *Stack) KafkaAddr() string { return s.kafka.ListenAddrs()[0] }

// RedisAddr returns the Redis server's host:port.
func (s *Stack) RedisAddr() string { return s.redis.Addr() }

// Close stops both servers.
func (s *Stack) Close() {
	close(s.stop)
	<-s.done
	s.redis.Close()
	s.kafka.Close()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("finding a free port: not a TCP address")
	}
	return addr.Port, nil
}
