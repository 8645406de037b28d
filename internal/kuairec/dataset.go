package kuairec

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/streamrec/streamrec/internal/progress"
)

// Options tune Load. The zero value loads everything.
type Options struct {
	// SkipBig and SkipSmall leave the big or small matrix unread (ds.Big or
	// ds.Small stays nil); otherwise the matrix file is required.
	SkipBig, SkipSmall bool
	// SkipDaily leaves item_daily_features.csv unread.
	SkipDaily bool
	// DailyBefore, when > 0, aggregates only the item_daily_features rows
	// whose date (YYYYMMDD) is before it: with a training cut, the item
	// features then see no day after the cut's (no leakage into replay).
	DailyBefore int32
	// Workers parse the matrices in parallel; <= 0 means GOMAXPROCS.
	Workers int
	// Progress, if not nil, receives a progress bar per matrix (bytes read).
	Progress io.Writer
}

// Dataset is a loaded, cleaned KuaiRec folder. Users and Videos are indexed by
// position; UserIndex and VideoIndex map ids to positions (ids are 0..N-1 in the
// real files, so position == id there).
type Dataset struct {
	Dir string
	// Big and Small are the cleaned matrices (see Clean); nil when skipped.
	Big, Small *Interactions
	Users      []User
	Videos     []Video
	// Daily aggregates item_daily_features.csv per video id; nil when the
	// file is absent or skipped.
	Daily map[uint32]*DailyAgg
	// Social maps a user id to its friends; empty when the file is absent.
	Social map[uint32][]uint32

	UserIndex  map[uint32]int
	VideoIndex map[uint32]int

	featMu sync.Mutex
	feat   *Features // built on first use by UserFeatures / ItemFeatures
}

// Load reads and cleans the KuaiRec folder dir (resolved with ResolveDataDir).
// user_features.csv and item_categories.csv are required, and so are the
// matrices unless skipped; the caption, daily-feature and social files are
// optional (reported as absent). Both matrices are cleaned like the seed (see
// Clean): in particular the small-matrix rows without a timestamp are dropped
// here; use LoadEval to keep them. Bad rows are skipped and reported.
func Load(dir string, opt Options) (*Dataset, *Report, error) {
	d, err := ResolveDataDir(dir)
	if err != nil {
		return nil, nil, err
	}
	ds := &Dataset{Dir: d, Social: map[uint32][]uint32{}}
	rep := &Report{Dir: d}
	if err := ds.loadSide(rep, opt); err != nil {
		return nil, rep, err
	}
	if !opt.SkipBig {
		m, fr, err := loadMatrix(d, BigMatrixFile, opt, false)
		if err != nil {
			return nil, rep, err
		}
		fr.Notes = append(fr.Notes, "seed cleaning: missing values, timestamp <= 0 and exact duplicates dropped; re-watches kept; Order = global replay order (time, user, file order)")
		rep.Files = append(rep.Files, fr)
		ds.Big = m
	}
	if !opt.SkipSmall {
		m, fr, err := loadMatrix(d, SmallMatrixFile, opt, false)
		if err != nil {
			return nil, rep, err
		}
		fr.Notes = append(fr.Notes, "seed cleaning: rows with empty time/date/timestamp (stage-2 forced exposures) dropped as missing; LoadEval keeps them for evaluation")
		rep.Files = append(rep.Files, fr)
		ds.Small = m
	}
	return ds, rep, nil
}

// LoadEval reads only small_matrix.csv from dir for evaluation over the fully
// observed matrix: every observed (user, video) pair is kept, including the
// rows whose time, date and timestamp are empty (TimeMS = NoTime; they are not
// in Order). Rows with other missing or bad cells, timestamps <= 0 and exact
// duplicates are still dropped and reported.
func LoadEval(dir string, opt Options) (*Interactions, *FileReport, error) {
	d, err := ResolveDataDir(dir)
	if err != nil {
		return nil, nil, err
	}
	m, fr, err := loadMatrix(d, SmallMatrixFile, opt, true)
	if err != nil {
		return nil, nil, err
	}
	fr.Notes = append(fr.Notes, "evaluation load: untimed rows (stage-2 forced exposures) kept")
	return m, fr, nil
}

// LoadSide reads only the side files of dir (users, videos, captions, social,
// and daily features unless opt.SkipDaily); the matrices are not read.
func LoadSide(dir string, opt Options) (*Dataset, *Report, error) {
	d, err := ResolveDataDir(dir)
	if err != nil {
		return nil, nil, err
	}
	ds := &Dataset{Dir: d, Social: map[uint32][]uint32{}}
	rep := &Report{Dir: d}
	err = ds.loadSide(rep, opt)
	return ds, rep, err
}

