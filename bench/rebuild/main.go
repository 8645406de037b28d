// Command rebuild times the rebuild of Redis after a FLUSHALL, at KuaiRec
// scale by default (7,176 users, 10,728 videos, dim 64), on a redis-server of
// its own (it flushes it) and the real local Kafka. It publishes two model
// versions (current and previous, as the ingestor leaves them) with
// everything the ingestor publishes, writes them to a fresh model log topic,
// then for --runs rounds FLUSHALLs Redis and times:
//
//  1. restarted: a new restorer (a restarted `ingestor restore --follow`)
//     reads the whole model log and writes Redis back;
//  2. following: a running restorer (the log already in memory) restores,
//     while the updater's share runs beside it: every user's online record
//     rewritten through PutUsersIfNewer in batches of 1,000, as
//     Updater.Rebuild does (the worst case: every user has an online
//     embedding);
//
// each as "model back" (the version pointers set: the API can load the
// model) and "all back" (every version key and every user record back).
//
//	flock /tmp/streamrec-bench.lock go run ./bench/rebuild --brokers 127.0.0.1:19092
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/modellog"
)

func main() { config.Main("rebuild-bench", run) }

type options struct {
	brokers                  string
	users, items, dim, feats int
	towerKiB, runs           int
}

func run(ctx context.Context, args []string) error {
	o := options{}
	fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
	fs.StringVar(&o.brokers, "brokers", "127.0.0.1:19092", "Kafka brokers")
	fs.IntVar(&o.users, "users", 7176, "users (KuaiRec: 7,176)")
	fs.IntVar(&o.items, "items", 10728, "videos (KuaiRec: 10,728)")
	fs.IntVar(&o.dim, "dim", 64, "embedding dimension")
	fs.IntVar(&o.feats, "user-feature-dim", 32, "dimension of the users' model input features")
	fs.IntVar(&o.towerKiB, "tower-kib", 256, "size of the tower-weights blob in KiB")
	fs.IntVar(&o.runs, "runs", 5, "flushes per case (the median is reported)")
	if err := config.Parse(fs, args, nil); err != nil {
		return &config.UsageError{Err: err}
	}
	if o.users < 1 || o.items < 1 || o.dim < 2 || o.feats < 1 || o.runs < 1 || o.towerKiB < 1 {
		return config.Usagef("--users, --items, --user-feature-dim, --runs, --tower-kib must be >= 1 and --dim >= 2")
	}
	addr, stop, err := startRedis()
	if err != nil {
		return err
	}
	defer stop()
	rdb := redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: time.Minute, WriteTimeout: time.Minute})
	defer rdb.Close()
	cfg := cache.DefaultConfig()
	cfg.Namespace = fmt.Sprintf("bench-rebuild-%08x", rand.Uint32())
	store, err := cache.NewStore(rdb, cfg)
	if err != nil {
		return err
	}
	t0 := time.Now()
	online := map[string][]cache.UserRecord{}
	for i, v := range []string{"prev", "cur"} {
		if online[v], err = publishVersion(ctx, store, v, o, uint64(i+1)); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "published 2 versions of %d users x %d videos x dim %d in %v\n", o.users, o.items, o.dim, time.Since(t0).Round(time.Millisecond))
	topic := cfg.Namespace + ".models"
	lg, err := modellog.New(strings.Split(o.brokers, ","), topic)
	if err != nil {
		return err
	}
	defer lg.Close()
	if err := lg.Ensure(ctx); err != nil {
		return err
	}
	defer func() { // the bench's topic is its own: delete it
		c := &kafka.Client{Addr: kafka.TCP(strings.Split(o.brokers, ",")...), Timeout: 10 * time.Second}
		_, _ = c.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	}()
	follower := &modellog.Restorer{Store: store, Log: lg}
	t0 = time.Now()
	if err := follower.Backup(ctx, 0); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote both versions to %s in %v\n", topic, time.Since(t0).Round(time.Millisecond))
	keys, err := rdb.DBSize(ctx).Result()
	if err != nil {
		return err
	}

	type sample struct{ model, all time.Duration }
	var restarted, following []sample
	var logBytes int64
	for run := range o.runs {
		// 1. A restarted restorer: reads the whole log.
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			return err
		}
		r := &modellog.Restorer{Store: store, Log: lg}
		t := time.Now()
		rep, err := r.Restore(ctx)
		if err != nil {
			return err
		}
		all := time.Since(t)
		if err := check(ctx, rdb, keys); err != nil {
			return fmt.Errorf("restarted, run %d: %w", run, err)
		}
		restarted = append(restarted, sample{rep.ModelAt, all})
		logBytes = r.LogBytes()

		// 2. The following restorer beside the updater's rebuild of its users.
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			return err
		}
		t = time.Now()
		var wg sync.WaitGroup
		var uerr error
		var users time.Duration
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs := online["cur"]
			for i := 0; i < len(recs) && uerr == nil; i += 1000 {
				_, uerr = store.PutUsersIfNewer(ctx, "cur", recs[i:min(i+1000, len(recs))])
			}
			users = time.Since(t)
		}()
		rep, err = follower.Restore(ctx)
		wg.Wait()
		all = time.Since(t)
		if err != nil || uerr != nil {
			return fmt.Errorf("following, run %d: %v %v", run, err, uerr)
		}
		if err := check(ctx, rdb, keys); err != nil {
			return fmt.Errorf("following, run %d: %w", run, err)
		}
		following = append(following, sample{rep.ModelAt, all})
		fmt.Fprintf(os.Stderr, "run %d: restarted model %v all %v; following model %v all %v (updater's users %v)\n", run,
			restarted[run].model.Round(time.Millisecond), restarted[run].all.Round(time.Millisecond),
			rep.ModelAt.Round(time.Millisecond), all.Round(time.Millisecond), users.Round(time.Millisecond))
	}
	med := func(s []sample, f func(sample) time.Duration) time.Duration {
		ds := make([]time.Duration, len(s))
		for i := range s {
			ds[i] = f(s[i])
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	model := func(s sample) time.Duration { return s.model }
	all := func(s sample) time.Duration { return s.all }
	fmt.Printf("rebuild after FLUSHALL: %d users x %d videos x dim %d, 2 versions, %d Redis keys, model log %.1f MB; median of %d\n",
		o.users, o.items, o.dim, keys, float64(logBytes)/1e6, o.runs)
	fmt.Printf("  restarted restorer (reads the log): model back %v, all back %v\n",
		med(restarted, model).Round(time.Millisecond), med(restarted, all).Round(time.Millisecond))
	fmt.Printf("  following restorer + updater's users: model back %v, all back %v\n",
		med(following, model).Round(time.Millisecond), med(following, all).Round(time.Millisecond))
	return nil
}

// check verifies that Redis holds its keys again (the bit-exact check is
// the integration test's, TestIntegrationFlushAllRebuild).
func check(ctx context.Context, rdb *redis.Client, keys int64) error {
	n, err := rdb.DBSize(ctx).Result()
	if err != nil {
		return err
	}
	if n < keys {
		return fmt.Errorf("%d keys back, want %d", n, keys)
	}
	return nil
}

// publishVersion publishes version v as the ingestor does (serving records,
// offline vectors, user features, popularity, candidate set, tower) and
// returns one online record per user (the offline one moved a little, at an
// input position), the updater's share of a rebuild.
func publishVersion(ctx context.Context, st *cache.Store, v string, o options, seed uint64) ([]cache.UserRecord, error) {
	r := rand.New(rand.NewPCG(seed, 7))
	items := cache.Items{IDs: make([]uint32, o.items), Vectors: make([]float32, o.items*o.dim)}
	for i := range items.IDs {
		items.IDs[i] = uint32(i)
	}
	for i := range items.Vectors {
		items.Vectors[i] = float32(r.NormFloat64() * 0.1)
	}
	now := time.Now().UnixMilli()
	off := cache.OfflineUsers{Dim: o.dim, IDs: make([]uint32, o.users), Biases: make([]float32, o.users), Vectors: make([]float32, o.users*o.dim)}
	for i := range off.Vectors {
		off.Vectors[i] = float32(r.NormFloat64() * 0.1)
	}
	uf := cache.UserFeatures{Dim: o.feats, IDs: off.IDs, Feats: make([]float32, o.users*o.feats)}
	for i := range uf.Feats {
		uf.Feats[i] = float32(r.NormFloat64())
	}
	var onl []cache.UserRecord
	for lo := 0; lo < o.users; lo += 2000 {
		var recs []cache.UserRecord
		for u := lo; u < min(lo+2000, o.users); u++ {
			off.IDs[u] = uint32(u)
			vec := off.Vectors[u*o.dim : (u+1)*o.dim]
			recs = append(recs, cache.UserRecord{UserID: uint32(u), Embedding: vec, UpdatedAtMs: now})
			moved := slices.Clone(vec)
			moved[0] += 0.01
			onl = append(onl, cache.UserRecord{UserID: uint32(u), Embedding: moved, UpdatedAtMs: now + 1, InputPartition: int32(u % 8), InputNext: 1})
		}
		if err := st.PutUsers(ctx, v, recs); err != nil {
			return nil, err
		}
	}
	pop := cache.Popularity{Label: "watch_ratio>=0.8"}
	for i := 0; i < o.items; i += 2 {
		pop.IDs, pop.Counts = append(pop.IDs, uint32(i)), append(pop.Counts, uint32(r.IntN(1000)+1))
	}
	tower := make([]byte, o.towerKiB<<10)
	for i := range tower {
		tower[i] = byte(r.Uint32())
	}
	for _, err := range []error{st.PutOfflineUsers(ctx, v, off), st.PutUserFeatures(ctx, v, uf), st.PutPopularity(ctx, v, pop)} {
		if err != nil {
			return nil, err
		}
	}
	_, err := st.Publish(ctx, cache.Model{Version: v, Dim: o.dim, CreatedAtMs: now, Items: items, TowerWeights: tower,
		Calibration:   cache.Calibration{GlobalMean: 0.9, Scale: 1},
		CandidateSets: map[string][]uint32{"small_matrix": items.IDs[:min(3327, o.items)]}})
	return onl, err
}

// startRedis starts a redis-server of its own on a free port.
func startRedis() (addr string, stop func(), err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, fmt.Errorf("redis-server not on PATH: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr = l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	for i := 0; rdb.Ping(context.Background()).Err() != nil; i++ {
		if i > 100 {
			stop()
			return "", nil, fmt.Errorf("redis-server on %s did not start", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr, stop, nil
}
