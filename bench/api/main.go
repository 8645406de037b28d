// Command api is the API's load harness, on the real local Redis. It publishes
// a synthetic full-size model (7,176 users x 10,728 videos, dim 64) under a
// fresh namespace, builds and starts the real API binary with
// --bench-reference, and measures, in the same run and against the same
// process:
//
//   - the recommendations endpoint, GET /v1/users/{id}/recommendations (k 25);
//   - the reference endpoint, GET /v1/bench/reference/users/{id}: the same
//     request parsing and Redis GET of the user's record, a fixed list of 25.
//
// Open loop: at each offered rate, requests are sent at Poisson arrival times
// (exponential gaps, drawn in advance of sending, for random users of the
// model) whatever the server does, by a pool of connections; a request's
// latency runs from its intended send time, so a stall of the server or of
// the generator is counted, not hidden (no coordinated omission). Then
// saturation: a closed loop of --sat-conns connections as fast as they go.
// Each figure is the median of --runs runs; API and reference alternate
// within a run. It prints throughput and p50/p99/p99.9 at each offered rate,
// the API process's CPU time per request (from /proc/PID/stat: a figure the
// other processes on the machine disturb less than throughput), the
// saturation throughputs and their ratio, the load average, and the API's
// peak RSS (VmHWM).
//
//	go run ./bench/api --redis-addr 127.0.0.1:16379
//
// Every request carries X-Client-Id: bench.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/bench/benchkit"
	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/stream"
)

const (
	users = 7176
	items = 10728
	dim   = 64
)

func main() { config.Main("bench-api", run) }

type opts struct {
	redisAddr, brokers string
	rates              string
	duration, warmup   time.Duration
	satDuration        time.Duration
	conns, satConns    int
	runs               int
	apiProcs           int
	only               string
	pprofAddr          string
	evalCompare        bool
	evalEvents         float64
	apiArgs, beforeBin string
	query              string
}

