package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/streamrec/streamrec/internal/api"
	"github.com/streamrec/streamrec/internal/config"
)

// runReport is `replay report --from URL --out DIR`: the API's online series
// and drift statistics rendered to PNG (gonum/plot), for reports.
func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "http://127.0.0.1:8080", "base URL of the API (with --eval)")
	out := fs.String("out", "", "folder for the PNG files (required)")
	limit := fs.Int("limit", 1000, "the latest windows to plot (1..1000)")
	width := fs.Int("width", 1000, "image width in pixels")
	height := fs.Int("height", 500, "image height in pixels")
	config.Usage(fs, "replay report: the API's online series and drift statistics as PNG charts (quality.png, twin.png, latency.png, sources.png, drift.png)")
	if err := config.Parse(fs, args, os.LookupEnv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &config.UsageError{Err: err}
	}
	switch {
	case *out == "":
		return config.Usagef("--out is required")
	case !strings.HasPrefix(*from, "http://") && !strings.HasPrefix(*from, "https://"):
		return config.Usagef("--from %q: want an http:// or https:// URL", *from)
	case *limit < 1 || *limit > 1000 || *width < 100 || *height < 100:
		return config.Usagef("--limit %d (1..1000), --width %d and --height %d (>= 100)", *limit, *width, *height)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second}
	base := strings.TrimRight(*from, "/")
	var series api.OnlineSeries
	if _, err := getJSON(ctx, client, fmt.Sprintf("%s/v1/metrics/online?limit=%d", base, *limit), "report", &series); err != nil {
		return err
	}
	var rep api.DriftReport
	if _, err := getJSON(ctx, client, base+"/v1/drift", "report", &rep); err != nil {
		fmt.Fprintf(stderr, "replay report: no drift statistics (%v); drift.png is skipped\n", err)
		rep.Detectors = nil
	}
	sources := map[string]api.OnlineSeries{}
	for _, src := range []string{"replay", "api", "simulator"} {
		var s api.OnlineSeries
		if _, err := getJSON(ctx, client, fmt.Sprintf("%s/v1/metrics/online?limit=%d&metric=interactions&source=%s", base, *limit, src), "report", &s); err != nil {
			return err
		}
		sources[src] = s
	}
	w, h := vg.Length(*width)*vg.Inch/96, vg.Length(*height)*vg.Inch/96
	t0 := int64(0)
	if len(series.Points) > 0 && series.Points[0].StartMs != nil {
		t0 = *series.Points[0].StartMs
	}
	markers := make([]float64, 0, len(series.Markers))
	for _, m := range series.Markers {
		markers = append(markers, float64(m.AtMs-t0)/60000)
	}
	winS := float64(series.WindowMs) / 1000
	if winS <= 0 {
		winS = 60
	}
	charts := []struct {
		file, title, ylabel string
		lines               map[string]plotter.XYs
	}{
		{"quality.png", "Online quality per window (observed)", "", lines(series, t0, 1, "precision_2", "ndcg_graded", "hit_rate")},
		{"twin.png", "Live model vs frozen twin: mean absolute error", "watch ratio", lines(series, t0, 1, "live_abs_err", "twin_abs_err", "live_twin_abs_err_ratio")},
		{"latency.png", "Feedback-to-effect latency", "ms", lines(series, t0, 1, "feedback_to_effect_p50_ms", "feedback_to_effect_p99_ms")},
		{"sources.png", "Interactions/s by source", "interactions/s", func() map[string]plotter.XYs {
			m := map[string]plotter.XYs{}
			for src, s := range sources {
				if xy := lines(s, t0, 1/winS, "interactions")["interactions"]; len(xy) > 0 {
					m[src] = xy
				}
			}
			return m
		}()},
	}
	written := 0
	for _, c := range charts {
		p := plot.New()
		p.Title.Text = c.title
		p.X.Label.Text = fmt.Sprintf("minutes since %s", time.UnixMilli(t0).UTC().Format(time.RFC3339))
		p.Y.Label.Text = c.ylabel
		p.Add(plotter.NewGrid())
		if err := addLines(p, c.lines); err != nil {
			return err
		}
		addMarkers(p, markers)
		path := filepath.Join(*out, c.file)
		if err := p.Save(w, h, path); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		written++
		fmt.Fprintf(stdout, "report: %s (%d series, %d alert markers)\n", path, len(c.lines), len(markers))
	}
	if len(rep.Detectors) > 0 {
		p := plot.New()
		p.Title.Text = "Drift detectors: statistic / threshold (1 = alarm)"
		vals := make(plotter.Values, len(rep.Detectors))
		names := make([]string, len(rep.Detectors))
		for i, d := range rep.Detectors {
			if d.Threshold > 0 {
				vals[i] = math.Max(0, d.Statistic) / d.Threshold
			}
			names[i] = fmt.Sprintf("%s (%d)", d.Name, d.Alerts)
		}
		bars, err := plotter.NewBarChart(vals, vg.Points(8))
		if err != nil {
			return err
		}
		bars.Horizontal = true
		bars.Color = color.RGBA{R: 21, G: 101, B: 192, A: 255}
		p.Add(bars)
		p.NominalY(names...)
		p.X.Label.Text = "statistic / threshold; in brackets: alert episodes"
		path := filepath.Join(*out, "drift.png")
		if err := p.Save(w, h, path); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		written++
		fmt.Fprintf(stdout, "report: %s (%d detectors)\n", path, len(rep.Detectors))
	}
	fmt.Fprintf(stdout, "report: %d charts from %d windows of %s\n", written, len(series.Points), base)
	return nil
}

