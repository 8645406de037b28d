package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/streamrec/streamrec/internal/api"
)

// simWindow accumulates the exact metrics of the lists served in one window.
type simWindow struct {
	Index                        int64
	StartMS                      int64
	VirtualFrom, VirtualTo       int64
	Lists, Fallbacks, TwinLists  int
	Interactions                 int
	Rewatched                    int     // live slots serving a video the user had watched (no gain)
	LiveNDCG, LiveP08, LiveP2    float64 // sums over Lists
	TwinNDCG, TwinP08, TwinP2    float64 // sums over TwinLists
	PairedLiveNDCG, PairedLiveP2 float64 // live sums over the lists the twin also scored
	PairedLiveP08                float64
	// Explored slots (the API's --explore-rate) and the inverse-propensity
	// sums of the twin's precision estimated from them (see addIPS).
	Explored, ExpLists int
	// Per list position: explored slots, the explored lists whose walk
	// reached the position, and the sums y(v) / P(v shown) of the twin's
	// videos shown there and reached (see ips).
	ExpN, Reach []int
	ExpS08      []float64
	ExpS2       []float64
}

func (w *simWindow) grow(k int) {
	for len(w.ExpN) < k {
		w.ExpN, w.Reach = append(w.ExpN, 0), append(w.Reach, 0)
		w.ExpS08, w.ExpS2 = append(w.ExpS08, 0), append(w.ExpS2, 0)
	}
}

// ips is the inverse-propensity estimate of the twin's precision@K from the
// live traffic, the way a log of served lists allows (the simulator's truth is
// not used): for each list logged with exploration and each video v of the
// twin's list that the live list showed at a position i the user's walk
// reached, y(v) / (P(v shown) e_i), where y(v) is 1 for a relevant watch,
// P(v shown) is the logged propensity of a model slot (1 - e) or, for an
// explored slot, about K e / M (any of the K slots may draw v among M
// eligible), and e_i is the share of lists whose walk reached position i (the
// walk is logged, and it does not depend on what an explored slot shows);
// summed over the twin's list, divided by K and averaged over lists.
func (w *simWindow) ips(k int) (p08, p2 float64) {
	if w.ExpLists == 0 {
		return 0, 0
	}
	for i := range w.Reach {
		if w.Reach[i] == 0 {
			continue
		}
		e := float64(w.Reach[i]) / float64(w.ExpLists)
		p08 += w.ExpS08[i] / e
		p2 += w.ExpS2[i] / e
	}
	return p08 / float64(w.ExpLists*k), p2 / float64(w.ExpLists*k)
}

// simWindowOut is one window of the summary (means).
type simWindowOut struct {
	Index         int64 `json:"index"`
	StartMS       int64 `json:"start_ms"`
	VirtualFromMS int64 `json:"virtual_from_ms"`
	VirtualToMS   int64 `json:"virtual_to_ms"`
	Lists         int   `json:"lists"`
	Fallbacks     int   `json:"fallbacks"`
	TwinLists     int   `json:"twin_lists"`
	Interactions  int   `json:"interactions"`
	// RewatchedSlots are the live lists' slots that served a video the user
	// had already watched (scored as no gain: see unwatched).
	RewatchedSlots int     `json:"rewatched_slots"`
	LiveNDCG       float64 `json:"live_ndcg"`
	LiveP08        float64 `json:"live_precision_08"`
	LiveP2         float64 `json:"live_precision_2"`
	TwinNDCG       float64 `json:"twin_ndcg"`
	TwinP08        float64 `json:"twin_precision_08"`
	TwinP2         float64 `json:"twin_precision_2"`
	LiftNDCG       float64 `json:"lift_ndcg"`
	LiftP2         float64 `json:"lift_precision_2"`
	LiftP08        float64 `json:"lift_precision_08"`
	// Explored slots and the inverse-propensity estimate of the twin's
	// precision from them (absent without exploration).
	Explored  int     `json:"explored_slots,omitempty"`
	TwinIPS08 float64 `json:"twin_ips_precision_08,omitempty"`
	TwinIPS2  float64 `json:"twin_ips_precision_2,omitempty"`
}