func run(ctx context.Context, args []string) error {
	var o opts
	fs := flag.NewFlagSet("bench-api", flag.ContinueOnError)
	fs.StringVar(&o.redisAddr, "redis-addr", "127.0.0.1:16379", "Redis")
	fs.StringVar(&o.brokers, "brokers", "127.0.0.1:19092", "Kafka brokers for the API's intake (not exercised; the API starts without them)")
	fs.StringVar(&o.rates, "rates", "1000,2000,5000,8000", "offered rates of the open loop, requests/s, comma-separated")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each open-loop point")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "open loop at the first rate before measuring, per endpoint")
	fs.DurationVar(&o.satDuration, "sat-duration", 5*time.Second, "length of each saturation run")
	fs.IntVar(&o.conns, "conns", 64, "connections of the open loop (requests queue in the generator when all are busy, and that wait counts)")
	fs.IntVar(&o.satConns, "sat-conns", 32, "connections of the closed-loop saturation run")
	fs.IntVar(&o.runs, "runs", 3, "runs; every figure printed is the median over them")
	fs.IntVar(&o.apiProcs, "api-gomaxprocs", 0, "GOMAXPROCS of the API process (0: Go's default, every core)")
	fs.StringVar(&o.only, "only", "", "measure only this endpoint: api or reference")
	fs.StringVar(&o.pprofAddr, "api-pprof-addr", "", "pass --pprof-addr to the API (profile it during the run)")
	fs.BoolVar(&o.evalCompare, "eval-compare", false, "also measure a second API process running the online evaluation (--eval) on a topic fed --eval-events interactions/s for the whole run: endpoint api+eval")
	fs.Float64Var(&o.evalEvents, "eval-events", 2000, "interactions per second produced to the evaluated topic with --eval-compare")
	fs.StringVar(&o.apiArgs, "api-args", "", "extra flags of the API built from this tree, space-separated (for example \"--rate-limit 1000000 --metrics-addr 127.0.0.1:16199\")")
	fs.StringVar(&o.beforeBin, "before-bin", "", "also measure this prebuilt API binary (an earlier commit) as endpoint \"before\", against the same model, in the same runs")
	fs.StringVar(&o.query, "query", "", "query string added to every recommendations request, of every API measured (for example exclude_watched=true)")
	config.Usage(fs, "bench-api: the API's latency and throughput against an in-process reference endpoint, on real Redis")
	if err := config.Parse(fs, args, nil); err != nil {
		return &config.UsageError{Err: err}
	}
	var rates []float64
	for _, f := range strings.Split(o.rates, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || r <= 0 {
			return config.Usagef("--rates: %q is not a positive number", f)
		}
		rates = append(rates, r)
	}
	if o.conns < 1 || o.satConns < 1 || o.runs < 1 || o.duration <= 0 || o.satDuration <= 0 {
		return config.Usagef("--conns, --sat-conns, --runs, --duration and --sat-duration must be positive")
	}

	dir, err := os.MkdirTemp("", "bench-api")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "api")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/api").CombinedOutput(); err != nil {
		return fmt.Errorf("building the api: %v\n%s", err, out)
	}
	rdb := redis.NewClient(&redis.Options{Addr: o.redisAddr})
	defer rdb.Close()
	ns := fmt.Sprintf("bench-api-%d", time.Now().UnixNano())
	defer cleanup(rdb, ns)
	scfg := cache.DefaultConfig()
	scfg.Namespace = ns
	store, err := cache.NewStore(rdb, scfg)
	if err != nil {
		return err
	}
	if err := benchkit.PublishSyntheticModel(ctx, store, users, items, dim); err != nil {
		return fmt.Errorf("publishing the model: %w", err)
	}
	fmt.Printf("model: %d users x %d videos, dim %d, namespace %s, Redis %s\n", users, items, dim, ns, o.redisAddr)

	api, err := startAPI(ctx, bin, o, ns, true, strings.Fields(o.apiArgs)...)
	if err != nil {
		return err
	}
	defer api.stop()
	var before *apiProc
	if o.beforeBin != "" {
		if before, err = startAPI(ctx, o.beforeBin, o, ns, false); err != nil {
			return fmt.Errorf("starting --before-bin: %w", err)
		}
		defer before.stop()
		fmt.Printf("before: pid %d on %s (%s)\n", before.cmd.Process.Pid, before.addr, o.beforeBin)
	}
	var evalAPI *apiProc
	if o.evalCompare {
		topic := "bench-api-eval-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		brokers := strings.Split(o.brokers, ",")
		if err := stream.EnsureTopics(ctx, brokers, stream.InteractionsTopic(topic, 4)); err != nil {
			return fmt.Errorf("--eval-compare needs Kafka at %s: %w", o.brokers, err)
		}
		evalAPI, err = startAPI(ctx, bin, o, ns, false, "--topic", topic, "--eval", "--eval-partitions", "all", "--eval-from-first")
		if err != nil {
			return err
		}
		defer evalAPI.stop()
		pctx, stopFeed := context.WithCancel(ctx)
		defer stopFeed()
		fed, err := feed(pctx, brokers, topic, o.evalEvents)
		if err != nil {
			return err
		}
		defer func() { fmt.Printf("interactions produced to the evaluated topic: %d\n", fed()) }()
		fmt.Printf("api+eval: pid %d on %s, evaluating topic %s fed %.0f interactions/s\n", evalAPI.cmd.Process.Pid, evalAPI.addr, topic, o.evalEvents)
	}
	fmt.Printf("api: pid %d on %s (GOMAXPROCS %s); generator: this process, %d cores shared\n",
		api.cmd.Process.Pid, api.addr, map[bool]string{true: "default", false: strconv.Itoa(o.apiProcs)}[o.apiProcs == 0], runtime.NumCPU())

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.conns + o.satConns, MaxConnsPerHost: 0,
		DisableCompression: true, IdleConnTimeout: time.Minute}, Timeout: 10 * time.Second}
	q := ""
	if o.query != "" {
		q = "?" + o.query
	}
	endpoints := []endpoint{
		{name: "api", pid: api.cmd.Process.Pid, path: func(uid uint32) string {
			return "http://" + api.addr + "/v1/users/" + strconv.FormatUint(uint64(uid), 10) + "/recommendations" + q
		}},
		{name: "reference", pid: api.cmd.Process.Pid, path: func(uid uint32) string {
			return "http://" + api.addr + "/v1/bench/reference/users/" + strconv.FormatUint(uint64(uid), 10)
		}},
	}
	if before != nil {
		endpoints = append(endpoints, endpoint{name: "before", pid: before.cmd.Process.Pid, path: func(uid uint32) string {
			return "http://" + before.addr + "/v1/users/" + strconv.FormatUint(uint64(uid), 10) + "/recommendations" + q
		}})
	}
	if evalAPI != nil {
		endpoints = append(endpoints, endpoint{name: "api+eval", pid: evalAPI.cmd.Process.Pid, path: func(uid uint32) string {
			return "http://" + evalAPI.addr + "/v1/users/" + strconv.FormatUint(uint64(uid), 10) + "/recommendations" + q
		}})
	}
	if o.only != "" {
		endpoints = slices.DeleteFunc(endpoints, func(e endpoint) bool { return e.name != o.only })
		if len(endpoints) == 0 {
			return config.Usagef("--only: want api, reference, before or api+eval")
		}
	}
	for _, ep := range endpoints { // warm up: connections, caches, the heap
		if _, err := openLoop(ctx, client, ep, rates[0], o.warmup, o.conns, 0); err != nil {
			return fmt.Errorf("warm-up of %s: %w", ep.name, err)
		}
	}

	type key struct {
		ep   string
		rate float64 // 0: saturation
	}
	res := map[key][]result{}
	var loads []string
	for run := range o.runs {
		for ri, rate := range rates {
			for _, ep := range endpoints {
				c0 := cpuTime(ep.pid)
				r, err := openLoop(ctx, client, ep, rate, o.duration, o.conns, uint64(run*100+ri))
				if err != nil {
					return err
				}
				r.cpuPerReq = perRequest(cpuTime(ep.pid)-c0, r)
				res[key{ep.name, rate}] = append(res[key{ep.name, rate}], r)
			}
		}
		for _, ep := range endpoints {
			c0 := cpuTime(ep.pid)
			r, err := closedLoop(ctx, client, ep, o.satConns, o.satDuration, uint64(run))
			if err != nil {
				return err
			}
			r.cpuPerReq = perRequest(cpuTime(ep.pid)-c0, r)
			res[key{ep.name, 0}] = append(res[key{ep.name, 0}], r)
		}
		loads = append(loads, benchkit.LoadAvg())
		fmt.Printf("run %d/%d done; load average %s\n", run+1, o.runs, loads[len(loads)-1])
	}

	fmt.Printf("\n== open loop (Poisson arrivals; latency from the intended send time), medians of %d runs of %v\n", o.runs, o.duration)
	fmt.Printf("%-10s %9s %11s %9s %9s %9s %8s %12s\n", "endpoint", "offered/s", "achieved/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", "api CPU us/req")
	for _, rate := range rates {
		for _, ep := range endpoints {
			rs := res[key{ep.name, rate}]
			fmt.Printf("%-10s %9.0f %11.0f %9.3f %9.3f %9.3f %8.0f %12.0f\n", ep.name, rate, med(rs, func(r result) float64 { return r.throughput }),
				med(rs, func(r result) float64 { return r.p50 }), med(rs, func(r result) float64 { return r.p99 }),
				med(rs, func(r result) float64 { return r.p999 }), med(rs, func(r result) float64 { return float64(r.errors) }),
				med(rs, func(r result) float64 { return r.cpuPerReq }))
		}
	}
	fmt.Printf("\n== saturation (closed loop, %d connections, %v), medians of %d runs\n", o.satConns, o.satDuration, o.runs)
	fmt.Printf("%-10s %11s %9s %9s %9s %8s %12s\n", "endpoint", "requests/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", "api CPU us/req")
	sat := map[string]float64{}
	for _, ep := range endpoints {
		rs := res[key{ep.name, 0}]
		sat[ep.name] = med(rs, func(r result) float64 { return r.throughput })
		fmt.Printf("%-10s %11.0f %9.3f %9.3f %9.3f %8.0f %12.0f\n", ep.name, sat[ep.name],
			med(rs, func(r result) float64 { return r.p50 }), med(rs, func(r result) float64 { return r.p99 }),
			med(rs, func(r result) float64 { return r.p999 }), med(rs, func(r result) float64 { return float64(r.errors) }),
			med(rs, func(r result) float64 { return r.cpuPerReq }))
	}
	if sat["reference"] > 0 && sat["api"] > 0 {
		fmt.Printf("saturation ratio api/reference: %.2f\n", sat["api"]/sat["reference"])
	}
	fmt.Printf("load average after each run: %s\n", strings.Join(loads, " | "))
	if sat["before"] > 0 && sat["api"] > 0 {
		fmt.Printf("saturation ratio api/before: %.2f\n", sat["api"]/sat["before"])
	}
	if sat["api+eval"] > 0 && sat["api"] > 0 {
		fmt.Printf("saturation ratio api+eval/api: %.2f\n", sat["api+eval"]/sat["api"])
	}
	fmt.Printf("api peak RSS (VmHWM): %s\n", benchkit.VmHWM(api.cmd.Process.Pid))
	if evalAPI != nil {
		fmt.Printf("api+eval peak RSS (VmHWM): %s\n", benchkit.VmHWM(evalAPI.cmd.Process.Pid))
	}
	return nil
}

