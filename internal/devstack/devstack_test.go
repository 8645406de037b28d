package devstack

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A key with a TTL expires on the embedded Redis as on a real one.
func TestEmbeddedRedisExpires(t *testing.T) {
	st, err := Start(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rdb := redis.NewClient(&redis.Options{Addr: st.RedisAddr()})
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if n, _ := rdb.Exists(ctx, "k").Result(); n == 0 {
			return
		}
	}
	t.Fatal("a key with a 1 s TTL still exists after 5 s")
}
