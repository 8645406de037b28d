package synth

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/streamrec/streamrec/internal/kuairec"
)

// Scale is a named size of synthetic folder.
type Scale struct {
	Name                    string
	Users, Videos           int
	SmallUsers, SmallVideos int
	// BigRows is the target number of big-matrix rows, exact duplicates included.
	BigRows int
	// SocialUsers is the number of users with friends.
	SocialUsers int
}

// Scales: "tiny" for unit tests, "full" the size of KuaiRec 2.0.
var Scales = map[string]Scale{
	"tiny": {Name: "tiny", Users: 300, Videos: 400, SmallUsers: 100, SmallVideos: 200, BigRows: 19500, SocialUsers: 20},
	"full": {Name: "full", Users: 7176, Videos: 10728, SmallUsers: 1411, SmallVideos: 3327, BigRows: 12530806, SocialUsers: 472},
}

// Time span of KuaiRec: 2020-07-05 00:00 to 2020-09-06 00:00, UTC+8.
var (
	SpanStartMS = time.Date(2020, 7, 5, 0, 0, 0, 0, cst).UnixMilli()
	SpanEndMS   = time.Date(2020, 9, 6, 0, 0, 0, 0, cst).UnixMilli()
)

const spanDays = 63

// SpanStartTime and SpanEndTime are SpanStartMS and SpanEndMS as times in UTC+8.
func SpanStartTime() time.Time { return time.UnixMilli(SpanStartMS).In(cst) }

// SpanEndTime: see SpanStartTime.
func SpanEndTime() time.Time { return time.UnixMilli(SpanEndMS).In(cst) }

// GenConfig configures Generate.
type GenConfig struct {
	Scale Scale
	Seed  uint64
	// SideDir is a folder with the real user_features.csv, item_categories.csv
	// and kuairec_caption_category.csv (resolved like --data); "" synthesises
	// side files.
	SideDir string
	Drifts  []Drift
	// Workers generating users in parallel; <= 0 means GOMAXPROCS. The output
	// does not depend on it.
	Workers int
	// Progress, if not nil, receives a progress bar (rows).
	Progress io.Writer
	// Watch overrides DefaultWatchParams when not nil.
	Watch *WatchParams
	// Effects overrides DefaultEffects when not nil.
	Effects *Effects
}

// GenResult summarises a generated folder.
type GenResult struct {
	DataDir   string
	BigRows   int
	SmallRows int
	DailyRows int
	Elapsed   time.Duration
}

// Generator knobs (documented in truth/README.md).
const (
	expoPopPow    = 0.8
	expoAffinity  = 0.15
	newVideoBoost = 4.0
	rewatchAccept = 0.3
	dupSingleP    = 0.0767 // one exact copy of an event
	dupBurstP     = 0.0002 // a burst of copies (KuaiRec has up to 2,224 for one pair)
	dupBurstMean  = 35
	smallMissingP = 0.0038 // small-matrix cells not observed (17,827 / 4.69M)
	smallUntimedP = 0.039  // small rows with empty time/date/timestamp
	// smallQualitySel biases the small matrix's videos to good ones (KuaiRec's
	// fully observed videos are among the most shown).
	smallQualitySel = 3.0
)

// Generate writes a complete synthetic KuaiRec 2.0 folder under root:
// root/KuaiRec 2.0/data/*.csv (all seven files, same headers, formats and
// quirks as the real ones) and root/truth (the ground truth, see LoadTruth).
// The same config (seed, scale, side files, drifts) gives the same bytes.
func Generate(root string, cfg GenConfig) (*GenResult, error) {
	t0 := time.Now()
	sc := cfg.Scale
	if sc.Users <= 0 || sc.Videos <= 0 || sc.SmallUsers > sc.Users || sc.SmallVideos > sc.Videos {
		return nil, fmt.Errorf("bad scale %+v", sc)
	}
	wp := DefaultWatchParams
	if cfg.Watch != nil {
		wp = *cfg.Watch
	}
	dataDir := filepath.Join(root, kuairec.DataSubdir)
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	side, err := prepareSide(cfg, dataDir)
	if err != nil {
		return nil, err
	}
	g := newGenModel(cfg, side, wp)

	res := &GenResult{DataDir: dataDir}
	var wg sync.WaitGroup
	var dailyErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		res.DailyRows, dailyErr = g.writeDaily(filepath.Join(dataDir, kuairec.ItemDailyFile))
		if dailyErr == nil {
			dailyErr = g.writeSocial(filepath.Join(dataDir, kuairec.SocialNetworkFile))
		}
	}()
	res.BigRows, res.SmallRows, err = g.writeMatrices(dataDir, cfg)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if dailyErr != nil {
		return nil, dailyErr
	}
	if err := writeTruth(root, g.truth); err != nil {
		return nil, fmt.Errorf("writing truth: %w", err)
	}
	res.Elapsed = time.Since(t0)
	return res, nil
}