type endpoint struct {
	name string
	pid  int // the process serving it (CPU time per request)
	path func(uid uint32) string
}

type result struct {
	throughput     float64 // completed requests per second
	p50, p99, p999 float64 // ms
	errors         int64
	cpuPerReq      float64 // CPU time of the API process per completed request, us
	completed      int
}

func med(rs []result, f func(result) float64) float64 {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	return benchkit.Median(xs)
}

// get does one request and reads the whole answer; it reports whether the
// status was 200.
func get(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	req.Header.Set("X-Client-Id", "bench")
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err == nil && resp.StatusCode == http.StatusOK
}

// openLoop offers rate requests/s for d with Poisson arrivals, over conns
// connections, and returns the achieved throughput and latency percentiles
// measured from each request's intended send time.
func openLoop(ctx context.Context, client *http.Client, ep endpoint, rate float64, d time.Duration, conns int, seed uint64) (result, error) {
	type job struct {
		at  time.Time
		uid uint32
	}
	// The queue holds every request of the point: the generator never
	// blocks on a slow server (open loop).
	jobs := make(chan job, int(rate*d.Seconds())+1024)
	lat := make([][]float64, conns)
	var errs atomic.Int64
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			for j := range jobs {
				if !get(ctx, client, ep.path(j.uid)) {
					errs.Add(1)
				}
				lat[w] = append(lat[w], float64(time.Since(j.at).Nanoseconds())/1e6)
			}
		})
	}
	r := rand.New(rand.NewPCG(seed, 7))
	start := time.Now()
	end := start.Add(d)
	next := start
	for {
		next = next.Add(time.Duration(r.ExpFloat64() / rate * 1e9))
		if next.After(end) {
			break
		}
		if wait := time.Until(next); wait > 0 {
			time.Sleep(wait)
		}
		jobs <- job{at: next, uid: uint32(r.IntN(users))}
	}
	close(jobs)
	wg.Wait()
	if ctx.Err() != nil {
		return result{}, ctx.Err()
	}
	el := time.Since(start)
	all := slices.Concat(lat...)
	return summarize(all, el, errs.Load()), nil
}

