package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/devstack"
	"github.com/streamrec/streamrec/internal/promtext"
	"github.com/streamrec/streamrec/internal/stream"
)

// demo runs the whole pipeline, with the real binaries, on the embedded stack:
// synthetic KuaiRec -> ingestor train (publish to Redis) -> updater -> replay
// through Kafka -> online learning, and says what happened at each step.
func demo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev demo", flag.ContinueOnError)
	out := fs.String("out", "out/demo", "folder for the synthetic data, the model file and the training report")
	scale := fs.String("scale", "tiny", "synthetic scale: tiny or full")
	cut := fs.String("cut", "2020-08-27T00:00:00+08:00", "train before this time, replay from it")
	rate := fs.Int("max-rate", 2000, "replay rate limit in events/s (0: as fast as possible)")
	poison := fs.Int("poison", 3, "malformed messages to publish (they go to the dead-letter topic)")
	var stay stayOptions
	fs.DurationVar(&stay.duration, "duration", 0, "after the scripted steps, keep the stack, the updater and the API up with a gentle closed loop for this long, then stop (exit 0); 0: until Ctrl-C")
	fs.BoolVar(&stay.off, "no-stay", false, "stop after the scripted steps")
	fs.IntVar(&stay.port, "port", 8088, "the API's port while the demo stays up (the dashboard is http://127.0.0.1:PORT/dashboard)")
	fs.BoolVar(&stay.drift, "drift", false, "generate the data with a preference change (30% of users, 4 days after the cut), which the background closed loop reaches midway; an alert then raises the updater's learning rate 3x for a minute")
	config.Usage(fs, "dev demo: the whole streamrec pipeline on the embedded Kafka + Redis")
	if err := config.Parse(fs, args, nil); err != nil {
		return &config.UsageError{Err: err}
	}
	if *scale != "tiny" && *scale != "full" {
		return config.Usagef("--scale %q: want tiny or full", *scale)
	}
	if stay.duration < 0 || stay.port < 1 || stay.port > 65535 {
		return config.Usagef("--duration %v (>= 0) and --port %d (1..65535)", stay.duration, stay.port)
	}
	cutT, err := time.Parse(time.RFC3339, *cut)
	if err != nil {
		return config.Usagef("--cut %q: %v", *cut, err)
	}
	start := time.Now()
	st, err := devstack.Start(devstack.Config{})
	if err != nil {
		return err
	}
	defer st.Close()
	say("1/7 embedded stack: Kafka-protocol broker (kfake) on %s, Redis-protocol server (miniredis) on %s", st.KafkaAddr(), st.RedisAddr())

	bins := filepath.Join(*out, "bin")
	say("2/7 building the binaries (ingestor, updater, replay, api) into %s", bins)
	for _, b := range [][2]string{{"ingestor", "./cmd/ingestor"}, {"updater", "./cmd/updater"}, {"replay", "./replay"}, {"api", "./cmd/api"}} {
		if err := runCmd(ctx, "go", "build", "-o", filepath.Join(bins, b[0]), b[1]); err != nil {
			return fmt.Errorf("building %s: %w", b[0], err)
		}
	}
	data := filepath.Join(*out, "data")
	synthArgs := []string{"synth", "--out", data, "--scale", *scale, "--seed", "1"}
	if stay.drift {
		data = filepath.Join(*out, "data-drift")
		stay.driftAt = cutT.Add(4 * 24 * time.Hour)
		synthArgs = []string{"synth", "--out", data, "--scale", *scale, "--seed", "1", "--drift-prefs-at", stay.driftAt.Format(time.RFC3339), "--drift-prefs-share", "0.3"}
	}
	if _, err := os.Stat(filepath.Join(data, "KuaiRec 2.0", "data", "big_matrix.csv")); err != nil {
		say("3/7 generating a synthetic KuaiRec (%s) into %s", *scale, data)
		if err := runCmd(ctx, filepath.Join(bins, "ingestor"), synthArgs...); err != nil {
			return err
		}
	} else {
		say("3/7 reusing the synthetic KuaiRec in %s", data)
	}
	report := filepath.Join(*out, "report.json")
	say("4/7 training the two-tower model on events before %s, evaluating on the small matrix, publishing to Redis", *cut)
	if err := runCmd(ctx, filepath.Join(bins, "ingestor"), "train", "--data", data, "--cut", *cut, "--report", report,
		"--model-out", filepath.Join(*out, "model.srm"), "--redis-addr", st.RedisAddr(), "--quiet", "--log-level", "warn"); err != nil {
		return err
	}

	// The updater reads every partition by manual assignment: the embedded
	// broker answers JoinGroup v1 (kafka-go's) without the member id.
	brokers := []string{st.KafkaAddr()}
	if err := stream.EnsureTopics(ctx, brokers, stream.InteractionsTopic(stream.DefaultTopic, 4)); err != nil {
		return err
	}
	metrics, err := freeAddr()
	if err != nil {
		return err
	}
	updLog, err := os.Create(filepath.Join(*out, "updater.log"))
	if err != nil {
		return err
	}
	defer updLog.Close()
	upd := exec.CommandContext(ctx, filepath.Join(bins, "updater"), "--brokers", st.KafkaAddr(), "--redis-addr", st.RedisAddr(),
		"--assign", "all", "--metrics-addr", metrics, "--log-level", "info")
	upd.Stderr = updLog
	gentle(upd)
	if err := upd.Start(); err != nil {
		return err
	}
	defer func() {
		if ctx.Err() == nil { // else gentle's Cancel already sent it: a second SIGINT kills
			upd.Process.Signal(os.Interrupt) // graceful: drain, flush, commit
		}
		upd.Wait()
	}()
	say("5/7 updater started (per-user SGD; changelog topic updater.user-state; metrics on http://%s/metrics; log %s)", metrics, updLog.Name())
	if err := waitMetrics(ctx, metrics); err != nil {
		return err
	}

	say("6/7 replaying the events after the cut through Kafka at up to %d events/s; the updater learns from each", *rate)
	rep := exec.CommandContext(ctx, filepath.Join(bins, "replay"), "--data", data, "--cut", *cut, "--brokers", st.KafkaAddr(),
		"--max-rate", strconv.Itoa(*rate), "--progress=false", "--log-level", "warn")
	repOut, err := rep.StdoutPipe()
	if err != nil {
		return err
	}
	rep.Stderr = os.Stderr
	if err := rep.Start(); err != nil {
		return err
	}
	published := 0
	sc := bufio.NewScanner(repOut)
	go func() {
		for sc.Scan() {
			line := sc.Text()
			fmt.Println("   replay: " + line)
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "published" {
				published, _ = strconv.Atoi(f[1])
			}
		}
	}()
	// The learning curve: prequential (test-then-train) MAE per second.
	fmt.Println("   second  events  online MAE in the window (prediction made before each update)")
	var lastN, lastErr float64
	tick := time.NewTicker(time.Second)
	repDone := make(chan error, 1)
	go func() { repDone <- rep.Wait() }()
	var repErr error
	running := true
	for sec := 1; running || scrape(metrics, "streamrec_updater_events_applied_total") > lastN; sec++ {
		select {
		case repErr = <-repDone:
			running = false
		case <-tick.C:
		}
		n := scrape(metrics, "streamrec_updater_events_applied_total")
		e := scrape(metrics, "streamrec_updater_prequential_abs_error_total")
		if n > lastN {
			fmt.Printf("   %6d  %6.0f  %.4f\n", sec, n-lastN, (e-lastErr)/(n-lastN))
		}
		lastN, lastErr = n, e
		if !running {
			time.Sleep(300 * time.Millisecond)
		}
	}
	tick.Stop()
	if repErr != nil {
		return fmt.Errorf("replay: %w", repErr)
	}
	if *poison > 0 {
		if err := publishPoison(ctx, brokers, *poison); err != nil {
			return err
		}
	}
	// Wait for the updater to account for everything.
	done := func() float64 {
		return scrape(metrics, "streamrec_updater_events_applied_total") + scrape(metrics, "streamrec_updater_cold_items_total") +
			scrape(metrics, "streamrec_updater_duplicates_skipped_total")
	}
	for end := time.Now().Add(60 * time.Second); (done() < float64(published) || scrape(metrics, "streamrec_updater_dead_letters_total") < float64(*poison)) && time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
	}
	applied := scrape(metrics, "streamrec_updater_events_applied_total")
	say("updater: %.0f events applied, %.0f cold items (no embedding: counted, recorded in the user's state), %.0f duplicates skipped, %.0f dead letters, %.0f users held",
		applied, scrape(metrics, "streamrec_updater_cold_items_total"), scrape(metrics, "streamrec_updater_duplicates_skipped_total"),
		scrape(metrics, "streamrec_updater_dead_letters_total"), scrape(metrics, "streamrec_updater_users"))
	if applied > 0 {
		say("online MAE over the whole replay: %.4f; freshness (produced -> embedding in Redis): p50 %.1f ms, p99 %.1f ms",
			scrape(metrics, "streamrec_updater_prequential_abs_error_total")/applied,
			1000*scrape(metrics, "streamrec_updater_freshness_p50_seconds"), 1000*scrape(metrics, "streamrec_updater_freshness_p99_seconds"))
	}
	if err := apiStep(ctx, bins, st, data, *cut, &stay, *out); err != nil {
		return err
	}
	say("done in %v.", time.Since(start).Round(time.Second))
	return nil
}

