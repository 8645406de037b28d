package kuairec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Golden facts of the real side files (SCHEMA.md, STATS.md §4).
func TestGoldenRealSideFiles(t *testing.T) {
	dir := realSideDir(t)
	ds, rep, err := LoadSide(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Files {
		if f.Bad() != 0 {
			t.Errorf("%s: %d bad rows: %v", f.File, f.Bad(), f.Errors)
		}
	}
	if len(ds.Users) != 7176 || len(ds.Videos) != 10728 {
		t.Fatalf("users %d, videos %d; want 7176, 10728", len(ds.Users), len(ds.Videos))
	}
	hist := map[int]int{}
	for i, v := range ds.Videos {
		if v.ID != uint32(i) {
			t.Fatalf("video %d at position %d", v.ID, i)
		}
		hist[len(v.Tags)]++
	}
	if hist[1] != 8970 || hist[2] != 1562 || hist[3] != 185 || hist[4] != 11 {
		t.Errorf("tag-count histogram %v; want 1:8970 2:1562 3:185 4:11", hist)
	}
	deg := map[string]int{}
	missing4, missing12 := 0, 0
	for _, u := range ds.Users {
		deg[u.ActiveDegree]++
		if u.OneHot[4] < 0 {
			missing4++
		}
		if u.OneHot[12] < 0 {
			missing12++
		}
	}
	if deg["UNKNOWN"] != 118 || deg["full_active"] != 6092 || deg["high_active"] != 938 || deg["middle_active"] != 28 {
		t.Errorf("active degrees %v", deg)
	}
	if missing4 != 201 || missing12 != 77 {
		t.Errorf("empty onehot_feat4 %d (want 201), onehot_feat12 %d (want 77)", missing4, missing12)
	}
	if fr := rep.File(CaptionFile); fr.Read != 10728 {
		t.Errorf("captions: %d records, want 10728", fr.Read)
	}
	withCR := []uint32{}
	unknown1, emptyTopic := 0, 0
	for _, v := range ds.Videos {
		c := v.Caption
		if c == nil {
			t.Fatalf("video %d has no caption row", v.ID)
		}
		if strings.Contains(c.Caption, "\r") || strings.Contains(c.ManualCoverText, "\r") {
			withCR = append(withCR, v.ID)
		}
		if c.CategoryID[0] == UnknownCategory {
			unknown1++
		}
		if len(c.TopicTags) == 0 {
			emptyTopic++
		}
	}
	if len(withCR) != 4 || withCR[0] != 1378 || withCR[1] != 1613 || withCR[2] != 5910 || withCR[3] != 6331 {
		t.Errorf("captions with a bare CR: %v; want [1378 1613 5910 6331]", withCR)
	}
	if unknown1 != 40 || emptyTopic != 4611 {
		t.Errorf("first-level -124: %d (want 40), empty topic_tag: %d (want 4611)", unknown1, emptyTopic)
	}
	if got := ds.Videos[4].Caption.TopicTags; strings.Join(got, "|") != "五爱市场|感谢快手我要上热门|搞笑" {
		t.Errorf("video 4 topic tags %q", got)
	}
	// A naive line count sees the bare CRs as line breaks: 10,732.
	b, err := os.ReadFile(filepath.Join(dir, CaptionFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' || r == '\r' })
	if len(lines)-1 < 10728 {
		t.Errorf("naive line count %d", len(lines)-1)
	}
}

func TestFeaturesRealSide(t *testing.T) {
	dir := realSideDir(t)
	ds, _, err := LoadSide(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := BuildFeatures(ds, FeatureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, fm := range []*FeatureMatrix{f.Users, f.Items} {
		r, c := fm.Reduced.Dims()
		t.Logf("%d rows, %d encoded columns -> %d components explaining %.4f", r, len(fm.Names), c, fm.Explained)
		if fm.Explained < 0.95 || c != fm.Kept || c >= len(fm.Names) {
			t.Errorf("PCA kept %d of %d explaining %v", c, len(fm.Names), fm.Explained)
		}
	}
	if r, _ := f.Users.Reduced.Dims(); r != 7176 {
		t.Errorf("user rows %d", r)
	}
	if r, _ := f.Items.Reduced.Dims(); r != 10728 {
		t.Errorf("item rows %d", r)
	}
}
