package kuairec

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
)

// WatchRatioCap caps watch ratios for the engagement features (KuaiRec's
// watch_ratio reaches ~573 on looped videos; p99 is ~4.8). The same cap is used
// by KuaiRec's own RL environment (KuaiEnv).
const WatchRatioCap = 5.0

// Engagement is the seed's engagement of one interaction, or of a (user, video)
// pair averaged over its views (see Pairs).
type Engagement struct {
	// WatchRatioCapped = min(watch_ratio, WatchRatioCap).
	WatchRatioCapped float64
	// Completion = min(play_duration / video_duration, 1) (0 when the duration
	// is not positive): the share of the video seen at least once.
	Completion float64
	// Replay = max(WatchRatioCapped - 1, 0): how many extra times the video
	// was watched through.
	Replay float64
	// Confidence is the seed's confidence score (see Confidence).
	Confidence float64
}

// Confidence is the seed's confidence score:
//
//	2.0 + 60 * log1p(wrCapped) * (1 + 0.8*completion) * (1 + 0.5*log1p(replay))
//
// It is 2 for a zero watch ratio and grows to ~2+60*1.79*1.8*1.8 ≈ 350 at the cap.
func Confidence(wrCapped, completion, replay float64) float64 {
	return 2.0 + 60*math.Log1p(wrCapped)*(1+0.8*completion)*(1+0.5*math.Log1p(replay))
}

// ComputeEngagement returns the engagement of one interaction.
func ComputeEngagement(playMS, durMS int32, watchRatio float64) Engagement {
	var e Engagement
	e.WatchRatioCapped = min(max(watchRatio, 0), WatchRatioCap)
	if durMS > 0 {
		e.Completion = min(float64(max(playMS, 0))/float64(durMS), 1)
	}
	e.Replay = max(e.WatchRatioCapped-1, 0)
	e.Confidence = Confidence(e.WatchRatioCapped, e.Completion, e.Replay)
	return e
}

// Pair is one (user, video) pair of a matrix with its views aggregated.
type Pair struct {
	User, Video uint32
	Views       int32
	// WatchRatio is the mean raw watch ratio over the views.
	WatchRatio float64
	// Engagement holds the means over the views of WatchRatioCapped,
	// Completion and Replay, and the Confidence of those means.
	Engagement
	// LastMS is the time of the last view (NoTime if none is timed).
	LastMS int64
}

// Pairs aggregates m per (user, video), sorted by user then video. Re-watches
// (several rows of one pair) are averaged; see Pair.
func (m *Interactions) Pairs() []Pair {
	n := m.Len()
	idx := make([]uint32, n)
	keys := make([]uint64, n)
	for i := range n {
		idx[i] = uint32(i)
		keys[i] = uint64(m.User[i])<<32 | uint64(m.Video[i])
	}
	radixSortPairs(keys, idx, 64)
	var out []Pair
	for s := 0; s < n; {
		e := s + 1
		for e < n && keys[e] == keys[s] {
			e++
		}
		p := Pair{User: uint32(keys[s] >> 32), Video: uint32(keys[s]), Views: int32(e - s), LastMS: NoTime}
		var wr, cap_, comp, rep float64
		for _, i := range idx[s:e] {
			en := ComputeEngagement(m.PlayMS[i], m.DurMS[i], m.WatchRatio[i])
			wr += m.WatchRatio[i]
			cap_ += en.WatchRatioCapped
			comp += en.Completion
			rep += en.Replay
			p.LastMS = max(p.LastMS, m.TimeMS[i])
		}
		k := float64(e - s)
		p.WatchRatio = wr / k
		p.WatchRatioCapped, p.Completion, p.Replay = cap_/k, comp/k, rep/k
		p.Confidence = Confidence(p.WatchRatioCapped, p.Completion, p.Replay)
		out = append(out, p)
		s = e
	}
	return out
}