func say(format string, args ...any) { fmt.Printf("demo: "+format+"\n", args...) }

func runCmd(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args[:min(1, len(args))], " "), err)
	}
	return nil
}

func apiStep(ctx context.Context, bins string, st *devstack.Stack, data, cut string, stay *stayOptions, out string) error {
	bin := filepath.Join(bins, "api")
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	if !stay.off {
		addr = "127.0.0.1:" + strconv.Itoa(stay.port)
		if ln, err := net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("the demo's API port %s is taken (choose another with --port): %w", addr, err)
		} else {
			ln.Close()
		}
	}
	// The online evaluation runs in the API, with short lists and windows so
	// that the demo's few seconds of traffic close some.
	api := exec.CommandContext(ctx, bin, "--listen", addr, "--redis-addr", st.RedisAddr(), "--brokers", st.KafkaAddr(), "--log-level", "warn",
		"--eval", "--eval-open-for", "1500ms", "--eval-grace", "200ms", "--eval-window", "1s", "--eval-flush", "50ms")
	if stay.drift {
		// The drift action: an ADWIN alert raises the updater's learning rate
		// 3x for a minute (a control record applied by message time).
		api.Args = append(api.Args, "--drift-lr-factor", "3", "--drift-lr-for", "1m")
	}
	api.Stderr = os.Stderr
	gentle(api)
	if err := api.Start(); err != nil {
		return err
	}
	defer func() {
		if ctx.Err() == nil {
			api.Process.Signal(os.Interrupt)
		}
		api.Wait()
	}()
	base := "http://" + addr
	for end := time.Now().Add(30 * time.Second); ; {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(end) {
			return fmt.Errorf("the API on %s was not ready in 30s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	say("7/7 the API serves on %s (OpenAPI at %s/v1/openapi.json)", base, base)

	rdb := redis.NewClient(&redis.Options{Addr: st.RedisAddr()})
	defer rdb.Close()
	store, err := cache.NewStore(rdb, cache.DefaultConfig())
	if err != nil {
		return err
	}
	v, err := store.CurrentVersion(ctx)
	if err != nil {
		return err
	}
	var uid uint32
	var rec cache.UserRecord
	for uid = 0; uid < 10000; uid++ {
		r, ok, err := store.GetUser(ctx, v, uid)
		if err != nil {
			return err
		}
		if ok && r.InputNext > 0 {
			rec = r
			break
		}
	}
	type recs struct {
		ModelVersion   string `json:"model_version"`
		Fallback       string `json:"fallback"`
		FallbackReason string `json:"fallback_reason"`
		EmbeddingAgeMs *int64 `json:"embedding_age_ms"`
		Items          []struct {
			VideoID             uint32  `json:"video_id"`
			PredictedWatchRatio float32 `json:"predicted_watch_ratio"`
		} `json:"items"`
	}
	get := func(user uint32) (recs, error) {
		var r recs
		resp, err := http.Get(fmt.Sprintf("%s/v1/users/%d/recommendations?k=10", base, user))
		if err != nil {
			return r, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return r, fmt.Errorf("GET recommendations of user %d: HTTP %d", user, resp.StatusCode)
		}
		return r, json.NewDecoder(resp.Body).Decode(&r)
	}
	show := func(user uint32, r recs) {
		parts := make([]string, len(r.Items))
		for i, it := range r.Items {
			parts[i] = fmt.Sprintf("%d(%.2f)", it.VideoID, it.PredictedWatchRatio)
		}
		how := "online-updated embedding"
		if r.Fallback != "" {
			how = "fallback " + r.Fallback + " (" + r.FallbackReason + ")"
		}
		age := ""
		if r.EmbeddingAgeMs != nil {
			age = fmt.Sprintf(", embedding age %d ms", *r.EmbeddingAgeMs)
		}
		say("GET /v1/users/%d/recommendations?k=10 -> model %s, %s%s:\n      video(predicted watch ratio) %s",
			user, r.ModelVersion, how, age, strings.Join(parts, " "))
	}
	r, err := get(uid)
	if err != nil {
		return err
	}
	show(uid, r)
	unknown, err := get(4000000000)
	if err != nil {
		return err
	}
	show(4000000000, unknown)

	// The user watches the top video twice over, through the API.
	if len(r.Items) == 0 {
		return nil
	}
	video := r.Items[0].VideoID
	body := fmt.Sprintf(`{"user_id":%d,"video_id":%d,"play_duration_ms":20000,"video_duration_ms":10000,"event_time_ms":%d,"watch_ratio":2.0}`,
		uid, video, time.Now().UnixMilli())
	sent := time.Now()
	resp, err := http.Post(base+"/v1/interactions", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST /v1/interactions: HTTP %d", resp.StatusCode)
	}
	reached := false
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		now, ok, err := store.GetUser(ctx, v, uid)
		if err == nil && ok && now.InputNext > rec.InputNext {
			say("POST /v1/interactions (user %d watched video %d twice over) -> Kafka -> updater -> new embedding in Redis after %v",
				uid, video, time.Since(sent).Round(time.Millisecond))
			reached = true
			break
		}
	}
	if !reached {
		say("the posted interaction did not reach the user's embedding within 10s")
	}
	if err := onlineStep(ctx, base); err != nil {
		return err
	}
	if err := closedLoopStep(ctx, bins, st, base, data, cut); err != nil {
		return err
	}
	if stay.off {
		return nil
	}
	return stayUp(ctx, bins, st, base, data, cut, stay, out)
}

// onlineStep shows the online evaluation: simulated users ask for lists and
// watch a video each (half of them from the list), through the API; the
// evaluator in the API joins each interaction to the list then open, and
// GET /v1/metrics/online serves the windows.
func onlineStep(ctx context.Context, base string) error {
	r := rand.New(rand.NewPCG(11, 12))
	post := func(user, video uint32, wr float64) error {
		body := fmt.Sprintf(`{"user_id":%d,"video_id":%d,"play_duration_ms":%d,"video_duration_ms":10000,"event_time_ms":%d,"watch_ratio":%g}`,
			user, video, int(wr*10000), time.Now().UnixMilli(), wr)
		resp, err := http.Post(base+"/v1/interactions", "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("POST /v1/interactions: HTTP %d", resp.StatusCode)
		}
		return nil
	}
	type list struct {
		Items []struct {
			VideoID uint32 `json:"video_id"`
		} `json:"items"`
	}
	start := time.Now()
	served, watched := 0, 0
	for time.Since(start) < 3*time.Second && ctx.Err() == nil {
		user := uint32(r.IntN(200))
		resp, err := http.Get(fmt.Sprintf("%s/v1/users/%d/recommendations?k=10", base, user))
		if err != nil {
			return err
		}
		var l list
		err = json.NewDecoder(resp.Body).Decode(&l)
		resp.Body.Close()
		if err != nil || len(l.Items) == 0 {
			continue
		}
		served++
		video := uint32(r.IntN(400))
		if r.IntN(2) == 0 {
			video = l.Items[r.IntN(len(l.Items))].VideoID
		}
		time.Sleep(5 * time.Millisecond)
		if err := post(user, video, r.Float64()*3); err != nil {
			return err
		}
		watched++
	}
	time.Sleep(1500 * time.Millisecond) // the last batch reaches the windows
	resp, err := http.Get(base + "/v1/metrics/online?limit=10")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var series struct {
		Points []struct {
			Index  int64              `json:"index"`
			Values map[string]float64 `json:"values"`
		} `json:"points"`
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v1/metrics/online: HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&series); err != nil {
		return err
	}
	say("online evaluation: %d lists served and %d interactions posted in 3 s (half on a served video); GET /v1/metrics/online, 1-second windows:", served, watched)
	say("   window  interactions  hit rate  lists closed  precision@10 (>=0.8)  NDCG@10 (>=0.8)")
	f := func(v map[string]float64, k string) string {
		if x, ok := v[k]; ok {
			return fmt.Sprintf("%.3f", x)
		}
		return "-"
	}
	for _, p := range series.Points {
		say("   %6d  %12.0f  %8s  %12.0f  %20s  %15s", p.Index%1000, p.Values["interactions"], f(p.Values, "hit_rate"), p.Values["lists"],
			f(p.Values, "precision_08"), f(p.Values, "ndcg_08"))
	}
	if len(series.Points) == 0 {
		say("   (no window yet: the evaluator had not applied a batch)")
	}
	return nil
}

func publishPoison(ctx context.Context, brokers []string, n int) error {
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: stream.DefaultTopic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	bad := []string{"not an event", "v1,1,2,3,4,5,6,NaN,replay,7", "v1,1,99999999999,3,4,5,6,0.5,api,7"}
	var msgs []kafka.Message
	for i := 0; i < n; i++ {
		msgs = append(msgs, kafka.Message{Key: []byte("1"), Value: []byte(bad[i%len(bad)])})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("publishing malformed messages: %w", err)
	}
	say("published %d malformed messages: the updater sends them to %s with their reasons", n, stream.DefaultDLQTopic)
	return nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitMetrics(ctx context.Context, addr string) error {
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); {
		if scrape(addr, "streamrec_updater_users") >= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("the updater's metrics did not come up on %s", addr)
}

func scrape(addr, name string) float64 { return promtext.Scrape(addr, name) }
