package eval

import "slices"

// Windows applies increments in process: the reference the shared store is
// checked against, and the aggregate of a single evaluator.
type Windows struct {
	fields map[WindowKey]map[string]int64
	sets   map[WindowKey]map[string]map[uint32]struct{}
}

// NewWindows returns empty windows.
func NewWindows() *Windows {
	return &Windows{fields: map[WindowKey]map[string]int64{}, sets: map[WindowKey]map[string]map[uint32]struct{}{}}
}

// Apply adds incs.
func (w *Windows) Apply(incs []Increment) {
	for _, in := range incs {
		if in.Distinct {
			m := w.sets[in.Window]
			if m == nil {
				m = map[string]map[uint32]struct{}{}
				w.sets[in.Window] = m
			}
			set := m[in.Field]
			if set == nil {
				set = map[uint32]struct{}{}
				m[in.Field] = set
			}
			set[in.Video] = struct{}{}
			continue
		}
		m := w.fields[in.Window]
		if m == nil {
			m = map[string]int64{}
			w.fields[in.Window] = m
		}
		m[in.Field] += in.Delta
	}
}

// Get is a field of a window: the sum of its increments, or for a distinct
// field the number of distinct members.
func (w *Windows) Get(k WindowKey, field string) int64 {
	if set, ok := w.sets[k][field]; ok {
		return int64(len(set))
	}
	return w.fields[k][field]
}

// Keys are the windows of kind that have any field, in index order.
func (w *Windows) Keys(kind WindowKind) []WindowKey {
	var out []WindowKey
	seen := map[WindowKey]bool{}
	for k := range w.fields {
		if k.Kind == kind && !seen[k] {
			out, seen[k] = append(out, k), true
		}
	}
	for k := range w.sets {
		if k.Kind == kind && !seen[k] {
			out, seen[k] = append(out, k), true
		}
	}
	slices.SortFunc(out, func(a, b WindowKey) int { return int(a.Index - b.Index) })
	return out
}

// Fields are the non-distinct fields of window k.
func (w *Windows) Fields(k WindowKey) map[string]int64 { return w.fields[k] }
