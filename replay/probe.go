package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/streamrec/streamrec/internal/api"
	"github.com/streamrec/streamrec/internal/config"
)

// probeResult is the pipeline's own feedback latency: from POSTing an
// interaction to the first recommendation list of the user whose embedding
// includes it (its input position moved past the one before the POST).
type probeResult struct {
	N        int           `json:"n"`
	Timeouts int           `json:"timeouts"`
	Interval time.Duration `json:"interval_ns"`
	P50MS    float64       `json:"p50_ms"`
	P99MS    float64       `json:"p99_ms"`
	MaxMS    float64       `json:"max_ms"`
	MeanMS   float64       `json:"mean_ms"`
}

// inputOffset is the user's embedding input position (-1: none) as the API
// answers it.
func inputOffset(ctx context.Context, client *http.Client, base, clientID string, user uint32) (int64, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/users/"+strconv.FormatUint(uint64(user), 10)+"/recommendations?k=1", nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set(api.ClientHeader, clientID)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, "", fmt.Errorf("recommendations of user %d: %d %s", user, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var rec api.Recommendations
	if err := json.Unmarshal(b, &rec); err != nil {
		return 0, "", err
	}
	if rec.InputPosition == nil {
		return -1, rec.Fallback, nil
	}
	return rec.InputPosition.Offset, rec.Fallback, nil
}

// probe measures n round trips for user: read the input position, POST an
// interaction on one of videos (source simulator), then poll the user's
// recommendations every interval until the position moved past the one
// before (at most timeout each). The user should have no other traffic
// meanwhile: any newer event would also move the position.
func probe(ctx context.Context, client *http.Client, base, clientID string, user uint32, videos []uint32, n int, interval, timeout time.Duration) (probeResult, error) {
	res := probeResult{Interval: interval}
	if len(videos) == 0 {
		return res, errors.New("probe: no video to watch")
	}
	var lat []float64
	for i := range n {
		before, fb, err := inputOffset(ctx, client, base, clientID, user)
		if err != nil {
			return res, err
		}
		if fb != "" && i == 0 {
			// A fallback list has no input position; the updater's first
			// event for the user gives it one, which still measures the path.
			before = -1
		}
		v := videos[i%len(videos)]
		body, _ := json.Marshal(map[string]any{"user_id": user, "video_id": v, "video_duration_ms": 10000, "play_duration_ms": 10000,
			"watch_ratio": 1.0, "source": "simulator"})
		t0 := time.Now()
		if err := postInteraction(ctx, client, base, clientID, body); err != nil {
			return res, err
		}
		seen := false
		for time.Since(t0) < timeout {
			off, _, err := inputOffset(ctx, client, base, clientID, user)
			if err != nil {
				return res, err
			}
			if off > before {
				seen = true
				break
			}
			select {
			case <-time.After(interval):
			case <-ctx.Done():
				return res, ctx.Err()
			}
		}
		if !seen {
			res.Timeouts++
			continue
		}
		lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
	}
	res.N = len(lat)
	if len(lat) == 0 {
		return res, fmt.Errorf("probe: none of %d probes saw its event within %v (is the updater running?)", n, timeout)
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return lat[min(len(lat)-1, int(math.Ceil(p*float64(len(lat))))-1)] }
	res.P50MS, res.P99MS, res.MaxMS = q(0.5), q(0.99), lat[len(lat)-1]
	for _, x := range lat {
		res.MeanMS += x / float64(len(lat))
	}
	return res, nil
}

// runProbe is `replay probe`.
func runProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("api", "http://127.0.0.1:8080", "base URL of the API")
	user := fs.Uint64("user", 0, "the probing user (best one without other traffic)")
	video := fs.Uint64("video", 0, "the video the probe watches")
	n := fs.Int("n", 100, "probes")
	interval := fs.Duration("interval", 5*time.Millisecond, "poll interval")
	timeout := fs.Duration("timeout", 10*time.Second, "give up on one probe after this")
	clientID := fs.String("client-id", "probe", "X-Client-Id of the requests")
	config.Usage(fs, "replay probe: the pipeline's own feedback latency: POST an interaction, poll the user's recommendations every --interval until its embedding includes it")
	if err := config.Parse(fs, args, os.LookupEnv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &config.UsageError{Err: err}
	}
	switch {
	case *n < 1:
		return config.Usagef("--n %d: want >= 1", *n)
	case *interval <= 0 || *timeout <= 0:
		return config.Usagef("--interval and --timeout: want > 0")
	case *user > math.MaxUint32 || *video > math.MaxUint32:
		return config.Usagef("--user and --video: want uint32 ids")
	case !strings.HasPrefix(*base, "http://") && !strings.HasPrefix(*base, "https://"):
		return config.Usagef("--api %q: want an http:// or https:// URL", *base)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	if err := waitReady(ctx, client, *base, 30*time.Second); err != nil {
		return err
	}
	res, err := probe(ctx, client, *base, *clientID, uint32(*user), []uint32{uint32(*video)}, *n, *interval, *timeout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "probe: %d probes (poll every %v): p50 %.1f ms, p99 %.1f ms, max %.1f ms, mean %.1f ms; %d timed out\n",
		res.N, res.Interval, res.P50MS, res.P99MS, res.MaxMS, res.MeanMS, res.Timeouts)
	return nil
}
