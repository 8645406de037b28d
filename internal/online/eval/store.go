package eval

import "github.com/streamrec/streamrec/internal/cache"

// Deltas appends incs to dst as the shared window store's increments
// (cache.Store.ApplyWindows applies them with the offsets they cover).
func Deltas(dst []cache.WindowDelta, incs []Increment) []cache.WindowDelta {
	for _, in := range incs {
		dst = append(dst, cache.WindowDelta{Kind: byte(in.Window.Kind), Index: in.Window.Index, Field: in.Field,
			Delta: in.Delta, Distinct: in.Distinct, Member: in.Video})
	}
	return dst
}