// FeatureMatrix is an encoded, standardised feature matrix with its PCA.
// Row i describes IDs[i] (a user or video id); rows are in ascending id order.
type FeatureMatrix struct {
	IDs []uint32
	// Names are the encoded columns (before PCA), e.g. "tag=11",
	// "log1p(follow_user_num)", "missing(onehot_feat4)". Constant columns are
	// dropped before standardising.
	Names []string
	// Mean and Std standardise an encoded row: z = (x - Mean) / Std.
	Mean, Std []float64
	// Standardised is the n x len(Names) standardised matrix.
	Standardised *mat.Dense
	// Components is len(Names) x Kept: the principal axes kept, each with
	// its largest-magnitude entry positive (a deterministic sign).
	Components *mat.Dense
	// Reduced = Standardised * Components: the PCA features (n x Kept).
	Reduced *mat.Dense
	// Kept is the number of principal components kept; Explained the share of
	// the variance they explain (>= the requested share); Variances all the
	// component variances, descending.
	Kept      int
	Explained float64
	Variances []float64

	index  map[uint32]int
	encode func(id uint32) ([]float64, bool)
}

// Row returns the PCA features of id, or nil if id is not in the matrix.
func (f *FeatureMatrix) Row(id uint32) []float64 {
	i, ok := f.index[id]
	if !ok {
		return nil
	}
	return mat.Row(nil, i, f.Reduced)
}

// Project standardises an encoded row (len(Names)) and projects it on the kept
// components: the features of a user or video that was not in the matrix.
func (f *FeatureMatrix) Project(encoded []float64) []float64 {
	if len(encoded) != len(f.Names) {
		panic(fmt.Sprintf("kuairec: Project: %d values for %d columns", len(encoded), len(f.Names)))
	}
	z := make([]float64, len(encoded))
	for j, x := range encoded {
		z[j] = (x - f.Mean[j]) / f.Std[j]
	}
	out := make([]float64, f.Kept)
	mat.NewVecDense(f.Kept, out).MulVec(f.Components.T(), mat.NewVecDense(len(z), z))
	return out
}

// Features are the user and item feature matrices of a Dataset.
type Features struct {
	Users, Items *FeatureMatrix
}

// FeatureOptions tune BuildFeatures.
type FeatureOptions struct {
	// VarianceKept is the share of variance PCA keeps; 0 means 0.95.
	VarianceKept float64
}

// UserFeatures returns the user feature matrix (PCA features, one row per user
// in ascending id order), building the features with default options.
func (ds *Dataset) UserFeatures() (*FeatureMatrix, error) {
	f, err := ds.features()
	if err != nil {
		return nil, err
	}
	return f.Users, nil
}

// ItemFeatures returns the item feature matrix (see UserFeatures).
func (ds *Dataset) ItemFeatures() (*FeatureMatrix, error) {
	f, err := ds.features()
	if err != nil {
		return nil, err
	}
	return f.Items, nil
}

func (ds *Dataset) features() (*Features, error) {
	ds.featMu.Lock()
	defer ds.featMu.Unlock()
	if ds.feat == nil {
		f, err := BuildFeatures(ds, FeatureOptions{})
		if err != nil {
			return nil, err
		}
		ds.feat = f
	}
	return ds.feat, nil
}

