package towers

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// Interactions are training or validation interactions as parallel slices:
// row k says user User[k] watched item Item[k] with watch ratio WatchRatio[k].
// User and Item are row indices into the feature matrices (not dataset ids).
// Weight is optional (nil means 1 for every row): a per-row loss weight, for
// example the seed's confidence (ConfidenceFromWatchRatio).
type Interactions struct {
	User, Item []int32
	WatchRatio []float32
	Weight     []float32
}

// Len is the number of interactions.
func (x Interactions) Len() int { return len(x.User) }

func (x Interactions) weight(k int32) float64 {
	if x.Weight == nil {
		return 1
	}
	return float64(x.Weight[k])
}

// Dataset is what the trainers take: dense feature matrices (one row per user
// and per item, already reduced by the data layer, e.g. by PCA) and the
// training and validation interactions that index them.
type Dataset struct {
	UserFeatures *mat.Dense // n_users x du
	ItemFeatures *mat.Dense // n_items x di
	Train, Valid Interactions
}

// Validate checks shapes, index ranges and values; it returns an error naming
// the first problem (the data is the caller's, so this is not a panic).
func (d *Dataset) Validate() error {
	if d.UserFeatures == nil || d.ItemFeatures == nil {
		return fmt.Errorf("dataset: missing feature matrix")
	}
	nu, _ := d.UserFeatures.Dims()
	ni, _ := d.ItemFeatures.Dims()
	for _, s := range []struct {
		name string
		x    Interactions
	}{{"train", d.Train}, {"valid", d.Valid}} {
		x := s.x
		n := len(x.User)
		if len(x.Item) != n || len(x.WatchRatio) != n || (x.Weight != nil && len(x.Weight) != n) {
			return fmt.Errorf("dataset: %s: slices of different lengths", s.name)
		}
		for k := 0; k < n; k++ {
			if x.User[k] < 0 || int(x.User[k]) >= nu {
				return fmt.Errorf("dataset: %s row %d: user index %d outside [0,%d)", s.name, k, x.User[k], nu)
			}
			if x.Item[k] < 0 || int(x.Item[k]) >= ni {
				return fmt.Errorf("dataset: %s row %d: item index %d outside [0,%d)", s.name, k, x.Item[k], ni)
			}
			if w := float64(x.WatchRatio[k]); math.IsNaN(w) || math.IsInf(w, 0) || w < 0 {
				return fmt.Errorf("dataset: %s row %d: watch ratio %v", s.name, k, w)
			}
			if x.Weight != nil {
				if w := float64(x.Weight[k]); math.IsNaN(w) || math.IsInf(w, 0) || w < 0 {
					return fmt.Errorf("dataset: %s row %d: weight %v", s.name, k, w)
				}
			}
		}
	}
	if d.Train.Len() == 0 {
		return fmt.Errorf("dataset: no training interactions")
	}
	return nil
}

// gatherRows copies rows idx of m into dst (len(idx) x cols).
func gatherRows(dst []float64, m *mat.Dense, idx []int32) {
	raw := m.RawMatrix()
	c := raw.Cols
	for r, i := range idx {
		copy(dst[r*c:(r+1)*c], raw.Data[int(i)*raw.Stride:int(i)*raw.Stride+c])
	}
}