func loadMatrix(dir, name string, opt Options, keepUntimed bool) (*Interactions, *FileReport, error) {
	t0 := time.Now()
	f, err := openFile(dir, name, false)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("stat %s: %w", name, err)
	}
	var onBytes func(int64)
	var bar *progress.Bar
	if opt.Progress != nil {
		bar = progress.NewWithOptions(opt.Progress, "B", st.Size(), progress.Options{Prefix: name})
		onBytes = bar.Set
	}
	m, fr, err := ReadMatrix(f, name, st.Size(), opt.Workers, onBytes)
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return nil, nil, err
	}
	Clean(m, fr, keepUntimed)
	fr.Elapsed = time.Since(t0)
	return m, fr, nil
}

func (ds *Dataset) loadSide(rep *Report, opt Options) error {
	d := ds.Dir
	add := func(fr *FileReport) { rep.Files = append(rep.Files, fr) }
	run := func(name string, optional bool, read func(f *os.File) (*FileReport, error)) error {
		f, err := openFile(d, name, optional)
		if err != nil {
			return err
		}
		if f == nil {
			add(&FileReport{File: name, Missing: true, BadRows: map[string]int{}})
			return nil
		}
		defer f.Close()
		fr, err := timed(func() (*FileReport, error) { return read(f) })
		if err != nil {
			return err
		}
		add(fr)
		return nil
	}
	if err := run(UserFeaturesFile, false, func(f *os.File) (*FileReport, error) {
		u, fr, err := ReadUsers(f, UserFeaturesFile)
		ds.Users = u
		return fr, err
	}); err != nil {
		return err
	}
	if err := run(ItemCategoryFile, false, func(f *os.File) (*FileReport, error) {
		v, fr, err := ReadItemCategories(f, ItemCategoryFile)
		ds.Videos = v
		return fr, err
	}); err != nil {
		return err
	}
	ds.UserIndex = make(map[uint32]int, len(ds.Users))
	for i, u := range ds.Users {
		ds.UserIndex[u.ID] = i
	}
	ds.VideoIndex = make(map[uint32]int, len(ds.Videos))
	for i, v := range ds.Videos {
		ds.VideoIndex[v.ID] = i
	}
	if err := run(CaptionFile, true, func(f *os.File) (*FileReport, error) {
		caps, fr, err := ReadCaptions(f, CaptionFile)
		orphans := 0
		for i := range caps {
			if j, ok := ds.VideoIndex[caps[i].VideoID]; ok {
				ds.Videos[j].Caption = &caps[i]
			} else {
				orphans++
			}
		}
		if fr != nil && orphans > 0 {
			fr.Notes = append(fr.Notes, fmt.Sprintf("%d captions of videos not in %s ignored", orphans, ItemCategoryFile))
		}
		return fr, err
	}); err != nil {
		return err
	}
	if err := run(SocialNetworkFile, true, func(f *os.File) (*FileReport, error) {
		s, fr, err := ReadSocial(f, SocialNetworkFile)
		ds.Social = s
		return fr, err
	}); err != nil {
		return err
	}
	if !opt.SkipDaily {
		if err := run(ItemDailyFile, true, func(f *os.File) (*FileReport, error) {
			ds.Daily = map[uint32]*DailyAgg{}
			return ReadDaily(f, ItemDailyFile, func(r *DailyRow) {
				if opt.DailyBefore > 0 && r.Date >= opt.DailyBefore {
					return
				}
				a := ds.Daily[r.VideoID]
				if a == nil {
					a = &DailyAgg{}
					ds.Daily[r.VideoID] = a
				}
				a.add(r)
			})
		}); err != nil {
			return err
		}
	}
	return nil
}

// SortedVideoIDs returns the video ids of m in ascending order, deduplicated.
func (m *Interactions) SortedVideoIDs() []uint32 { return uniqueSorted(m.Video) }

// SortedUserIDs returns the user ids of m in ascending order, deduplicated.
func (m *Interactions) SortedUserIDs() []uint32 { return uniqueSorted(m.User) }

func uniqueSorted(xs []uint32) []uint32 {
	var maxv uint32
	for _, x := range xs {
		maxv = max(maxv, x)
	}
	if len(xs) == 0 {
		return nil
	}
	if maxv < 1<<24 {
		seen := make([]bool, int(maxv)+1)
		for _, x := range xs {
			seen[x] = true
		}
		var out []uint32
		for i, s := range seen {
			if s {
				out = append(out, uint32(i))
			}
		}
		return out
	}
	m := map[uint32]struct{}{}
	for _, x := range xs {
		m[x] = struct{}{}
	}
	out := make([]uint32, 0, len(m))
	for x := range m {
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// dataPath joins the data folder layout under a root: root/KuaiRec 2.0/data.
func dataPath(root string) string { return filepath.Join(root, DataSubdir) }
