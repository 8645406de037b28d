package drift

import (
	"math"
	"math/rand/v2"
	"testing"
)

type detector interface{ Add(float64) Direction }

// firstAlarm feeds n samples of gen and returns the index and direction of
// the first alarm at or after from (-1 when none), and the alarms before from.
func firstAlarm(d detector, n, from int, gen func(i int) float64) (int, Direction, int) {
	early := 0
	for i := range n {
		if dir := d.Add(gen(i)); dir != None {
			if i < from {
				early++
				continue
			}
			return i, dir, early
		}
	}
	return -1, None, early
}

func TestDetectorsSeeAStepInBothDirections(t *testing.T) {
	const change = 5000
	for _, c := range []struct {
		name     string
		before   float64
		after    float64
		want     Direction
		maxDelay int
	}{
		{"error rises", 0.40, 0.55, Up, 3000},
		{"hit rate falls", 0.30, 0.15, Down, 3000},
	} {
		for _, mk := range []struct {
			kind string
			new  func() detector
		}{
			{"page-hinkley", func() detector {
				sd := math.Sqrt(c.before * (1 - c.before))
				d, _ := NewPageHinkley(PageHinkleyConfig{Scale: 10 * sd})
				return d
			}},
			{"adwin", func() detector { d, _ := NewADWIN(ADWINConfig{}); return d }},
		} {
			r := rand.New(rand.NewPCG(1, 2))
			gen := func(i int) float64 {
				p := c.before
				if i >= change {
					p = c.after
				}
				if r.Float64() < p { // a Bernoulli stream, as the hit indicator
					return 1
				}
				return 0
			}
			at, dir, early := firstAlarm(mk.new(), 20000, change, gen)
			if early != 0 || at < 0 || dir != c.want || at-change > c.maxDelay {
				t.Errorf("%s, %s: alarms before the change %d; first after it at +%d (%v), want %v within %d",
					c.name, mk.kind, early, at-change, dir, c.want, c.maxDelay)
			} else {
				t.Logf("%s, %s: detected %v after %d samples", c.name, mk.kind, dir, at-change)
			}
		}
	}
}

func TestDetectorsQuietOnAStationaryStream(t *testing.T) {
	// |N(0.5, 0.3)| has a standard deviation of about 0.29.
	ph, _ := NewPageHinkley(PageHinkleyConfig{Scale: 10 * 0.29})
	ad, _ := NewADWIN(ADWINConfig{})
	r := rand.New(rand.NewPCG(3, 4))
	for _, d := range []detector{ph, ad} {
		alarms := 0
		for range 200000 {
			if d.Add(math.Abs(r.NormFloat64()*0.3+0.5)) != None { // an absolute-error-like stream
				alarms++
			}
		}
		if alarms != 0 {
			t.Errorf("%T: %d false alarms in 200,000 stationary samples", d, alarms)
		}
	}
}

func TestDetectorsDoNotAllocate(t *testing.T) {
	ph, _ := NewPageHinkley(PageHinkleyConfig{})
	ad, _ := NewADWIN(ADWINConfig{})
	r := rand.New(rand.NewPCG(5, 6))
	for range 100000 { // fill the histogram's rows
		ad.Add(r.Float64())
	}
	for _, d := range []detector{ph, ad} {
		if a := testing.AllocsPerRun(10000, func() { d.Add(r.Float64()) }); a != 0 {
			t.Errorf("%T: %v allocations per sample", d, a)
		}
	}
	ref, _ := NewReference(randSample(r, 1000, 0), 10)
	h := ref.NewHistogram()
	if a := testing.AllocsPerRun(1000, func() { h.Add(r.Float64()); _ = h.PSI(); _ = h.JS() }); a != 0 {
		t.Errorf("histogram: %v allocations per sample", a)
	}
}

func TestADWINWindowShrinksAtTheChange(t *testing.T) {
	ad, _ := NewADWIN(ADWINConfig{})
	for i := range 10000 {
		x := 0.0
		if i >= 8000 {
			x = 1
		}
		ad.Add(x)
	}
	if w := ad.Width(); w > 3000 || ad.Mean() < 0.5 {
		t.Errorf("after a step at 8,000 of 10,000: width %d, mean %.3f", w, ad.Mean())
	}
}

func TestConfigsRejectNonsense(t *testing.T) {
	if _, err := NewPageHinkley(PageHinkleyConfig{Alpha: 2}); err == nil {
		t.Error("alpha 2 accepted")
	}
	if _, err := NewADWIN(ADWINConfig{Delta: 1}); err == nil {
		t.Error("delta 1 accepted")
	}
	if _, err := NewReference([]float64{1, 2, 3}, 10); err == nil {
		t.Error("a 3-sample reference accepted for 10 bins")
	}
	if ref, err := NewReference(make([]float64, 100), 10); err != nil || len(ref.Edges) != 1 || ref.Share[0] != 1 {
		t.Errorf("a constant reference: %+v, %v (want one edge, all in the first bin)", ref, err)
	}
}

func randSample(r *rand.Rand, n int, shift float64) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = r.NormFloat64() + shift
	}
	return xs
}

