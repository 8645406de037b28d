package eval

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkJoin: join plus metric updates per interaction, 7,176 users each
// served a list of 25 every 20 interactions (no scorer: the prequential
// ranks' scan is measured by the index benchmarks of internal/cache).
// Reported as ns/op per interaction; 1e9/ns is interactions/s on one core.
func BenchmarkJoin(b *testing.B) {
	e, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	const users = 7176
	slots := make([][]Slot, 64)
	for i := range slots {
		slots[i] = make([]Slot, 25)
		for j := range slots[i] {
			slots[i][j] = Slot{Video: uint32(r.IntN(10728)), Predicted: 1}
		}
	}
	w := NewWindows()
	now := int64(1_700_000_000_000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		now += 1
		u := uint32(r.IntN(users))
		if i%20 == 0 {
			e.AddList(List{User: u, ServedMS: now, Slots: slots[i%len(slots)]})
		}
		e.AddInteraction(Interaction{User: u, Video: uint32(r.IntN(10728)), EventID: uint64(i + 1), WatchRatio: 1, ProducedMS: now, Source: "replay"})
		if i%1000 == 0 {
			w.Apply(e.Advance(now))
		}
	}
	w.Apply(e.Advance(now + 1e9))
}
