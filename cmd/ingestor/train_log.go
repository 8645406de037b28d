package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"time"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/progress"
	"github.com/streamrec/streamrec/internal/stream"
)

// logOpts are train's --from-log settings: a retrain that adds the
// interactions topic (the log is the source of truth) to the KuaiRec rows.
type logOpts struct {
	on               bool
	brokers, topic   string // brokers: train's --brokers (the model log's flag)
	includeSimulator bool
	lease            time.Duration
	canaryShare      float64
	canaryWindows    int
	canaryThreshold  float64
	shuffleLabels    bool
}

func registerLogFlags(fs *flag.FlagSet, o *logOpts) {
	fs.BoolVar(&o.on, "from-log", false, "retrain: add the interactions topic, from its start to its end when training starts, to the KuaiRec rows; the version records the offsets it trained through")
	fs.StringVar(&o.topic, "topic", "interactions", "--from-log: the interactions topic")
	fs.BoolVar(&o.includeSimulator, "include-simulator", false, "--from-log: also train on simulator events (they come from the small matrix, the evaluation set: the report then says so)")
	fs.Float64Var(&o.canaryShare, "canary", 0, "publish the version as a canary for this share of the users (0, 0.5] instead of making it current; the evaluating API promotes it or rolls it back (api RunCanary); 0: publish as current")
	fs.IntVar(&o.canaryWindows, "canary-windows", 5, "--canary: closed evaluation windows of both arms compared before the decision")
	fs.Float64Var(&o.canaryThreshold, "canary-threshold", 0.1, "--canary: the relative margin by which the canary may be worse (engagement, hit rate, MAE) before it is rolled back")
	fs.BoolVar(&o.shuffleLabels, "shuffle-labels", false, "testing only: shuffle the training rows' watch ratios among themselves (a deliberately worse model, for the canary's test); the report says so")
	fs.DurationVar(&o.lease, "retrain-lease", 30*time.Second, "--from-log: TTL of the Redis lease that keeps retrains one at a time across hosts (renewed every third of it)")
}

// logReport is the report's account of the log's rows.
type logReport struct {
	Topic string `json:"topic"`
	// Offsets are, per partition, the last offset trained through.
	Offsets map[int32]int64 `json:"offsets"`
	Read    int             `json:"read"`
	Rows    int             `json:"rows"`
	// IncludeSimulator says whether simulator events (the evaluation set's
	// own videos) were trained on: the evaluation then is not held out.
	IncludeSimulator bool `json:"include_simulator"`
	Simulator        int  `json:"simulator_skipped"`
	// InFiles are replayed events before the cut: rows of the KuaiRec files
	// already in the training data.
	InFiles   int `json:"replayed_before_cut_skipped"`
	Unknown   int `json:"unknown_ids"`
	Undecoded int `json:"undecodable"`
}

// holdRetrainLease takes the retrain lease for the whole run and keeps it;
// the returned context ends when the lease is lost (training then stops).
func holdRetrainLease(ctx context.Context, st *cache.Store, ttl time.Duration, logger *slog.Logger) (context.Context, func(), error) {
	host, _ := os.Hostname()
	owner := fmt.Sprintf("ingestor@%s:%d:%d", host, os.Getpid(), time.Now().UnixMilli())
	lease, err := st.AcquireLease(ctx, cache.RetrainLease, owner, ttl)
	if err != nil {
		if errors.Is(err, cache.ErrLeaseHeld) {
			return nil, nil, fmt.Errorf("another retrain is running: %w", err)
		}
		return nil, nil, err
	}
	lctx, cancel := context.WithCancelCause(ctx)
	go lease.Keep(lctx, func(err error) {
		logger.Error("the retrain lease was lost: stopping", "err", err)
		cancel(err)
	})
	logger.Info("retrain lease taken", "owner", owner, "ttl", ttl)
	return lctx, func() {
		cancel(nil)
		if err := lease.Release(context.Background()); err != nil {
			logger.Warn("releasing the retrain lease", "err", err)
		}
	}, nil
}

// addLogRows reads the interactions topic from its start to the end it had
// when the read began, and adds its events as training rows (validation by
// the same hashed share as the files' rows): simulator events are left out
// unless includeSimulator, replayed events before the cut are rows of the
// files already, events of users or videos without a feature row are
// counted and skipped.
func addLogRows(ctx context.Context, o *logOpts, td *trainData, hasCut bool, cutMS int64, validShare float64, seed uint64, progressW io.Writer) (*logReport, error) {
	brokers := strings.Split(o.brokers, ",")
	counts, err := stream.PartitionCounts(ctx, brokers, o.topic)
	if err != nil {
		return nil, fmt.Errorf("reading the interactions topic %s: %w", o.topic, err)
	}
	n, ok := counts[o.topic]
	if !ok {
		return nil, fmt.Errorf("the interactions topic %s does not exist", o.topic)
	}
	parts := make([]int, n)
	for i := range parts {
		parts[i] = i
	}
	rep := &logReport{Topic: o.topic, Offsets: map[int32]int64{}, IncludeSimulator: o.includeSimulator}
	threshold := uint64(validShare * float64(math.MaxUint64))
	if progressW == nil {
		progressW = io.Discard
	}
	bar := progress.New(progressW, "log events", 0)
	var ev stream.Event
	log := stream.NewStateLog(brokers, o.topic, 1<<20)
	defer log.Close()
	err = log.Read(ctx, parts, func(p int, off int64, _, value []byte) error {
		rep.Read++
		if rep.Read%50000 == 0 {
			bar.Set(int64(rep.Read))
		}
		rep.Offsets[int32(p)] = max(rep.Offsets[int32(p)], off)
		if err := stream.DecodeEvent(value, &ev); err != nil {
			rep.Undecoded++
			return nil
		}
		switch {
		case ev.Source == stream.SourceSimulator && !o.includeSimulator:
			rep.Simulator++
			return nil
		case ev.Source == stream.SourceReplay && hasCut && ev.EventTimeMs < cutMS:
			rep.InFiles++
			return nil
		}
		u, ok1 := td.userRow[ev.UserID]
		v, ok2 := td.itemRow[ev.VideoID]
		if !ok1 || !ok2 {
			rep.Unknown++
			return nil
		}
		dst := &td.ds.Train
		if splitmix(uint64(p)<<48^uint64(off)^seed*0x9e3779b97f4a7c15^0x6c6f67) < threshold {
			dst = &td.ds.Valid
		}
		dst.User = append(dst.User, u)
		dst.Item = append(dst.Item, v)
		dst.WatchRatio = append(dst.WatchRatio, float32(ev.WatchRatio))
		if td.keepTimes && dst == &td.ds.Train {
			td.trainMS = append(td.trainMS, ev.EventTimeMs)
		}
		td.lastMS = max(td.lastMS, ev.EventTimeMs)
		rep.Rows++
		return nil
	})
	bar.Set(int64(rep.Read))
	bar.Finish()
	if err != nil {
		return nil, fmt.Errorf("reading the interactions topic %s: %w", o.topic, err)
	}
	return rep, nil
}

// lineage is what a published version records of what it trained on beyond
// the cut: the log's offsets and the sources it left out.
type lineage struct {
	offsets  map[int32]int64
	excluded []string
	staged   bool // --canary: written complete, not made current
}

func (r *logReport) lineage() lineage {
	if r == nil {
		return lineage{}
	}
	l := lineage{offsets: r.Offsets}
	if !r.IncludeSimulator {
		l.excluded = []string{stream.SourceSimulator.String()}
	}
	return l
}
