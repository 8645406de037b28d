package cache

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClientOptions are the Redis connection settings every binary takes as
// flags (RegisterClientFlags): the address and the three socket timeouts.
// The client is built with ContextTimeoutEnabled, so a call's context
// deadline also bounds its dial, write and read: a Redis that accepts and
// never answers holds a call no longer than its context allows (or the read
// timeout, whichever comes first), never the client's defaults.
type ClientOptions struct {
	// Addr is host:port. Default: 127.0.0.1:6379.
	Addr string
	// DialTimeout bounds a new connection. Default: 1s.
	DialTimeout time.Duration
	// ReadTimeout and WriteTimeout bound each socket read and write of a
	// command without a tighter context deadline. Default: 1s each.
	ReadTimeout, WriteTimeout time.Duration
}

// DefaultClientOptions returns the defaults documented on ClientOptions.
func DefaultClientOptions() ClientOptions {
	return ClientOptions{Addr: "127.0.0.1:6379", DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second}
}

// RegisterClientFlags registers --redis-addr, --redis-dial-timeout,
// --redis-read-timeout and --redis-write-timeout on fs, with o's values as
// the defaults.
func RegisterClientFlags(fs *flag.FlagSet, o *ClientOptions) {
	fs.StringVar(&o.Addr, "redis-addr", o.Addr, "Redis address host:port")
	fs.DurationVar(&o.DialTimeout, "redis-dial-timeout", o.DialTimeout, "bound on opening a Redis connection")
	fs.DurationVar(&o.ReadTimeout, "redis-read-timeout", o.ReadTimeout, "bound on each Redis socket read (a call's own deadline, when shorter, wins)")
	fs.DurationVar(&o.WriteTimeout, "redis-write-timeout", o.WriteTimeout, "bound on each Redis socket write (a call's own deadline, when shorter, wins)")
}

// Validate reports every invalid field.
func (o ClientOptions) Validate() error {
	var errs []error
	if o.Addr == "" {
		errs = append(errs, errors.New("redis address: empty"))
	}
	if o.DialTimeout <= 0 || o.ReadTimeout <= 0 || o.WriteTimeout <= 0 {
		errs = append(errs, fmt.Errorf("redis dial, read and write timeouts (%v, %v, %v): must be positive", o.DialTimeout, o.ReadTimeout, o.WriteTimeout))
	}
	return errors.Join(errs...)
}

// NewClient returns a go-redis client with o and ContextTimeoutEnabled. The
// caller closes it.
func (o ClientOptions) NewClient() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: o.Addr, DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout,
		WriteTimeout: o.WriteTimeout, ContextTimeoutEnabled: true})
}
