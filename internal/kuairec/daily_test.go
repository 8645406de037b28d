package kuairec_test

import (
	"github.com/streamrec/streamrec/internal/kuairec"
	"os"
	"path/filepath"
	"testing"
)

// DailyBefore aggregates exactly the item_daily_features rows dated before it.
func TestLoadDailyBefore(t *testing.T) {
	root := tinyFolder(t)
	dir, err := kuairec.ResolveDataDir(root)
	if err != nil {
		t.Fatal(err)
	}
	const cutoff = 20200815
	f, err := os.Open(filepath.Join(dir, kuairec.ItemDailyFile))
	if err != nil {
		t.Fatal(err)
	}
	before, all := 0, 0
	if _, err := kuairec.ReadDaily(f, kuairec.ItemDailyFile, func(r *kuairec.DailyRow) {
		all++
		if r.Date < cutoff {
			before++
		}
	}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if before == 0 || before == all {
		t.Fatalf("the tiny set should have daily rows on both sides of %d (%d of %d before)", cutoff, before, all)
	}
	days := func(opt kuairec.Options) int {
		opt.SkipBig, opt.SkipSmall = true, true
		ds, _, err := kuairec.LoadSide(root, opt)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, a := range ds.Daily {
			n += a.Days
		}
		return n
	}
	if got := days(kuairec.Options{}); got != all {
		t.Fatalf("all days aggregated: %d, want %d", got, all)
	}
	if got := days(kuairec.Options{DailyBefore: cutoff}); got != before {
		t.Fatalf("days before %d aggregated: %d, want %d", cutoff, got, before)
	}
}