// lines are the named metrics of s as (minutes since t0, value * scale).
func lines(s api.OnlineSeries, t0 int64, scale float64, metrics ...string) map[string]plotter.XYs {
	out := map[string]plotter.XYs{}
	for _, m := range metrics {
		var xy plotter.XYs
		for _, p := range s.Points {
			v, ok := p.Values[m]
			if !ok || p.StartMs == nil {
				continue
			}
			xy = append(xy, plotter.XY{X: float64(*p.StartMs-t0) / 60000, Y: v * scale})
		}
		if len(xy) > 0 {
			out[m] = xy
		}
	}
	return out
}

var reportColors = []color.Color{
	color.RGBA{R: 21, G: 101, B: 192, A: 255}, color.RGBA{R: 46, G: 125, B: 50, A: 255},
	color.RGBA{R: 239, G: 108, B: 0, A: 255}, color.RGBA{R: 106, G: 27, B: 154, A: 255},
}

func addLines(p *plot.Plot, ls map[string]plotter.XYs) error {
	names := make([]string, 0, len(ls))
	for n := range ls {
		names = append(names, n)
	}
	// A stable order, so that colours do not change between reports.
	for i := 1; i < len(names); i++ {
		for j := i; j > 0 && names[j] < names[j-1]; j-- {
			names[j], names[j-1] = names[j-1], names[j]
		}
	}
	for i, n := range names {
		l, pts, err := plotter.NewLinePoints(ls[n])
		if err != nil {
			return err
		}
		c := reportColors[i%len(reportColors)]
		l.Color, pts.Color, pts.Shape = c, c, draw.CircleGlyph{}
		pts.Radius = vg.Points(2)
		p.Add(l, pts)
		p.Legend.Add(n, l)
	}
	p.Legend.Top = true
	return nil
}

// addMarkers draws each alert as a vertical red line across the plot.
func addMarkers(p *plot.Plot, xs []float64) {
	if len(xs) == 0 {
		return
	}
	ymin, ymax := p.Y.Min, p.Y.Max
	if ymax <= ymin {
		ymin, ymax = 0, 1
	}
	for _, x := range xs {
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: ymin}, {X: x, Y: ymax}})
		if err != nil {
			continue
		}
		l.Color = color.RGBA{R: 198, G: 40, B: 40, A: 255}
		l.Width = vg.Points(1.5)
		p.Add(l)
	}
}
