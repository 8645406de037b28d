// Command drift measures the drift detectors' delays on the calibrated
// generator's injected drifts and their false alarms on a stationary run
// (internal/online/drift/driftsim: a generated folder of 1M big-matrix rows
// per run, the API's default detectors and checks, windows of 10,000
// interactions). For each kind and seed it prints, per detector or check,
// the first alert after the change in interactions and windows, and the
// alerts before it; the stationary run prints each one's alerts per million
// interactions.
//
//	go run ./bench/drift --seeds 3,5,7
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/streamrec/streamrec/internal/online/drift"
	"github.com/streamrec/streamrec/internal/online/drift/driftsim"
	"github.com/streamrec/streamrec/internal/synth"
)

func main() {
	fs := flag.NewFlagSet("bench-drift", flag.ContinueOnError)
	seeds := fs.String("seeds", "3,5,7", "generator seeds, comma-separated")
	kinds := fs.String("kinds", "prefs,popularity,new-videos", "drift kinds, comma-separated (empty: none)")
	stationary := fs.Int("stationary", 1, "stationary runs (each about a million interactions; seeds from the list, in order)")
	window := fs.Int("window", 10000, "interactions per window")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	var ss []uint64
	for _, f := range strings.Split(*seeds, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench-drift: --seeds: %q is not a seed\n", f)
			os.Exit(2)
		}
		ss = append(ss, n)
	}
	dets, dists := drift.DefaultSpecs()
	var names []string
	for _, d := range dets {
		names = append(names, d.Name)
	}
	for _, d := range dists {
		names = append(names, d.Name)
	}
	fmt.Printf("drift bench %s: %d users x %d videos, %d big-matrix rows per run, window %d interactions\n",
		time.Now().UTC().Format(time.RFC3339), driftsim.Scale.Users, driftsim.Scale.Videos, driftsim.Scale.BigRows, *window)
	for _, k := range strings.Split(*kinds, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		for _, seed := range ss {
			t0 := time.Now()
			r, err := driftsim.Run(driftsim.Config{Kind: synth.DriftKind(k), Seed: seed, Window: *window})
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench-drift:", err)
				os.Exit(1)
			}
			fmt.Printf("\n%s, seed %d (%.1f s): change at interaction %d of %d\n", k, seed, time.Since(t0).Seconds(), r.Change, r.Total)
			fmt.Printf("  %-34s %12s %8s %14s\n", "detector", "delay", "windows", "before change")
			for _, n := range names {
				before := r.Before[n]
				d, ok := r.Delay(n)
				if !ok && before == 0 {
					continue
				}
				ds, ws := "-", "-"
				if ok {
					ds, ws = strconv.Itoa(d), fmt.Sprintf("%.1f", float64(d)/float64(r.Window))
				}
				fmt.Printf("  %-34s %12s %8s %14d\n", n, ds, ws, before)
			}
		}
	}
	for i := range min(*stationary, len(ss)) {
		t0 := time.Now()
		r, err := driftsim.Run(driftsim.Config{Kind: driftsim.Stationary, Seed: ss[i], Window: *window})
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-drift:", err)
			os.Exit(1)
		}
		fmt.Printf("\nstationary, seed %d (%.1f s): %d interactions\n", ss[i], time.Since(t0).Seconds(), r.Total)
		slices.Sort(names)
		for _, n := range names {
			fmt.Printf("  %-34s %6d alerts  %8.2f per million\n", n, r.Alerts[n], float64(r.Alerts[n])*1e6/float64(r.Total))
		}
	}
}
