package eval

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/stream"
)

// WindowStore reads the shared windows (cache.Store implements it).
type WindowStore interface {
	Window(ctx context.Context, group string, kind byte, index int64) (map[string]int64, error)
}

// Replay computes, in process, the windows of partitions [0, len(ends)) of
// topic up to offsets ends (exclusive), from their first offset, with the
// lists of src: the reference a store's windows must equal.
func Replay(ctx context.Context, brokers []string, topic string, ends []int64, cfg Config, src ListSource) (*Windows, error) {
	w := NewWindows()
	for p, end := range ends {
		pe, err := NewPartition(int32(p), cfg, src, 0)
		if err != nil {
			return nil, err
		}
		rd := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxWait: 50 * time.Millisecond})
		var ev stream.Event
		for off := int64(0); off < end; off++ {
			m, err := rd.ReadMessage(ctx)
			if err != nil {
				rd.Close()
				return nil, fmt.Errorf("reading partition %d at %d: %w", p, off, err)
			}
			var incs []Increment
			if stream.DecodeEvent(m.Value, &ev) == nil {
				incs, err = pe.Process(ctx, m.Offset, Interaction{User: ev.UserID, Video: ev.VideoID, EventID: ev.EventID,
					WatchRatio: ev.WatchRatio, ProducedMS: ev.ProducedAtUs / 1000, Source: ev.Source.String()})
				if err != nil {
					rd.Close()
					return nil, err
				}
			}
			w.Apply(incs)
		}
		rd.Close()
	}
	return w, nil
}

// Diff compares w with group's windows in st, every window w has: it returns
// one line per differing field and the number of windows compared.
func (w *Windows) Diff(ctx context.Context, st WindowStore, group string) ([]string, int, error) {
	var diffs []string
	n := 0
	for _, kind := range []WindowKind{ByTime, ByCount} {
		for _, k := range w.Keys(kind) {
			got, err := st.Window(ctx, group, byte(kind), k.Index)
			if err != nil {
				return nil, n, err
			}
			want := maps.Clone(w.Fields(k))
			if want == nil {
				want = map[string]int64{}
			}
			for f, set := range w.sets[k] {
				want[f] = int64(len(set))
			}
			for _, f := range slices.Sorted(maps.Keys(want)) {
				if got[f] != want[f] {
					diffs = append(diffs, fmt.Sprintf("window %c%d %s: store %d, in process %d", kind, k.Index, f, got[f], want[f]))
				}
			}
			for _, f := range slices.Sorted(maps.Keys(got)) {
				if _, ok := want[f]; !ok {
					diffs = append(diffs, fmt.Sprintf("window %c%d %s: store %d, in process absent", kind, k.Index, f, got[f]))
				}
			}
			n++
		}
	}
	return diffs, n, nil
}

// Total sums field over w's time windows.
func (w *Windows) Total(field string) int64 {
	var s int64
	for _, k := range w.Keys(ByTime) {
		s += w.Get(k, field)
	}
	return s
}
