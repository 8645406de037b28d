package towers

import (
	"fmt"
	"image/color"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Curve is one model's training history, labelled for a plot.
type Curve struct {
	Label   string
	History History
}

// PlotTraining draws the training curves and writes a PNG of width x height
// pixels to w: the training MSE over windows of rows (History.Points) against
// the rows trained, and the validation MSE at the end of each epoch (dashed),
// one colour per curve. Histories without points are drawn per epoch.
func PlotTraining(w io.Writer, title string, curves []Curve, width, height int) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "rows trained (millions)"
	p.Y.Label.Text = "MSE (watch ratio)"
	p.Add(plotter.NewGrid())
	colors := []color.Color{
		color.RGBA{R: 31, G: 119, B: 180, A: 255},
		color.RGBA{R: 214, G: 39, B: 40, A: 255},
		color.RGBA{R: 44, G: 160, B: 44, A: 255},
		color.RGBA{R: 148, G: 103, B: 189, A: 255},
	}
	for ci, c := range curves {
		var tr, va plotter.XYs
		for _, pt := range c.History.Points {
			tr = append(tr, plotter.XY{X: float64(pt.Samples) / 1e6, Y: pt.TrainMSE})
		}
		var rows int64
		for _, e := range c.History.Epochs {
			rows += e.Samples
			if len(c.History.Points) == 0 {
				tr = append(tr, plotter.XY{X: float64(rows) / 1e6, Y: e.TrainMSE})
			}
			if !math.IsNaN(e.ValMSE) {
				va = append(va, plotter.XY{X: float64(rows) / 1e6, Y: e.ValMSE})
			}
		}
		col := colors[ci%len(colors)]
		for _, s := range []struct {
			xy     plotter.XYs
			suffix string
			dashed bool
		}{{tr, "train", false}, {va, "validation", true}} {
			if len(s.xy) == 0 {
				continue
			}
			l, pts, err := plotter.NewLinePoints(s.xy)
			if err != nil {
				return fmt.Errorf("plotting %s: %w", c.Label, err)
			}
			l.Color, pts.Color = col, col
			pts.Shape = draw.CircleGlyph{}
			if !s.dashed {
				pts.Radius = vg.Points(1)
			}
			if s.dashed {
				l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			}
			p.Add(l, pts)
			p.Legend.Add(c.Label+" "+s.suffix, l, pts)
		}
	}
	p.Legend.Top = true
	img := vgimg.New(vg.Length(width)*vg.Inch/96, vg.Length(height)*vg.Inch/96)
	p.Draw(draw.New(img))
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("writing PNG: %w", err)
	}
	return nil
}