// BuildFeatures encodes, standardises and reduces by PCA the user features
// (user_features.csv) and the item features (item_categories.csv, captions,
// item_daily_features.csv when present, and video durations from the
// matrices). Deterministic for a given Dataset.
//
// User encoding (all 30 columns after user_id): user_active_degree one-hot; the
// three 0/1 flags as is; log1p of follow/fans/friend counts and register_days;
// the four range labels one-hot (the labels are kept separately from the
// counts because they disagree on ~1.7k users); each onehot_featN one-hot over
// its observed values when it has at most 64 of them, else (onehot_feat3 with
// 1,076 values, onehot_feat8 with 340) log1p of the value's frequency; an empty
// cell gives zeros plus a missing(onehot_featN) indicator.
//
// Item encoding: the 31 tags multi-hot; the first-level caption category
// one-hot (-124/UNKNOWN is its own category; all zeros when the caption file is
// absent); has-caption, has-cover-text and log1p(#topic tags); log(video
// duration) from the matrices (missing indicator if unseen); and, when
// item_daily_features.csv is present, log1p of total shows and plays, play
// rate, completion, valid-play, like, comment, share and follow rates per play,
// mean play_progress, log1p(days) and missing(daily).
func BuildFeatures(ds *Dataset, opt FeatureOptions) (*Features, error) {
	vk := opt.VarianceKept
	if vk == 0 {
		vk = 0.95
	}
	if vk <= 0 || vk > 1 {
		return nil, fmt.Errorf("variance kept %v: want (0, 1]", vk)
	}
	if len(ds.Users) == 0 || len(ds.Videos) == 0 {
		return nil, errors.New("building features: no users or no videos")
	}
	ue := newUserEncoder(ds.Users)
	uids := make([]uint32, len(ds.Users))
	for i, u := range ds.Users {
		uids[i] = u.ID
	}
	users, err := buildMatrix(uids, ue.names, func(id uint32) ([]float64, bool) {
		i, ok := ds.UserIndex[id]
		if !ok {
			return nil, false
		}
		return ue.encode(&ds.Users[i]), true
	}, vk)
	if err != nil {
		return nil, fmt.Errorf("user features: %w", err)
	}
	ie := newItemEncoder(ds)
	vids := make([]uint32, len(ds.Videos))
	for i, v := range ds.Videos {
		vids[i] = v.ID
	}
	items, err := buildMatrix(vids, ie.names, func(id uint32) ([]float64, bool) {
		i, ok := ds.VideoIndex[id]
		if !ok {
			return nil, false
		}
		return ie.encode(&ds.Videos[i]), true
	}, vk)
	if err != nil {
		return nil, fmt.Errorf("item features: %w", err)
	}
	return &Features{Users: users, Items: items}, nil
}

// buildMatrix encodes every id, drops constant columns, standardises and runs PCA.
func buildMatrix(ids []uint32, names []string, encode func(uint32) ([]float64, bool), vk float64) (*FeatureMatrix, error) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	n, d := len(ids), len(names)
	raw := mat.NewDense(n, d, nil)
	for i, id := range ids {
		row, _ := encode(id)
		raw.SetRow(i, row)
	}
	mean, std := make([]float64, d), make([]float64, d)
	var keep []int
	col := make([]float64, n)
	for j := range d {
		mat.Col(col, j, raw)
		mean[j], std[j] = stat.PopMeanStdDev(col, nil)
		if std[j] > 1e-12 {
			keep = append(keep, j)
		}
	}
	if len(keep) == 0 {
		return nil, errors.New("every column is constant")
	}
	fm := &FeatureMatrix{IDs: ids, index: make(map[uint32]int, n)}
	for i, id := range ids {
		fm.index[id] = i
	}
	z := mat.NewDense(n, len(keep), nil)
	for k, j := range keep {
		fm.Names = append(fm.Names, names[j])
		fm.Mean = append(fm.Mean, mean[j])
		fm.Std = append(fm.Std, std[j])
		for i := range n {
			z.Set(i, k, (raw.At(i, j)-mean[j])/std[j])
		}
	}
	fm.Standardised = z
	var pc stat.PC
	if ok := pc.PrincipalComponents(z, nil); !ok {
		return nil, errors.New("PCA: SVD did not converge")
	}
	fm.Variances = pc.VarsTo(nil)
	total := 0.0
	for _, v := range fm.Variances {
		total += v
	}
	cum := 0.0
	for k, v := range fm.Variances {
		cum += v
		if cum/total >= vk-1e-12 || k == len(fm.Variances)-1 {
			fm.Kept, fm.Explained = k+1, cum/total
			break
		}
	}
	var vecs mat.Dense
	pc.VectorsTo(&vecs)
	dk := len(keep)
	comps := mat.NewDense(dk, fm.Kept, nil)
	for k := range fm.Kept {
		best := 0.0
		for j := range dk {
			if x := vecs.At(j, k); math.Abs(x) > math.Abs(best) {
				best = x
			}
		}
		sgn := 1.0
		if best < 0 {
			sgn = -1
		}
		for j := range dk {
			comps.Set(j, k, sgn*vecs.At(j, k))
		}
	}
	fm.Components = comps
	fm.Reduced = mat.NewDense(n, fm.Kept, nil)
	fm.Reduced.Mul(z, comps)
	// encode for Project callers keeps the original column set; map it.
	fm.encode = func(id uint32) ([]float64, bool) {
		row, ok := encode(id)
		if !ok {
			return nil, false
		}
		out := make([]float64, len(keep))
		for k, j := range keep {
			out[k] = row[j]
		}
		return out, true
	}
	return fm, nil
}