func (w *simWindow) out() simWindowOut {
	o := simWindowOut{Index: w.Index, StartMS: w.StartMS, VirtualFromMS: w.VirtualFrom, VirtualToMS: w.VirtualTo, Lists: w.Lists,
		Fallbacks: w.Fallbacks, TwinLists: w.TwinLists, Interactions: w.Interactions, RewatchedSlots: w.Rewatched}
	if w.Lists > 0 {
		n := float64(w.Lists)
		o.LiveNDCG, o.LiveP08, o.LiveP2 = w.LiveNDCG/n, w.LiveP08/n, w.LiveP2/n
	}
	if w.TwinLists > 0 {
		n := float64(w.TwinLists)
		o.TwinNDCG, o.TwinP08, o.TwinP2 = w.TwinNDCG/n, w.TwinP08/n, w.TwinP2/n
		// The lift compares live and twin on the same lists.
		o.LiftNDCG = safeDiv(w.PairedLiveNDCG, w.TwinNDCG)
		o.LiftP2 = safeDiv(w.PairedLiveP2, w.TwinP2)
		o.LiftP08 = safeDiv(w.PairedLiveP08, w.TwinP08)
	}
	if w.Explored > 0 {
		o.Explored = w.Explored
		o.TwinIPS08, o.TwinIPS2 = w.ips(len(w.ExpN))
	}
	return o
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// simSummary is the summary of a run (printed, and written with --summary-out).
type simSummary struct {
	Truth          string         `json:"truth"`
	WallSeconds    float64        `json:"wall_seconds"`
	VirtualFromMS  int64          `json:"virtual_from_ms"`
	VirtualToMS    int64          `json:"virtual_to_ms"`
	Speedup        float64        `json:"speedup"`
	Users          int            `json:"users"`
	Lists          int64          `json:"lists"`
	Fallbacks      int64          `json:"fallbacks"`
	Interactions   int64          `json:"interactions"`
	RequestErrors  map[string]int `json:"request_errors"`
	RequestsPerSec float64        `json:"requests_per_second"`
	Windows        []simWindowOut `json:"windows"`
	Total          simWindowOut   `json:"total"`
	// PrefsDriftMS is the generator's preference drift (0: none); Before and
	// After aggregate the windows whose virtual time is entirely before it or
	// after it.
	PrefsDriftMS int64         `json:"prefs_drift_ms,omitempty"`
	Before       *simWindowOut `json:"before_drift,omitempty"`
	After        *simWindowOut `json:"after_drift,omitempty"`
	// Observed are the API's own online metrics over the simulator's
	// windows (lists weighted), beside the exact ones.
	Observed map[string]float64 `json:"observed,omitempty"`
	Probe    *probeResult       `json:"probe,omitempty"`
	// FeedbackToEffect is the API's feedback-to-effect series over the run.
	FeedbackToEffect map[string]float64 `json:"feedback_to_effect,omitempty"`
}

func (s *simulator) summarise(wall time.Duration, from int64, speedup float64, users int) *simSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := &simSummary{Truth: s.tr.Describe(), WallSeconds: wall.Seconds(), VirtualFromMS: from, Speedup: speedup, Users: users,
		Lists: s.lists.Load(), Fallbacks: s.fallbacks.Load(), Interactions: s.interactions.Load(), RequestErrors: s.errs}
	sum.VirtualToMS = from + int64(float64(wall.Milliseconds())*speedup)
	sum.RequestsPerSec = float64(sum.Lists+sum.Interactions) / wall.Seconds()
	idx := make([]int64, 0, len(s.windows))
	for i := range s.windows {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	total := &simWindow{VirtualFrom: math.MaxInt64}
	for _, i := range idx {
		w := s.windows[i]
		if w.Lists == 0 {
			continue
		}
		sum.Windows = append(sum.Windows, w.out())
		total.add(w)
	}
	sum.Total = total.out()
	return sum
}

func (w *simWindow) add(x *simWindow) {
	if w.Lists == 0 && w.Index == 0 {
		w.Index, w.StartMS = x.Index, x.StartMS
	}
	w.VirtualFrom, w.VirtualTo = min(w.VirtualFrom, x.VirtualFrom), max(w.VirtualTo, x.VirtualTo)
	w.Lists += x.Lists
	w.Fallbacks += x.Fallbacks
	w.TwinLists += x.TwinLists
	w.Interactions += x.Interactions
	w.Rewatched += x.Rewatched
	w.LiveNDCG += x.LiveNDCG
	w.LiveP08 += x.LiveP08
	w.LiveP2 += x.LiveP2
	w.TwinNDCG += x.TwinNDCG
	w.TwinP08 += x.TwinP08
	w.TwinP2 += x.TwinP2
	w.PairedLiveNDCG += x.PairedLiveNDCG
	w.PairedLiveP08 += x.PairedLiveP08
	w.PairedLiveP2 += x.PairedLiveP2
	w.Explored += x.Explored
	w.ExpLists += x.ExpLists
	w.grow(len(x.ExpN))
	for i := range x.ExpN {
		w.ExpN[i] += x.ExpN[i]
		w.Reach[i] += x.Reach[i]
		w.ExpS08[i] += x.ExpS08[i]
		w.ExpS2[i] += x.ExpS2[i]
	}
}

// splitByDrift aggregates the windows entirely before and entirely after
// the preference drift.
func (s *simulator) splitByDrift(sum *simSummary) {
	if sum.PrefsDriftMS == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	before, after := &simWindow{VirtualFrom: math.MaxInt64}, &simWindow{VirtualFrom: math.MaxInt64}
	for _, w := range s.windows {
		switch {
		case w.Lists == 0:
		case w.VirtualTo < sum.PrefsDriftMS:
			before.add(w)
		case w.VirtualFrom >= sum.PrefsDriftMS:
			after.add(w)
		}
	}
	if before.Lists > 0 {
		o := before.out()
		sum.Before = &o
	}
	if after.Lists > 0 {
		o := after.out()
		sum.After = &o
	}
}

// observe reads the API's online metrics over the run's windows, once they
// had time to close, weighting each window by its closed lists.
func (s *simulator) observe(ctx context.Context, sum *simSummary) {
	if len(sum.Windows) == 0 {
		return
	}
	first := sum.Windows[0].StartMS
	deadline := time.Now().Add(s.o.ObserveWait)
	var series api.OnlineSeries
	lastLists := -1.0
	for {
		if _, err := getJSON(ctx, s.client, s.o.API+"/v1/metrics/online?limit=1000&since="+strconv.FormatInt(first, 10), s.o.ClientID, &series); err != nil {
			s.log.Warn("the API's online metrics are unavailable: observed metrics not compared", "err", err)
			return
		}
		lists := 0.0
		for _, p := range series.Points {
			lists += p.Values["lists"]
		}
		if (lists == lastLists && lists >= float64(sum.Lists)) || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		lastLists = lists
		time.Sleep(time.Second)
	}
	obs := map[string]float64{}
	weights := map[string]float64{}
	for _, p := range series.Points {
		n := p.Values["lists"]
		for _, m := range []string{"precision_08", "precision_2", "ndcg_graded", "ndcg_2", "hit_rate", "live_twin_abs_err_ratio", "live_twin_topk_ratio"} {
			if v, ok := p.Values[m]; ok {
				obs[m] += v * n
				weights[m] += n
			}
		}
		obs["lists"] += n
		obs["interactions"] += p.Values["interactions"]
	}
	for m, wt := range weights {
		if wt > 0 {
			obs[m] /= wt
		}
	}
	sum.Observed = obs
	f2e := map[string]float64{}
	var n, sumMS float64
	for _, p := range series.Points {
		if c, ok := p.Values["feedback_to_effect_n"]; ok && c > 0 {
			n += c
			sumMS += c * p.Values["feedback_to_effect_ms"]
			f2e["p99_ms_worst_window"] = max(f2e["p99_ms_worst_window"], p.Values["feedback_to_effect_p99_ms"])
		}
	}
	if n > 0 {
		f2e["n"], f2e["mean_ms"] = n, sumMS/n
		sum.FeedbackToEffect = f2e
	}
}

// fullWindows are the first and last windows holding at least half the
// lists of the busiest one (the run's ends are partial windows).
func (sum *simSummary) fullWindows() (first, last *simWindowOut) {
	most := 0
	for _, w := range sum.Windows {
		most = max(most, w.Lists)
	}
	for i := range sum.Windows {
		if w := &sum.Windows[i]; 2*w.Lists >= most {
			if first == nil {
				first = w
			}
			last = w
		}
	}
	return first, last
}

func (sum *simSummary) write(w io.Writer) {
	fmt.Fprintf(w, "sim summary\n")
	fmt.Fprintf(w, "  truth          %s\n", sum.Truth)
	fmt.Fprintf(w, "  run            %.1f s wall; virtual time %s .. %s (speed-up %.0fx); %d users\n", sum.WallSeconds, fmtMs(sum.VirtualFromMS), fmtMs(sum.VirtualToMS), sum.Speedup, sum.Users)
	fmt.Fprintf(w, "  traffic        %d lists (%d fallbacks), %d interactions posted; %.1f requests/s; errors %v\n", sum.Lists, sum.Fallbacks, sum.Interactions, sum.RequestsPerSec, sum.RequestErrors)
	if sum.Total.RewatchedSlots > 0 {
		fmt.Fprintf(w, "  re-served      %d live slots served a video the user had already watched (scored as no gain; the API's exclude_watched lags the updater's flush)\n",
			sum.Total.RewatchedSlots)
	}
	fmt.Fprintf(w, "  %-14s %6s %6s  %-22s %-22s %-22s %s\n", "window", "lists", "twin", "NDCG@K live/twin", "P@K(>=0.8) live/twin", "P@K(>2) live/twin", "lift NDCG, P(>2)")
	row := func(name string, o *simWindowOut) {
		fmt.Fprintf(w, "  %-14s %6d %6d  %.4f / %.4f        %.4f / %.4f        %.4f / %.4f        %.3f, %.3f\n", name, o.Lists, o.TwinLists,
			o.LiveNDCG, o.TwinNDCG, o.LiveP08, o.TwinP08, o.LiveP2, o.TwinP2, o.LiftNDCG, o.LiftP2)
	}
	if first, last := sum.fullWindows(); first != nil {
		row("first", first)
		row("last", last)
	}
	row("all", &sum.Total)
	if sum.Before != nil {
		row("before drift", sum.Before)
	}
	if sum.After != nil {
		row("after drift", sum.After)
	}
	if sum.Observed != nil {
		o := sum.Observed
		fmt.Fprintf(w, "  observed (API) %0.f closed lists, %.0f interactions: precision@K(>=0.8) %.4f (exact %.4f), precision@K(>2) %.4f (exact %.4f), graded NDCG %.4f (exact %.4f)\n",
			o["lists"], o["interactions"], o["precision_08"], sum.Total.LiveP08, o["precision_2"], sum.Total.LiveP2, o["ndcg_graded"], sum.Total.LiveNDCG)
		fmt.Fprintf(w, "                 (observed gains are the watched slots only, and the observed NDCG's ideal is the list's own watched gains; exact: all K slots, against the K best candidates)\n")
	}
	if t := &sum.Total; t.Explored > 0 {
		fmt.Fprintf(w, "  exploration    %d explored slots: the twin's precision@K estimated by inverse propensity from the live traffic: (>=0.8) %.4f (exact %.4f), (>2) %.4f (exact %.4f)\n",
			t.Explored, t.TwinIPS08, t.TwinP08, t.TwinIPS2, t.TwinP2)
		fmt.Fprintf(w, "                 (each twin video the live list showed and the walk reached, weighted by 1 / (P(shown) x the share of walks reaching its position); P of an explored video is approximated by K e / M; positions the walk never reaches, beyond --session-videos, count 0: give the walk a budget of K for a consistent estimate)\n")
	}
	if f := sum.FeedbackToEffect; f != nil {
		fmt.Fprintf(w, "  feedback->effect (API) %.0f interactions seen in a later list: mean %.0f ms; worst window p99 <= %.0f ms\n", f["n"], f["mean_ms"], f["p99_ms_worst_window"])
	}
	if p := sum.Probe; p != nil {
		fmt.Fprintf(w, "  pipeline latency (probe: POST, poll every %v) %d probes: p50 %.1f ms, p99 %.1f ms, max %.1f ms; %d timed out\n", p.Interval, p.N, p.P50MS, p.P99MS, p.MaxMS, p.Timeouts)
	}
}
