package main

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/synth"
)

func TestSynthAndStatsCommands(t *testing.T) {
	out := t.TempDir()
	err := runSynth(context.Background(), []string{"--out", out, "--scale", "tiny", "--seed", "3", "--quiet",
		"--drift-prefs-at", "2020-08-15", "--drift-popularity-at", "2020-08-20 12:00", "--drift-new-videos-at", "2020-08-01T00:00:00+08:00"})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := synth.LoadTruth(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Manifest.Drifts) != 3 || tr.Manifest.PrefsDriftMS != 1597420800000 {
		t.Errorf("drifts %+v", tr.Manifest.Drifts)
	}
	if err := runStats(context.Background(), []string{"--data", filepath.Join(out, "KuaiRec 2.0"), "--quiet"}); err != nil {
		t.Fatal(err)
	}
}

func TestSynthUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--scale", "tiny"},
		{"--out", "x", "--scale", "huge"},
		{"--out", "x", "--drift-prefs-at", "yesterday"},
		{"--out", "x", "--drift-prefs-at", "2020-08-01", "--drift-prefs-share", "2"},
		{"--bogus"},
	} {
		err := runSynth(context.Background(), args)
		if !errors.As(err, new(*config.UsageError)) {
			t.Errorf("%v: err %v, want a usage error", args, err)
		}
	}
	if err := runStats(context.Background(), nil); !errors.As(err, new(*config.UsageError)) {
		t.Errorf("stats without --data: %v", err)
	}
}
