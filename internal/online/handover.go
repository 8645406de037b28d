package online

import (
	"math"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/stream"
	"github.com/streamrec/streamrec/internal/towers"
)

// OfflineVectors are a model version's offline user vectors, as training
// left them (cache.OfflineUsers, never written online): the base every user
// is re-materialised from on a version switch or a rollback. Vectors are in
// the serving form (towers.UserEmbedding of a zero residual), as the
// ingestor publishes them.
type OfflineVectors interface {
	Offline(uid uint32) (emb []float32, bias float32, ok bool)
}

// OfflineTable is OfflineVectors over a version's cache.OfflineUsers, held
// in memory: 4*(dim+1) bytes and a map entry a user (7,176 users at dim 64:
// about 2 MB).
type OfflineTable struct {
	dim int
	row map[uint32]int32
	u   cache.OfflineUsers
}

// NewOfflineTable indexes u; u's slices are kept, not copied.
func NewOfflineTable(u cache.OfflineUsers) *OfflineTable {
	t := &OfflineTable{dim: u.Dim, row: make(map[uint32]int32, len(u.IDs)), u: u}
	for i, id := range u.IDs {
		t.row[id] = int32(i)
	}
	return t
}

// Offline implements OfflineVectors; the slice is read-only.
func (t *OfflineTable) Offline(uid uint32) ([]float32, float32, bool) {
	i, ok := t.row[uid]
	if !ok {
		return nil, 0, false
	}
	return t.u.Vectors[int(i)*t.dim : (int(i)+1)*t.dim], t.u.Biases[i], true
}

// Len is the number of users.
func (t *OfflineTable) Len() int { return len(t.row) }

// TrainedThrough is what a model version was trained on, from its metadata:
// the rows that came from the KuaiRec files are the events strictly before
// CutMs (0: no time rule), and the rows that came from the interactions log
// (a retrain from the log) are, per partition, the offsets up to and
// including Offsets[partition], except the events of the Excluded sources
// (a bit per stream.Source: the retrain leaves simulator events out by
// default).
type TrainedThrough struct {
	CutMs    int64
	Offsets  map[int32]int64
	Excluded uint8
}

// Covers reports whether the version trained on an event: such an event is
// never applied on top of the version (it would count twice). An event
// published live with an event time before the cut (a phone that was offline
// since before the training) is taken as trained on too: the version's
// metadata cannot tell it from a replayed KuaiRec row.
// An event of unknown source (0: a ring entry of a format-2 state) at or
// before the trained offset is taken as trained on.
func (t TrainedThrough) Covers(partition int32, offset, eventTimeMs int64, source uint8) bool {
	if off, ok := t.Offsets[partition]; ok && offset <= off && (source == 0 || source > 7 || t.Excluded&(1<<source) == 0) {
		return true
	}
	return t.CutMs > 0 && eventTimeMs < t.CutMs
}

// TrainedThroughOf reads a version's TrainedThrough from its metadata: the
// cut ("cut_ms"; without a cut the whole KuaiRec log was used, so the cut is
// the last training event's time + 1 ms when the version records it) and
// the log offsets (ModelMeta.TrainedOffsets).
func TrainedThroughOf(meta cache.ModelMeta) TrainedThrough {
	t := TrainedThrough{Offsets: meta.TrainedOffsets}
	for _, name := range meta.TrainedExcludedSources {
		if src, err := stream.ParseSource(name); err == nil {
			t.Excluded |= 1 << uint8(src)
		}
	}
	if c, ok := meta.Calibration.Extra[towers.MetaCutMS]; ok && c > 0 {
		t.CutMs = int64(c)
	} else if l, ok := meta.Calibration.Extra[towers.MetaLastTrainMS]; ok && l > 0 {
		t.CutMs = int64(l) + 1
	}
	return t
}

// step runs one online SGD step of the user's state on an event (the dense
// tower's too in dense mode), at the learning rate times factor, and
// returns |prediction before the step - capped target|; ok is false for a
// video without an embedding (no step). Called with u.mu held.
func (u *Updater) step(s *UserState, videoID uint32, watchRatio float32, factor float32) (absErr float64, ok bool) {
	m, p := u.modelOf(s.UserID)
	item, _, ok := m.Items.Item(videoID)
	if !ok {
		return 0, false
	}
	dense, tuned := s.Base, false
	if d := m.Dense; d != nil && d.Dense(u.denseBuf, s.Base, s.UserID) {
		dense, tuned = u.denseBuf, true
	}
	params := *p
	params.LR *= factor
	pred := towers.OnlineStep(s.Vec, dense, item, watchRatio, 1, params)
	y := watchRatio
	if c := p.TargetCap; c > 0 && y > c {
		y = c
	}
	if tuned {
		// The same loss's gradient with respect to the dense input
		// (OnlineStep's formula), back-propagated into the tower.
		g, r := u.gradBuf, 2*(pred-y)
		last := len(g) - 1
		for j := 0; j < last; j++ {
			g[j] = r * p.Scale * item[j]
		}
		g[last] = r
		m.Dense.Step(g)
	}
	s.Applied++
	return math.Abs(float64(pred - y)), true
}

// handOver re-applies, on a state just re-based on the current version's
// offline vector, the events of its ring that the version did not train on,
// in their input order (oldest first), as if the updater had run on this
// version since then. The ring bounds what can be re-applied: a full ring
// whose oldest event the version did not train on may have lost older ones
// that it did not train on either (counted as truncated). The learning-rate
// schedule's factor is not re-applied (the ring does not keep message
// times): re-applied steps run at the base rate. Called with u.mu held.
func (u *Updater) handOver(s *UserState) {
	m, _ := u.modelOf(s.UserID)
	tt := m.Trained
	if len(s.Ring) == RingSize && !tt.Covers(s.Pos.Partition, s.Ring[0].Offset, s.Ring[0].EventTimeMs, s.Ring[0].Source) {
		u.handoverTruncated.Add(1)
	}
	for _, e := range s.Ring {
		if tt.Covers(s.Pos.Partition, e.Offset, e.EventTimeMs, e.Source) {
			continue
		}
		// Re-applied steps are not prequential: kept out of AbsError.
		if _, ok := u.step(s, e.VideoID, e.WatchRatio, 1); ok {
			u.handoverReplayed.Add(1)
		}
	}
}
