package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/kuairec"
)

func init() {
	commands["stats"] = command{
		summary: "load a KuaiRec folder, print the cleaning report and statistics",
		run:     runStats,
	}
}

func runStats(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	config.Usage(fs, "usage: ingestor stats --data DIR\n\n"+
		"Loads DIR (DIR, DIR/KuaiRec 2.0 or the data folder), cleans it like the seed and prints the\n"+
		"cleaning report, the statistics of STATS.md for both matrices, and how uneven the label\n"+
		"(watch_ratio > 2) is across videos and users, beside the real KuaiRec's values.")
	data := fs.String("data", "", "KuaiRec folder (required)")
	workers := fs.Int("workers", 0, "parser goroutines (0: all cores)")
	quiet := fs.Bool("quiet", false, "no progress bars")
	features := fs.Bool("features", true, "also build the user and item feature matrices and report their PCA")
	if err := config.Parse(fs, args, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return config.Usagef("%v", err)
	}
	if *data == "" {
		return config.Usagef("stats: --data is required")
	}
	opt := kuairec.Options{Workers: *workers}
	if !*quiet {
		opt.Progress = os.Stderr
	}
	t0 := time.Now()
	ds, rep, err := kuairec.Load(*data, opt)
	if err != nil {
		if rep != nil {
			rep.WriteText(os.Stdout)
		}
		return err
	}
	loadTime := time.Since(t0)
	rep.WriteText(os.Stdout)
	fmt.Printf("loaded in %s\n\n", loadTime.Round(time.Millisecond))
	fmt.Printf("users %d, videos %d, daily-feature videos %d, social users %d\n",
		len(ds.Users), len(ds.Videos), len(ds.Daily), len(ds.Social))
	if *features {
		t1 := time.Now()
		f, err := kuairec.BuildFeatures(ds, kuairec.FeatureOptions{})
		if err != nil {
			return err
		}
		for _, x := range []struct {
			name string
			m    *kuairec.FeatureMatrix
		}{{"user", f.Users}, {"item", f.Items}} {
			fmt.Printf("%s features: %d rows, %d encoded columns -> PCA keeps %d components, %.2f%% of the variance\n",
				x.name, len(x.m.IDs), len(x.m.Names), x.m.Kept, 100*x.m.Explained)
		}
		fmt.Printf("features built in %s\n", time.Since(t1).Round(time.Millisecond))
	}
	// Each matrix is released once printed, to keep the peak RSS down.
	kuairec.ComputeStats(ds.Big).WriteText(os.Stdout, "big_matrix (cleaned)")
	bigPos := kuairec.CountPositives(ds.Big, kuairec.PositiveThreshold)
	ds.Big = nil
	kuairec.ComputeStats(ds.Small).WriteText(os.Stdout, "small_matrix (cleaned, timed rows)")
	ds.Small = nil
	ev, evRep, err := kuairec.LoadEval(*data, kuairec.Options{Workers: *workers})
	if err != nil {
		return err
	}
	kuairec.ComputeStats(ev).WriteText(os.Stdout, "small_matrix (evaluation load, all pairs)")
	fmt.Printf("  evaluation load: kept %d rows incl. %d untimed; dropped %d missing, %d timestamp<=0, %d duplicates\n",
		evRep.Kept, evRep.KeptUntimed, evRep.DroppedMissing, evRep.DroppedNonPositiveTime, evRep.DroppedDuplicates)
	fmt.Println()
	kuairec.ComputeLabelStats(ev, bigPos, kuairec.PositiveThreshold).WriteText(os.Stdout, "label unevenness (small matrix, all pairs)", kuairec.RealLabelStats)
	return ctx.Err()
}
