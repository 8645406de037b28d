package kuairec

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// spanStartMS is 2020-07-05 00:00 UTC+8, the start of KuaiRec's log.
const spanStartMS = 1593878400000

func TestGlobalOrderMatchesStableSort(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, span := range []int64{10, 1e6, 1 << 62} {
		m := &Interactions{}
		n := 5000
		for range n {
			m.User = append(m.User, uint32(r.IntN(50)))
			t := spanStartMS + r.Int64N(span)
			if span == 1<<62 {
				t = r.Int64N(span) - span/2 // too wide for the packed key: fallback path
			}
			m.TimeMS = append(m.TimeMS, t)
		}
		got := globalOrder(m)
		want := make([]uint32, n)
		for i := range want {
			want[i] = uint32(i)
		}
		slices.SortStableFunc(want, func(a, b uint32) int {
			if c := cmpInt64(m.TimeMS[a], m.TimeMS[b]); c != 0 {
				return c
			}
			return int(m.User[a]) - int(m.User[b])
		})
		if !slices.Equal(got, want) {
			t.Errorf("span %d: radix order differs from stable sort", span)
		}
	}
}
