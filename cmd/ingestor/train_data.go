package main

import (
	"fmt"
	"math"
	"time"

	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/towers"
)

// dataReport is the report's "data" section: what was loaded, cleaned, cut,
// trained on and evaluated on.
type dataReport struct {
	Dir    string `json:"dir"`
	Users  int    `json:"users"`
	Videos int    `json:"videos"`
	// Big-matrix cleaning (the seed's preprocessing).
	BigRows                int `json:"big_rows"`
	BigBadRows             int `json:"big_bad_rows"`
	BigDroppedMissing      int `json:"big_dropped_missing"`
	BigDroppedNonPositive  int `json:"big_dropped_nonpositive_time"`
	BigDroppedDuplicates   int `json:"big_dropped_duplicates"`
	BigKept                int `json:"big_kept"`
	SmallRows              int `json:"small_rows"`
	SmallBadRows           int `json:"small_bad_rows"`
	SmallDroppedMissing    int `json:"small_dropped_missing"`
	SmallDroppedNonPositiv int `json:"small_dropped_nonpositive_time"`
	SmallDroppedDuplicates int `json:"small_dropped_duplicates"`
	SmallKept              int `json:"small_kept"`

	UserFeatures pcaReport `json:"user_features"`
	ItemFeatures pcaReport `json:"item_features"`

	// Cut is the training cut (RFC 3339 in UTC+8, "" without one); CutMS the
	// same in Unix ms (0 without one).
	Cut   string `json:"cut"`
	CutMS int64  `json:"cut_ms"`
	// AfterCut: big-matrix rows at or after the cut (left for replay).
	AfterCut int `json:"after_cut"`
	// UnknownIDs: big-matrix rows whose user or video has no feature row.
	UnknownIDs int `json:"unknown_ids"`
	TrainRows  int `json:"train_rows"`
	ValidRows  int `json:"valid_rows"`
	// TrainUsers and TrainVideos appear in the training rows.
	TrainUsers  int   `json:"train_users"`
	TrainVideos int   `json:"train_videos"`
	FirstMS     int64 `json:"first_train_ms"`
	LastMS      int64 `json:"last_train_ms"`

	// Evaluation matrix (LoadEval: every observed pair, untimed rows kept).
	EvalRows        int `json:"eval_rows"`
	EvalUntimed     int `json:"eval_untimed_rows"`
	EvalUsers       int `json:"eval_users"`
	EvalVideos      int `json:"eval_videos"`
	EvalPairs       int `json:"eval_pairs"`
	EvalUnknownRows int `json:"eval_unknown_ids"`
	// Users evaluated at each level (with >= 1 relevant video) and those
	// counted but left out (none relevant).
	EvalUsersAt08        int `json:"eval_users_at_0.8"`
	EvalNoRelevantAt08   int `json:"eval_users_no_relevant_at_0.8"`
	EvalUsersAbove2      int `json:"eval_users_at_2.0"`
	EvalNoRelevantAbove2 int `json:"eval_users_no_relevant_at_2.0"`
	// Truth: whether the folder had a ground truth (synthetic data).
	Truth bool `json:"truth"`
	// ShuffledLabels: --shuffle-labels (a deliberately worse model).
	ShuffledLabels bool `json:"shuffled_labels,omitempty"`
	// RecentHalfLifeS: --recent-half-life in seconds; EffectiveRows the sum
	// of the training rows' weights under it.
	RecentHalfLifeS float64 `json:"recent_half_life_s,omitempty"`
	EffectiveRows   float64 `json:"effective_rows,omitempty"`
	// Log: the interactions topic's rows of a retrain (--from-log).
	Log *logReport `json:"log,omitempty"`
}

type pcaReport struct {
	Encoded   int     `json:"encoded"`
	Kept      int     `json:"kept"`
	Explained float64 `json:"variance_explained"`
}

func fillLoadReport(d *dataReport, ds *kuairec.Dataset, rep *kuairec.Report) {
	d.Dir, d.Users, d.Videos = ds.Dir, len(ds.Users), len(ds.Videos)
	if f := rep.File(kuairec.BigMatrixFile); f != nil {
		d.BigRows, d.BigBadRows, d.BigDroppedMissing = f.Rows, f.Bad(), f.DroppedMissing
		d.BigDroppedNonPositive, d.BigDroppedDuplicates, d.BigKept = f.DroppedNonPositiveTime, f.DroppedDuplicates, f.Kept
	}
	if f := rep.File(kuairec.SmallMatrixFile); f != nil {
		d.SmallRows, d.SmallBadRows, d.SmallDroppedMissing = f.Rows, f.Bad(), f.DroppedMissing
		d.SmallDroppedNonPositiv, d.SmallDroppedDuplicates, d.SmallKept = f.DroppedNonPositiveTime, f.DroppedDuplicates, f.Kept
	}
}