// closedLoop runs conns connections back to back for d.
func closedLoop(ctx context.Context, client *http.Client, ep endpoint, conns int, d time.Duration, seed uint64) (result, error) {
	lat := make([][]float64, conns)
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for w := range conns {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for time.Now().Before(end) && ctx.Err() == nil {
				t0 := time.Now()
				if !get(ctx, client, ep.path(uint32(r.IntN(users)))) {
					errs.Add(1)
				}
				lat[w] = append(lat[w], float64(time.Since(t0).Nanoseconds())/1e6)
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return result{}, ctx.Err()
	}
	return summarize(slices.Concat(lat...), time.Since(start), errs.Load()), nil
}

// cpuTime returns the user + system CPU time of process pid so far (from
// /proc/pid/stat, in clock ticks of 10 ms), or 0.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state): utime is field 14, stime 15
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// perRequest is cpu spread over the requests r completed, in us.
func perRequest(cpu time.Duration, r result) float64 {
	if r.completed == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(r.completed)
}

func summarize(ms []float64, el time.Duration, errs int64) result {
	slices.Sort(ms)
	q := func(p float64) float64 {
		if len(ms) == 0 {
			return 0
		}
		return ms[min(len(ms)-1, int(p*float64(len(ms))))]
	}
	return result{throughput: float64(len(ms)) / el.Seconds(), p50: q(0.5), p99: q(0.99), p999: q(0.999), errors: errs, completed: len(ms)}
}

type apiProc struct {
	cmd  *exec.Cmd
	addr string
}

// startAPI starts bin on a free port; main: the measured process of this
// tree (it gets --api-pprof-addr).
func startAPI(ctx context.Context, bin string, o opts, ns string, main bool, extra ...string) (*apiProc, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--listen", addr, "--redis-addr", o.redisAddr, "--namespace", ns, "--brokers", o.brokers,
		"--bench-reference", "--log-level", "warn")
	if o.pprofAddr != "" && main {
		cmd.Args = append(cmd.Args, "--pprof-addr", o.pprofAddr)
	}
	cmd.Args = append(cmd.Args, extra...)
	cmd.Stderr = os.Stderr
	cmd.Env = os.Environ()
	if o.apiProcs > 0 {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(o.apiProcs))
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &apiProc{cmd: cmd, addr: addr}
	// Ready when a recommendation comes from the model (the index is loaded).
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v1/users/1/recommendations")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && !strings.Contains(string(b), `"fallback"`) {
				return p, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, errors.New("the api did not serve a model recommendation within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *apiProc) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Wait()
}

func cleanup(rdb *redis.Client, ns string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, ns+":*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
}

// feed produces rate interactions/s of random users and videos of the
// synthetic model to topic until ctx ends; the returned function counts them.
func feed(ctx context.Context, brokers []string, topic string, rate float64) (func() uint64, error) {
	p, err := stream.NewProducer(stream.ProducerConfig{Brokers: brokers, Topic: topic})
	if err != nil {
		return nil, err
	}
	go func() {
		defer p.Close()
		r := rand.New(rand.NewPCG(7, 7))
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var id uint64
		evs := make([]stream.Event, 0, 64)
		carry := 0.0
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			carry += rate / 100
			evs = evs[:0]
			for ; carry >= 1; carry-- {
				id++
				now := time.Now()
				evs = append(evs, stream.Event{EventID: id, UserID: uint32(r.IntN(users)), VideoID: uint32(r.IntN(items)), PlayDurationMs: 8000,
					VideoDurationMs: 10000, EventTimeMs: now.UnixMilli(), WatchRatio: r.Float64() * 2, Source: stream.SourceSimulator, ProducedAtUs: now.UnixMicro()})
			}
			if len(evs) > 0 && p.Publish(ctx, evs) != nil && ctx.Err() != nil {
				return
			}
		}
	}()
	return p.Published, nil
}