// userEncoder maps a User to its encoded row.
type userEncoder struct {
	names   []string
	degrees []string
	ranges  [4][]string
	// per onehot feature: values (one-hot) or frequencies
	ohVals    [18][]int32
	ohFreq    [18]map[int32]int
	ohMissing [18]bool
}

func newUserEncoder(users []User) *userEncoder {
	e := &userEncoder{}
	distinct := func(get func(*User) string) []string {
		m := map[string]bool{}
		for i := range users {
			m[get(&users[i])] = true
		}
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	e.degrees = distinct(func(u *User) string { return u.ActiveDegree })
	e.ranges[0] = distinct(func(u *User) string { return u.FollowRange })
	e.ranges[1] = distinct(func(u *User) string { return u.FansRange })
	e.ranges[2] = distinct(func(u *User) string { return u.FriendRange })
	e.ranges[3] = distinct(func(u *User) string { return u.RegisterRange })
	for _, d := range e.degrees {
		e.names = append(e.names, "user_active_degree="+d)
	}
	e.names = append(e.names, "is_lowactive_period", "is_live_streamer", "is_video_author",
		"log1p(follow_user_num)", "log1p(fans_user_num)", "log1p(friend_user_num)", "log1p(register_days)")
	for r, col := range []string{"follow_user_num_range", "fans_user_num_range", "friend_user_num_range", "register_days_range"} {
		for _, l := range e.ranges[r] {
			e.names = append(e.names, col+"="+l)
		}
	}
	for f := range 18 {
		counts := map[int32]int{}
		for i := range users {
			if v := users[i].OneHot[f]; v < 0 {
				e.ohMissing[f] = true
			} else {
				counts[v]++
			}
		}
		name := "onehot_feat" + strconv.Itoa(f)
		if len(counts) <= 64 {
			for v := range counts {
				e.ohVals[f] = append(e.ohVals[f], v)
			}
			slices.Sort(e.ohVals[f])
			for _, v := range e.ohVals[f] {
				e.names = append(e.names, fmt.Sprintf("%s=%d", name, v))
			}
		} else {
			e.ohFreq[f] = counts
			e.names = append(e.names, "log1p(freq("+name+"))")
		}
		if e.ohMissing[f] {
			e.names = append(e.names, "missing("+name+")")
		}
	}
	return e
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (e *userEncoder) encode(u *User) []float64 {
	row := make([]float64, 0, len(e.names))
	for _, d := range e.degrees {
		row = append(row, b2f(u.ActiveDegree == d))
	}
	row = append(row, b2f(u.IsLowActive), b2f(u.IsLiveStream), b2f(u.IsVideoAuthor),
		math.Log1p(float64(u.FollowNum)), math.Log1p(float64(u.FansNum)), math.Log1p(float64(u.FriendNum)), math.Log1p(float64(u.RegisterDays)))
	for r, v := range []string{u.FollowRange, u.FansRange, u.FriendRange, u.RegisterRange} {
		for _, l := range e.ranges[r] {
			row = append(row, b2f(v == l))
		}
	}
	for f := range 18 {
		v := u.OneHot[f]
		if e.ohFreq[f] == nil {
			for _, x := range e.ohVals[f] {
				row = append(row, b2f(v == x))
			}
		} else {
			row = append(row, math.Log1p(float64(e.ohFreq[f][v]))) // 0 when missing
		}
		if e.ohMissing[f] {
			row = append(row, b2f(v < 0))
		}
	}
	return row
}

// itemEncoder maps a Video to its encoded row.
type itemEncoder struct {
	names    []string
	cats     []int32
	hasCap   bool
	daily    map[uint32]*DailyAgg
	logDur   map[uint32]float64
	hasDaily bool
}

func newItemEncoder(ds *Dataset) *itemEncoder {
	e := &itemEncoder{daily: ds.Daily, hasDaily: ds.Daily != nil, logDur: map[uint32]float64{}}
	for t := range NumTags {
		e.names = append(e.names, "tag="+strconv.Itoa(t))
	}
	cs := map[int32]bool{}
	for _, v := range ds.Videos {
		if v.Caption != nil {
			e.hasCap = true
			cs[v.Caption.CategoryID[0]] = true
		}
	}
	for c := range cs {
		e.cats = append(e.cats, c)
	}
	slices.Sort(e.cats)
	for _, c := range e.cats {
		e.names = append(e.names, "first_level_category="+strconv.Itoa(int(c)))
	}
	if e.hasCap {
		e.names = append(e.names, "has_caption", "has_manual_cover_text", "log1p(topic_tags)")
	}
	// Video durations from the matrices (constant per video in KuaiRec).
	for _, m := range []*Interactions{ds.Big, ds.Small} {
		if m == nil {
			continue
		}
		for i, v := range m.Video {
			if _, ok := e.logDur[v]; !ok && m.DurMS[i] > 0 {
				e.logDur[v] = math.Log(float64(m.DurMS[i]))
			}
		}
	}
	e.names = append(e.names, "log(video_duration)", "missing(video_duration)")
	if e.hasDaily {
		e.names = append(e.names, "log1p(show_cnt)", "log1p(play_cnt)", "play_per_show", "complete_per_play",
			"valid_per_play", "like_per_play", "comment_per_play", "share_per_play", "follow_per_play",
			"mean_play_progress", "log1p(days)", "missing(daily)")
	}
	return e
}

func (e *itemEncoder) encode(v *Video) []float64 {
	row := make([]float64, NumTags, len(e.names))
	for _, t := range v.Tags {
		row[t] = 1
	}
	for _, c := range e.cats {
		row = append(row, b2f(v.Caption != nil && v.Caption.CategoryID[0] == c))
	}
	if e.hasCap {
		if c := v.Caption; c != nil {
			row = append(row, b2f(c.Caption != ""), b2f(c.ManualCoverText != "" && c.ManualCoverText != "UNKNOWN"), math.Log1p(float64(len(c.TopicTags))))
		} else {
			row = append(row, 0, 0, 0)
		}
	}
	ld, ok := e.logDur[v.ID]
	a := e.daily[v.ID]
	if !ok && a != nil && a.VideoDuration > 0 {
		ld, ok = math.Log(a.VideoDuration), true
	}
	row = append(row, ld, b2f(!ok))
	if e.hasDaily {
		if a == nil {
			row = append(row, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)
		} else {
			per := func(x, n float64) float64 {
				if n <= 0 {
					return 0
				}
				return x / n
			}
			row = append(row, math.Log1p(a.ShowCnt), math.Log1p(a.PlayCnt), per(a.PlayCnt, a.ShowCnt),
				per(a.CompleteCnt, a.PlayCnt), per(a.ValidPlayCnt, a.PlayCnt), per(a.LikeCnt, a.PlayCnt),
				per(a.CommentCnt, a.PlayCnt), per(a.ShareCnt, a.PlayCnt), per(a.FollowCnt, a.PlayCnt),
				a.MeanProgress(), math.Log1p(float64(a.Days)), 0)
		}
	}
	return row
}

// EncodedRow returns the encoded (not standardised) row of id over Names, for
// Project; ok is false when id is unknown to the Dataset the matrix was built from.
func (f *FeatureMatrix) EncodedRow(id uint32) ([]float64, bool) {
	if f.encode == nil {
		return nil, false
	}
	return f.encode(id)
}
