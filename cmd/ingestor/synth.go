package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/synth"
)

func init() {
	commands["synth"] = command{
		summary: "generate a synthetic KuaiRec 2.0 folder with ground truth and drift",
		run:     runSynth,
	}
}

func runSynth(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("synth", flag.ContinueOnError)
	config.Usage(fs, "usage: ingestor synth --out DIR --scale tiny|full --seed N [drift flags]\n\n"+
		"Writes DIR/KuaiRec 2.0/data/*.csv (all seven KuaiRec 2.0 files) and DIR/truth/ (ground truth).")
	out := fs.String("out", "", "output folder (required)")
	scale := fs.String("scale", "tiny", "size: tiny (300 users x 400 videos) or full (7,176 x 10,728, ~12.5M big-matrix rows)")
	seed := fs.Uint64("seed", 1, "random seed; the same seed gives the same bytes")
	side := fs.String("side", "auto", "folder with the real user_features.csv, item_categories.csv, kuairec_caption_category.csv; auto: ../shared/kuairec from the working directory or the repository; none: synthesise them")
	workers := fs.Int("workers", 0, "generator goroutines (0: all cores); the output does not depend on it")
	prefsAt := fs.String("drift-prefs-at", "", "time a share of users change preferences (2006-01-02 or '2006-01-02 15:04' in UTC+8, or RFC 3339)")
	prefsShare := fs.Float64("drift-prefs-share", 0.2, "share of users whose preferences change")
	newAt := fs.String("drift-new-videos-at", "", "time a burst of new videos is released")
	newCount := fs.Int("drift-new-videos-count", 0, "number of new videos in the burst (0: 3% of the catalogue)")
	popAt := fs.String("drift-popularity-at", "", "time the popularity of a share of videos shifts")
	popShare := fs.Float64("drift-popularity-share", 0.3, "share of videos whose popularity shifts")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := config.Parse(fs, args, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return config.Usagef("%v", err)
	}
	if *out == "" {
		return config.Usagef("synth: --out is required")
	}
	sc, ok := synth.Scales[*scale]
	if !ok {
		return config.Usagef("synth: --scale %q: want tiny or full", *scale)
	}
	cfg := synth.GenConfig{Scale: sc, Seed: *seed, Workers: *workers}
	switch *side {
	case "none":
	case "auto":
		cfg.SideDir = findSideDir()
	default:
		cfg.SideDir = *side
	}
	addDrift := func(kind synth.DriftKind, at string, share float64, count int) error {
		if at == "" {
			return nil
		}
		t, err := parseDriftTime(at)
		if err != nil {
			return config.Usagef("synth: drift %s time: %v", kind, err)
		}
		if share < 0 || share > 1 {
			return config.Usagef("synth: drift %s share %v: want 0..1", kind, share)
		}
		cfg.Drifts = append(cfg.Drifts, synth.Drift{Kind: kind, AtMS: t.UnixMilli(), Share: share, Count: count})
		return nil
	}
	if *newCount <= 0 {
		*newCount = max(1, sc.Videos*3/100)
	}
	for _, err := range []error{
		addDrift(synth.DriftPrefs, *prefsAt, *prefsShare, 0),
		addDrift(synth.DriftNewVideos, *newAt, 0, *newCount),
		addDrift(synth.DriftPopularity, *popAt, *popShare, 0),
	} {
		if err != nil {
			return err
		}
	}
	if !*quiet {
		cfg.Progress = os.Stderr
	}
	src := cfg.SideDir
	if src == "" {
		src = "synthesised"
	}
	fmt.Fprintf(os.Stderr, "synth: scale %s, seed %d, side files %s, %d drift(s)\n", sc.Name, *seed, src, len(cfg.Drifts))
	res, err := synth.Generate(*out, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s: big_matrix %d rows, small_matrix %d rows, item_daily_features %d rows in %s; truth in %s\n",
		res.DataDir, res.BigRows, res.SmallRows, res.DailyRows, res.Elapsed.Round(time.Millisecond), filepath.Join(*out, synth.TruthDir))
	return ctx.Err()
}

var cst = time.FixedZone("UTC+8", 8*3600)

func parseDriftTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, cst); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: want 2006-01-02, '2006-01-02 15:04' (UTC+8) or RFC 3339", s)
}

// findSideDir looks for ../shared/kuairec relative to the working directory and
// to the repository root (the folder holding go.mod); "" when absent.
func findSideDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	cands := []string{filepath.Join(wd, "..", "shared", "kuairec")}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			cands = append(cands, filepath.Join(d, "..", "shared", "kuairec"))
			break
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	for _, c := range cands {
		if _, err := os.Stat(filepath.Join(c, kuairec.ItemCategoryFile)); err == nil {
			return filepath.Clean(c)
		}
	}
	return ""
}
