package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/internal/stream"
	"github.com/streamrec/streamrec/internal/synth"
)

// freePort returns a free 127.0.0.1 address.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The closed loop on the real services, tiny synthetic data with a
// preference drift: the ingestor trains and publishes (with the offline
// vectors), the updater learns from the simulator's events, the API serves
// and evaluates online; the simulator reports exact metrics of the live and
// twin lists per window, the API's observed metrics, the feedback-to-effect
// latency and the probe's.
func TestIntegrationClosedLoop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	drift := synth.SpanStartMS + 56*86400000 // 2020-08-30, after the cut
	st := newLoopStack(t, ctx, 5, []synth.Drift{{Kind: synth.DriftPrefs, AtMS: drift, Share: 0.5}})
	st.train(t, ctx, "sim-v1")
	st.startServices(t)
	tmp, data, cut, apiAddr, redisAddr, ns := st.tmp, st.data, st.cut, st.apiAddr, st.redisAddr, st.ns

	var stdout, stderr bytes.Buffer
	sumPath := filepath.Join(tmp, "sim.json")
	err := runSim(ctx, []string{"--api", "http://" + apiAddr, "--data", data, "--redis-addr", redisAddr, "--namespace", ns,
		"--duration", "8s", "--from", cut, "--until", "2020-09-02T00:00:00+08:00", "--concurrency", "4", "--users", "60",
		"--exclude-watched=false", "--probes", "5", "--observe-wait", "8s", "--summary-out", sumPath, "--log-level", "warn"}, &stdout, &stderr)
	t.Logf("sim output:\n%s\n%s", stdout.String(), stderr.String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(sumPath)
	if err != nil {
		t.Fatal(err)
	}
	var sum simSummary
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	switch {
	case sum.Lists < 50 || sum.Interactions < 50:
		t.Fatalf("%d lists, %d interactions: the loop hardly ran", sum.Lists, sum.Interactions)
	case len(sum.RequestErrors) > 0:
		t.Fatalf("request errors: %v", sum.RequestErrors)
	case sum.Total.TwinLists != sum.Total.Lists:
		t.Fatalf("the twin scored %d of %d lists", sum.Total.TwinLists, sum.Total.Lists)
	case len(sum.Windows) < 2:
		t.Fatalf("%d windows, want at least 2", len(sum.Windows))
	case sum.Before == nil || sum.After == nil:
		t.Fatalf("the virtual clock did not carry the run across the drift at %s", fmtMs(drift))
	}
	for _, v := range []float64{sum.Total.LiftNDCG, sum.Total.LiveNDCG, sum.Total.TwinNDCG} {
		if !(v > 0) || math.IsInf(v, 0) {
			t.Fatalf("exact metrics and lift %+v: want positive and finite", sum.Total)
		}
	}
	if sum.Probe == nil || sum.Probe.N == 0 || !(sum.Probe.P99MS > 0) {
		t.Fatalf("probe %+v: want measured latencies", sum.Probe)
	}
	if sum.Observed == nil || sum.Observed["lists"] == 0 || sum.Observed["interactions"] == 0 {
		t.Fatalf("observed metrics %v: want the API's windows over the run", sum.Observed)
	}
	if sum.FeedbackToEffect == nil || sum.FeedbackToEffect["n"] == 0 {
		t.Fatalf("feedback-to-effect %v: want interactions seen in later lists", sum.FeedbackToEffect)
	}
	// The simulator's events reached the topic as source simulator: the
	// API's windows count them under that tag.
	resp, err := http.Get("http://" + apiAddr + "/v1/metrics/online?metric=interactions&source=simulator&limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var series struct {
		Points []struct {
			Values map[string]float64 `json:"values"`
		} `json:"points"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&series); err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, p := range series.Points {
		n += p.Values["interactions"]
	}
	if n == 0 || !strings.Contains(stdout.String(), "lift NDCG") {
		t.Fatalf("%v simulator interactions in the API's windows; summary:\n%s", n, stdout.String())
	}
	// The dashboard of this API after the closed loop, in headless Chromium:
	// the quality chart holds the windows' data points and the drift chart a
	// bar per detector.
	chromium := "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Logf("no Chromium: the dashboard check after the loop is skipped")
		return
	}
	dom, err := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir="+t.TempDir(), "--window-size=1400,1100",
		"--virtual-time-budget=4000", "--dump-dom", "http://"+apiAddr+"/dashboard").Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	quality := regexp.MustCompile(`(?s)<svg id="quality"[^>]*>(.*?)</svg>`).FindSubmatch(dom)
	driftSVG := regexp.MustCompile(`(?s)<svg id="drift"[^>]*>(.*?)</svg>`).FindSubmatch(dom)
	if quality == nil || driftSVG == nil {
		t.Fatalf("no quality or drift chart in the dashboard's DOM")
	}
	if k := len(regexp.MustCompile(`<circle[^>]*class="point"`).FindAll(quality[1], -1)); k < 2 {
		t.Errorf("the dashboard after the loop drew %d quality points", k)
	}
	if k := len(regexp.MustCompile(`<rect[^>]*class="bar"`).FindAll(driftSVG[1], -1)); k < 4 {
		t.Errorf("the dashboard after the loop drew %d detector bars", k)
	}
}

// loopStack is the closed loop's services on real Kafka and Redis: the
// binaries, a tiny synthetic folder, a namespace and topic of their own.
type loopStack struct {
	bin, tmp, data, ns, topic, broker, redisAddr, apiAddr, cut string
}

func newLoopStack(t *testing.T, ctx context.Context, seed uint64, drifts []synth.Drift) *loopStack {
	t.Helper()
	broker := testBroker(t)
	redisAddr := os.Getenv("STREAMREC_TEST_REDIS")
	if redisAddr == "" {
		t.Skip("set STREAMREC_TEST_REDIS=host:port to run the closed loop")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin+string(filepath.Separator), "../cmd/ingestor", "../cmd/updater", "../cmd/api").CombinedOutput(); err != nil {
		t.Fatalf("building the binaries: %v\n%s", err, out)
	}
	data := filepath.Join(tmp, "data")
	if _, err := synth.Generate(data, synth.GenConfig{Scale: synth.Scales["tiny"], Seed: seed, Drifts: drifts}); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	ns := fmt.Sprintf("test-sim-%08x", r.Uint32())
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() {
		defer rdb.Close()
		keys, _ := rdb.Keys(context.Background(), ns+":*").Result()
		for len(keys) > 0 {
			n := min(len(keys), 500)
			rdb.Del(context.Background(), keys[:n]...)
			keys = keys[n:]
		}
	})
	st := &loopStack{bin: bin, tmp: tmp, data: data, ns: ns, topic: ns + ".interactions", broker: broker, redisAddr: redisAddr,
		cut: "2020-08-27T00:00:00+08:00"}
	if err := stream.EnsureTopics(ctx, []string{broker}, stream.InteractionsTopic(st.topic, 4)); err != nil {
		t.Fatal(err)
	}
	return st
}

// train runs ingestor train on the folder before the cut and publishes version.
func (st *loopStack) train(t *testing.T, ctx context.Context, version string, extra ...string) {
	t.Helper()
	args := append([]string{"train", "--data", st.data, "--cut", st.cut, "--redis-addr", st.redisAddr,
		"--namespace", st.ns, "--model-version", version, "--report", filepath.Join(st.tmp, version+".json"), "--model-out", filepath.Join(st.tmp, version+".srm"),
		"--budget", "20000", "--quiet", "--log-level", "warn"}, extra...)
	if out, err := exec.CommandContext(ctx, filepath.Join(st.bin, "ingestor"), args...).CombinedOutput(); err != nil {
		t.Fatalf("ingestor train %s: %v\n%s", version, err, out)
	}
}

// startServices starts the updater and the evaluating API (2 s windows),
// stopped at the test's end (their logs printed if it failed).
func (st *loopStack) startServices(t *testing.T, apiExtra ...string) {
	t.Helper()
	start := func(name string, args ...string) {
		cmd := exec.Command(filepath.Join(st.bin, name), args...)
		var logBuf bytes.Buffer
		cmd.Stderr = &logBuf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _, _ = cmd.Process.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
			}
			if t.Failed() {
				t.Logf("%s log:\n%s", name, logBuf.String())
			}
		})
	}
	start("updater", "--brokers", st.broker, "--redis-addr", st.redisAddr, "--namespace", st.ns, "--topic", st.topic, "--changelog-topic", st.ns+".state",
		"--assign", "all", "--partitions", "4", "--metrics-addr", freePort(t), "--log-level", "warn")
	st.apiAddr = freePort(t)
	start("api", append([]string{"--listen", st.apiAddr, "--brokers", st.broker, "--redis-addr", st.redisAddr, "--namespace", st.ns, "--topic", st.topic, "--log-level", "warn",
		"--model-poll", "300ms", "--eval", "--eval-open-for", "3s", "--eval-grace", "300ms", "--eval-window", "2s", "--eval-flush", "50ms",
		"--eval-rank-every", "5"}, apiExtra...)...)
}