func TestPSIAndJS(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	ref, err := NewReference(randSample(r, 20000, 0), DefaultBins)
	if err != nil {
		t.Fatal(err)
	}
	if len(ref.Edges) != 9 || math.Abs(ref.Share[0]-0.1) > 0.001 {
		t.Fatalf("reference %+v", ref)
	}
	same, shifted := ref.NewHistogram(), ref.NewHistogram()
	for _, x := range randSample(r, 20000, 0) {
		same.Add(x)
	}
	for _, x := range randSample(r, 20000, 0.5) {
		shifted.Add(x)
	}
	if p, j := same.PSI(), same.JS(); p > 0.01 || j > 0.05 {
		t.Errorf("same distribution: PSI %.4f, JS %.4f", p, j)
	}
	if p, j := shifted.PSI(), shifted.JS(); p < 0.2 || j < 0.1 {
		t.Errorf("shifted by half a standard deviation: PSI %.4f, JS %.4f", p, j)
	}
	// By hand: two bins, reference 50/50, current 80/20.
	hand := &Reference{Edges: []float64{0}, Share: []float64{0.5, 0.5}}
	h := hand.NewHistogram()
	for i := range 10 {
		if i < 8 {
			h.Add(-1)
		} else {
			h.Add(1)
		}
	}
	wantPSI := (0.8-0.5)*math.Log(0.8/0.5) + (0.2-0.5)*math.Log(0.2/0.5)
	m1, m2 := 0.65, 0.35
	wantJS := math.Sqrt(0.5*0.8*math.Log2(0.8/m1) + 0.5*0.5*math.Log2(0.5/m1) + 0.5*0.2*math.Log2(0.2/m2) + 0.5*0.5*math.Log2(0.5/m2))
	if math.Abs(h.PSI()-wantPSI) > 1e-12 || math.Abs(h.JS()-wantJS) > 1e-12 {
		t.Errorf("hand example: PSI %v (want %v), JS %v (want %v)", h.PSI(), wantPSI, h.JS(), wantJS)
	}
	if e := ref.NewHistogram(); !math.IsNaN(e.PSI()) || !math.IsNaN(e.JS()) {
		t.Error("an empty histogram has a PSI")
	}
}

func BenchmarkPageHinkley(b *testing.B) {
	d, _ := NewPageHinkley(PageHinkleyConfig{})
	r := rand.New(rand.NewPCG(1, 1))
	xs := randSample(r, 4096, 0)
	b.ReportAllocs()
	for i := range b.N {
		d.Add(xs[i&4095])
	}
}

func BenchmarkADWIN(b *testing.B) {
	d, _ := NewADWIN(ADWINConfig{})
	r := rand.New(rand.NewPCG(1, 1))
	xs := randSample(r, 4096, 0)
	b.ReportAllocs()
	for i := range b.N {
		d.Add(xs[i&4095])
	}
}

func BenchmarkHistogramAdd(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	ref, _ := NewReference(randSample(r, 10000, 0), DefaultBins)
	h := ref.NewHistogram()
	xs := randSample(r, 4096, 0)
	b.ReportAllocs()
	for i := range b.N {
		h.Add(xs[i&4095])
	}
}

// BenchmarkStationaryFalseAlarms: false alarms per million samples of a
// stationary Bernoulli(0.3) hit indicator (Page-Hinkley with Scale = 10 sd),
// reported as alarms/M. Run with -benchtime 10000000x for a long stream.
func BenchmarkStationaryFalseAlarms(b *testing.B) {
	ph, _ := NewPageHinkley(PageHinkleyConfig{Scale: 10 * math.Sqrt(0.3*0.7)})
	ad, _ := NewADWIN(ADWINConfig{})
	r := rand.New(rand.NewPCG(9, 9))
	var nph, nad int
	for range b.N {
		x := 0.0
		if r.Float64() < 0.3 {
			x = 1
		}
		if ph.Add(x) != None {
			nph++
		}
		if ad.Add(x) != None {
			nad++
		}
	}
	b.ReportMetric(float64(nph)/float64(b.N)*1e6, "ph-alarms/M")
	b.ReportMetric(float64(nad)/float64(b.N)*1e6, "adwin-alarms/M")
}

// ScaleSD scales by the warm-up's deviation: the same stream, multiplied by
// any noise size, alarms at the same sample, and a step of 5 deviations
// after the warm-up is seen within 10 samples.
func TestPageHinkleyScaleSD(t *testing.T) {
	first := -1
	for _, sd := range []float64{0.001, 1, 1000} {
		p, err := NewPageHinkley(PageHinkleyConfig{Lambda: 5, WarmUp: 20, ScaleSD: 3})
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(9, 9))
		at := -1
		for i := range 60 {
			x := r.NormFloat64()
			if i >= 30 {
				x += 5
			}
			if p.Add(x*sd) != None {
				at = i
				break
			}
		}
		if at < 30 || at >= 40 {
			t.Errorf("noise sd %v: first alarm at sample %d, want the step at 30 seen within 10", sd, at)
		}
		if first >= 0 && at != first {
			t.Errorf("noise sd %v: alarm at %d, with sd 0.001 at %d: not scale-free", sd, at, first)
		}
		first = at
	}
	if _, err := NewPageHinkley(PageHinkleyConfig{WarmUp: 2, ScaleSD: 3}); err == nil {
		t.Error("ScaleSD with a warm-up of 2 was accepted")
	}
}