// trainData is the trainers' dataset built from the cleaned big matrix, with
// the id-to-row maps of the feature matrices.
type trainData struct {
	ds               *towers.Dataset
	userRow, itemRow map[uint32]int32
	afterCut         int
	unknown          int
	firstMS, lastMS  int64
	// trainMS are the event times of ds.Train's rows, kept only when
	// keepTimes (--recent-half-life: 8 bytes a row).
	trainMS   []int64
	keepTimes bool
}

// buildTrainData turns the big matrix's rows strictly before the cut (all
// rows without one) into training and validation interactions over the PCA
// feature rows. A row goes to validation with probability validShare, decided
// by a hash of its row index and the seed (deterministic, independent of the
// cut). Rows whose user or video has no feature row are counted and skipped.
func buildTrainData(ds *kuairec.Dataset, feats *kuairec.Features, hasCut bool, cutMS int64, validShare float64, seed uint64, keepTimes bool) *trainData {
	td := &trainData{keepTimes: keepTimes,
		ds:      &towers.Dataset{UserFeatures: feats.Users.Reduced, ItemFeatures: feats.Items.Reduced},
		userRow: rowIndex(feats.Users.IDs), itemRow: rowIndex(feats.Items.IDs),
		firstMS: math.MaxInt64, lastMS: math.MinInt64,
	}
	big := ds.Big
	threshold := uint64(validShare * float64(math.MaxUint64))
	n := len(big.Order)
	tr, va := &td.ds.Train, &td.ds.Valid
	for _, x := range []*towers.Interactions{tr, va} {
		c := n
		if x == va {
			c = int(float64(n)*validShare*1.1) + 16
		}
		x.User, x.Item, x.WatchRatio = make([]int32, 0, c), make([]int32, 0, c), make([]float32, 0, c)
	}
	for _, r := range big.Order {
		t := big.TimeMS[r]
		if hasCut && t >= cutMS {
			td.afterCut++
			continue
		}
		u, ok1 := td.userRow[big.User[r]]
		v, ok2 := td.itemRow[big.Video[r]]
		wr := big.WatchRatio[r]
		if !ok1 || !ok2 || math.IsNaN(wr) || wr < 0 || math.IsInf(wr, 0) {
			td.unknown++
			continue
		}
		td.firstMS, td.lastMS = min(td.firstMS, t), max(td.lastMS, t)
		dst := tr
		if splitmix(uint64(r)^seed*0x9e3779b97f4a7c15) < threshold {
			dst = va
		}
		dst.User = append(dst.User, u)
		dst.Item = append(dst.Item, v)
		dst.WatchRatio = append(dst.WatchRatio, float32(wr))
		if keepTimes && dst == tr {
			td.trainMS = append(td.trainMS, t)
		}
	}
	if tr.Len() == 0 {
		td.firstMS, td.lastMS = 0, 0
	}
	return td
}

// weightByRecency gives every training row the loss weight
// 2^-((lastMS - t) / halfLife), t its event time: a retrain after a change
// then learns mostly from the traffic since it (a row one half-life old
// counts half, ten half-lives old a thousandth), where the files' weeks
// before it would drown the few hours after. It returns the weights' sum,
// the effective number of rows.
func (td *trainData) weightByRecency(halfLife time.Duration) (float64, error) {
	tr := &td.ds.Train
	if len(td.trainMS) != tr.Len() || halfLife <= 0 {
		return 0, fmt.Errorf("recency weights: %d row times for %d training rows, half-life %v", len(td.trainMS), tr.Len(), halfLife)
	}
	tr.Weight = make([]float32, tr.Len())
	h := float64(halfLife.Milliseconds())
	sum := 0.0
	for k, t := range td.trainMS {
		w := math.Exp2(-float64(td.lastMS-t) / h)
		tr.Weight[k] = float32(w)
		sum += float64(tr.Weight[k])
	}
	return sum, nil
}

func (td *trainData) fillReport(d *dataReport) {
	d.AfterCut, d.UnknownIDs = td.afterCut, td.unknown
	d.TrainRows, d.ValidRows = td.ds.Train.Len(), td.ds.Valid.Len()
	d.TrainUsers, d.TrainVideos = countDistinct(td.ds.Train.User), countDistinct(td.ds.Train.Item)
	d.FirstMS, d.LastMS = td.firstMS, td.lastMS
}

func rowIndex(ids []uint32) map[uint32]int32 {
	m := make(map[uint32]int32, len(ids))
	for i, id := range ids {
		m[id] = int32(i)
	}
	return m
}

func countDistinct(x []int32) int {
	mx := int32(-1)
	for _, v := range x {
		mx = max(mx, v)
	}
	seen := make([]bool, mx+1)
	n := 0
	for _, v := range x {
		if !seen[v] {
			seen[v] = true
			n++
		}
	}
	return n
}

// splitmix is the SplitMix64 finaliser: a fast, well-mixed hash of x.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
