package kuairec

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
)

func readMatrixString(t *testing.T, body string) (*Interactions, *FileReport) {
	t.Helper()
	m, rep, err := ReadMatrix(strings.NewReader(MatrixHeader+"\n"+body), "m.csv", 0, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m, rep
}

// One case per quirk of the matrix files (SCHEMA.md §2).
func TestMatrixQuirks(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		bad     string // expected count key, "" for a good row
		ts      int64
		date    int32
		wr      float64
		badLine int
		badCol  int
	}{
		{name: "real big row", line: "0,3649,13838,10867,2020-07-05 00:08:23.438,20200705,1593878903.438,1.2733965215790926", ts: 1593878903438, date: 20200705, wr: 1.2733965215790926},
		{name: "date as float (small)", line: "14,148,4381,6067,2020-07-05 05:27:48.378,20200705.0,1593898068.378,0.7221031811438932", ts: 1593898068378, date: 20200705, wr: 0.7221031811438932},
		{name: "one-decimal timestamp", line: "0,8228,13484,8576,2020-07-05 01:00:25.5,20200705,1593882025.5,1.572294776119403", ts: 1593882025500, date: 20200705, wr: 1.572294776119403},
		{name: "integral timestamp", line: "0,1,1,1,t,20200705,1593882025,1.0", ts: 1593882025000, date: 20200705, wr: 1},
		{name: "exponent timestamp", line: "0,1,1,1,t,20200905,1.599304e+09,0.340597", ts: 1599304000000, date: 20200905, wr: 0.340597},
		{name: "empty time, date, timestamp (small stage 2)", line: "7162,4364,2182,19367,,,,0.112666", ts: NoTime, date: 0, wr: 0.112666},
		{name: "watch_ratio outlier", line: "1,2,3,4,t,20200705,1593878903.438,573.4571", ts: 1593878903438, date: 20200705, wr: 573.4571},
		{name: "watch_ratio in exponent form", line: "1,2,3,4,t,20200705,1593878903.438,5e-05", ts: 1593878903438, date: 20200705, wr: 5e-05},
		{name: "watch_ratio zero", line: "1,2,0,4,t,20200705,1593878903.438,0.0", ts: 1593878903438, date: 20200705, wr: 0},
		{name: "CRLF line end", line: "1,2,3,4,t,20200705,1593878903.438,0.5\r", ts: 1593878903438, date: 20200705, wr: 0.5},
		{name: "negative timestamp parses (dropped by cleaning)", line: "1,2,3,4,t,20200705,-5.0,0.5", ts: -5000, date: 20200705, wr: 0.5},
		{name: "quoted cells", line: `1,2,3,4,"2020-07-05 00:08:23.438",20200705,1593878903.438,"0.5"`, ts: 1593878903438, date: 20200705, wr: 0.5},
		{name: "too few fields", line: "1,2,3,4,t,20200705,1593878903.438", bad: "want 8 fields, got 7", badLine: 2},
		{name: "too many fields", line: "1,2,3,4,t,20200705,1593878903.438,0.5,9", bad: "want 8 fields, got 9", badLine: 2},
		{name: "non-numeric user", line: "x,2,3,4,t,20200705,1593878903.438,0.5", bad: "user_id: bad id", badLine: 2, badCol: 1},
		{name: "negative video", line: "1,-2,3,4,t,20200705,1593878903.438,0.5", bad: "video_id: bad id", badLine: 2, badCol: 2},
		{name: "fractional play", line: "1,2,3.5,4,t,20200705,1593878903.438,0.5", bad: "play_duration: bad integer", badLine: 2, badCol: 3},
		{name: "empty duration", line: "1,2,3,,t,20200705,1593878903.438,0.5", bad: "video_duration: bad integer", badLine: 2, badCol: 4},
		{name: "bad date", line: "1,2,3,4,t,2020-07-05,1593878903.438,0.5", bad: "date: bad date", badLine: 2, badCol: 6},
		{name: "bad timestamp", line: "1,2,3,4,t,20200705,15938x,0.5", bad: "timestamp: bad timestamp", badLine: 2, badCol: 7},
		{name: "NaN watch ratio", line: "1,2,3,4,t,20200705,1593878903.438,NaN", bad: "watch_ratio: bad watch ratio", badLine: 2, badCol: 8},
		{name: "empty watch ratio", line: "1,2,3,4,t,20200705,1593878903.438,", bad: "watch_ratio: empty", badLine: 2, badCol: 8},
		{name: "negative watch ratio", line: "1,2,3,4,t,20200705,1593878903.438,-0.5", bad: "watch_ratio: bad watch ratio", badLine: 2, badCol: 8},
		{name: "id overflow", line: "99999999999,2,3,4,t,20200705,1593878903.438,0.5", bad: "user_id: bad id", badLine: 2, badCol: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, rep := readMatrixString(t, tc.line+"\n")
			if tc.bad != "" {
				if m.Len() != 0 || rep.BadRows[tc.bad] != 1 || len(rep.Errors) != 1 {
					t.Fatalf("want 1 bad row %q, got rows %d, bad %v", tc.bad, m.Len(), rep.BadRows)
				}
				e := rep.Errors[0]
				if e.File != "m.csv" || e.Line != tc.badLine || e.Column != tc.badCol {
					t.Errorf("error %v: want line %d column %d", e, tc.badLine, tc.badCol)
				}
				if !strings.Contains(e.Error(), "m.csv:2") {
					t.Errorf("error text %q does not name file and line", e.Error())
				}
				return
			}
			if m.Len() != 1 || rep.Bad() != 0 {
				t.Fatalf("rows %d, bad %v", m.Len(), rep.Errors)
			}
			if m.TimeMS[0] != tc.ts || m.Date[0] != tc.date || m.WatchRatio[0] != tc.wr {
				t.Errorf("got ts %d date %d wr %v; want %d %d %v", m.TimeMS[0], m.Date[0], m.WatchRatio[0], tc.ts, tc.date, tc.wr)
			}
		})
	}
}

func TestMatrixHeaderAndLines(t *testing.T) {
	if _, _, err := ReadMatrix(strings.NewReader("a,b\n1,2\n"), "x.csv", 0, 1, nil); !errors.Is(err, ErrHeader) {
		t.Errorf("bad header: err %v", err)
	}
	// BOM and CRLF header accepted; blank lines skipped; line numbers count them.
	body := "\xef\xbb\xbf" + MatrixHeader + "\r\n1,2,3,4,t,20200705,1.5,0.5\r\n\r\nbad\n1,2,3,4,t,20200705,1.5,0.5"
	m, rep, err := ReadMatrix(strings.NewReader(body), "x.csv", 0, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != 2 || rep.Bad() != 1 || rep.Errors[0].Line != 4 || rep.Rows != 3 {
		t.Errorf("rows %d bad %d line %d rows %d", m.Len(), rep.Bad(), rep.Errors[0].Line, rep.Rows)
	}
}

// Cleaning rules, one case each, on a tiny matrix.
func TestCleanRules(t *testing.T) {
	body := strings.Join([]string{
		"1,10,5,10,a,20200705,100.001,0.5",  // kept
		"1,10,5,10,a,20200705,100.001,0.5",  // exact duplicate of line 2
		"1,10,6,10,b,20200705,200.0,0.6",    // re-watch: same pair, other time: kept
		"2,10,5,10,a,20200705,100.001,0.5",  // same time, other user: kept
		"1,11,5,10,a,20200705,100.001,0.5",  // same time and user, other video: kept
		"1,10,5,10,a,20200706,100.001,0.5",  // differs in date only: kept
		"1,10,5,10,a2,20200705,100.001,0.5", // differs in time text only: kept
		"3,10,5,10,,,,0.5",                  // missing time: dropped (Load), kept (LoadEval)
		"3,10,5,10,a,,100.0,0.5",            // missing date: dropped
		"3,11,5,10,a,20200705,0.0,0.5",      // timestamp 0: dropped
		"3,12,5,10,a,20200705,-1.0,0.5",     // negative: dropped
		"0,10,5,10,a,20200705,50.0,0.5",     // earliest
	}, "\n")
	m, rep := readMatrixString(t, body)
	Clean(m, rep, false)
	if rep.DroppedDuplicates != 1 || rep.DroppedMissing != 2 || rep.DroppedNonPositiveTime != 2 || rep.Kept != 7 {
		t.Fatalf("report %+v", rep)
	}
	// Order: time, then user, then file order.
	var got []string
	for _, i := range m.Order {
		got = append(got, strings.Join([]string{itoa(m.User[i]), itoa(m.Video[i]), itoa(uint32(m.Date[i]))}, "/"))
	}
	want := "0/10/20200705 1/10/20200705 1/11/20200705 1/10/20200706 1/10/20200705 2/10/20200705 1/10/20200705"
	if strings.Join(got, " ") != want {
		t.Errorf("order %v\nwant  %v", got, want)
	}

	m2, rep2 := readMatrixString(t, body)
	Clean(m2, rep2, true)
	if rep2.KeptUntimed != 1 || rep2.DroppedMissing != 1 || rep2.Kept != 8 || len(m2.Order) != 7 {
		t.Errorf("eval clean: %+v, order %d", rep2, len(m2.Order))
	}
}

func itoa(x uint32) string { return strconv.FormatUint(uint64(x), 10) }

func TestSideFileQuirks(t *testing.T) {
	t.Run("item_categories lists", func(t *testing.T) {
		vids, rep, err := ReadItemCategories(strings.NewReader("video_id,feat\n0,[8]\n1,\"[27, 9]\"\n2,[]x\n3,[31]\n4,\"[1,2,3,4]\"\n"), "i.csv")
		if err != nil {
			t.Fatal(err)
		}
		if len(vids) != 3 || len(vids[1].Tags) != 2 || vids[1].Tags[0] != 27 || vids[1].Tags[1] != 9 || len(vids[2].Tags) != 4 {
			t.Errorf("videos %+v", vids)
		}
		if rep.BadRows["feat: bad list"] != 1 || rep.BadRows["feat: tag out of range"] != 1 {
			t.Errorf("bad %v", rep.BadRows)
		}
		if e := rep.Errors[0]; e.Line != 4 || e.Column != 2 {
			t.Errorf("error %v", e)
		}
	})
	t.Run("captions: unquoted Chinese topic tags, bare CR, -124", func(t *testing.T) {
		in := strings.Join(CaptionHeader, ",") + "\n" +
			"0,UNKNOWN,精神小伙路难走 程哥你狗粮慢点撒,[],8,颜值,673,颜值随拍,-124,UNKNOWN\n" +
			"4,五爱街最美美女 一天1q,\"#搞笑 #五爱市场\r这真是\",\"[五爱市场,感谢快手我要上热门,搞笑]\",5,时尚,737,营销售卖,2596,女装\n" +
			"5,UNKNOWN,,[萌宠驾到],-124,UNKNOWN,-124,UNKNOWN,-124,UNKNOWN\n"
		caps, rep, err := ReadCaptions(strings.NewReader(in), "c.csv")
		if err != nil || rep.Bad() != 0 || len(caps) != 3 {
			t.Fatalf("caps %d, bad %v, err %v", len(caps), rep.Errors, err)
		}
		if !strings.Contains(caps[1].Caption, "\r") || len(caps[1].TopicTags) != 3 || caps[1].TopicTags[1] != "感谢快手我要上热门" {
			t.Errorf("caption 4: %+v", caps[1])
		}
		if caps[2].CategoryID != [3]int32{-124, -124, -124} || caps[2].Caption != "" || caps[2].TopicTags[0] != "萌宠驾到" {
			t.Errorf("caption 5: %+v", caps[2])
		}
	})
	t.Run("user features: empty cells and quoted ranges", func(t *testing.T) {
		in := strings.Join(UserFeaturesHeader, ",") + "\n" +
			"0,high_active,0,0,0,5,\"(0,10]\",0,0,0,0,107,61-90,0,1,17,638,,0,1,6,184,6,3,0,,,,,,\n" +
			"1,UNKNOWN,0,0,0,x,\"(0,10]\",0,0,0,0,107,61-90,0,1,17,638,2,0,1,6,184,6,3,0,0,0,0,0,0,0\n"
		users, rep, err := ReadUsers(strings.NewReader(in), "u.csv")
		if err != nil {
			t.Fatal(err)
		}
		if len(users) != 1 || users[0].FollowRange != "(0,10]" || users[0].OneHot[4] != -1 || users[0].OneHot[12] != -1 || users[0].OneHot[3] != 638 {
			t.Errorf("users %+v", users)
		}
		if rep.BadRows["follow_user_num: bad count"] != 1 || rep.Errors[0].Line != 3 || rep.Errors[0].Column != 6 {
			t.Errorf("bad %v %v", rep.BadRows, rep.Errors)
		}
	})
	t.Run("social network", func(t *testing.T) {
		s, rep, err := ReadSocial(strings.NewReader("user_id,friend_list\n3371,[2975]\n5352,\"[4202, 7126]\"\n1,[x]\n"), "s.csv")
		if err != nil || rep.Bad() != 1 || len(s[5352]) != 2 || s[3371][0] != 2975 {
			t.Errorf("social %v bad %v err %v", s, rep.BadRows, err)
		}
	})
	t.Run("daily features: empty collect cells", func(t *testing.T) {
		in := strings.Join(DailyHeader, ",") + "\n" +
			"0,20200705,3309,NORMAL,2020-03-30,ShortImport,public,5966.0,720,1280,3350323409,841,建筑,14665,11372,10141,7485,88729488,5657,4834,5503,4775,5503,4775,1939,1481,0.7998600086607257,6629173,573,569,315,257,87,85,11,11,8,3,0,0,112,61,284,284,0,0,2,2,8,8,0,0,3,3,,,,\n"
		var got []DailyRow
		rep, err := ReadDaily(strings.NewReader(in), "d.csv", func(r *DailyRow) { got = append(got, *r) })
		if err != nil || rep.Bad() != 0 || len(got) != 1 {
			t.Fatalf("rows %d bad %v err %v", len(got), rep.Errors, err)
		}
		if got[0].Num[7] != 5966 || got[0].Num[26] != 0.7998600086607257 || !math.IsNaN(got[0].Num[54]) || got[0].Text[12] != "建筑" {
			t.Errorf("row %+v", got[0])
		}
	})
	t.Run("header mismatch is an error", func(t *testing.T) {
		if _, _, err := ReadUsers(strings.NewReader("user_id,x\n"), "u.csv"); !errors.Is(err, ErrHeader) {
			t.Errorf("err %v", err)
		}
	})
}

func TestFormatRoundTrip(t *testing.T) {
	for _, ms := range []int64{1593878903438, 1593882025500, 1593882025000, 1599312831419, 1593878903430} {
		b := AppendTimestamp(nil, ms)
		got, ok := parseTimestampMS(b)
		if !ok || got != ms {
			t.Errorf("%d -> %s -> %d", ms, b, got)
		}
	}
	if s := string(AppendLocalTime(nil, 1593878903438)); s != "2020-07-05 00:08:23.438" {
		t.Errorf("local time %s", s)
	}
	if d := LocalDate(1593878903438); d != 20200705 {
		t.Errorf("date %d", d)
	}
	for _, f := range []float64{1.2733965215790926, 1, 0, 5e-05, 573.4571, 0.078} {
		b := AppendPyFloat(nil, f)
		var m Interactions
		if e := parseMatrixLine([]byte("1,2,3,4,t,20200705,1.0,"+string(b)), &m); e != nil || m.WatchRatio[0] != f {
			t.Errorf("%v -> %s -> %v", f, b, m.WatchRatio)
		}
	}
	if s := string(AppendPyFloat(nil, 1)); s != "1.0" {
		t.Errorf("1 -> %s", s)
	}
}

func TestCleanHandBuiltAndEmpty(t *testing.T) {
	m := &Interactions{User: []uint32{1, 1, 2}, Video: []uint32{3, 3, 4}, PlayMS: []int32{1, 1, 1}, DurMS: []int32{2, 2, 2},
		TimeMS: []int64{20, 20, 10}, Date: []int32{20200705, 20200705, 20200705}, WatchRatio: []float64{0.5, 0.5, 0.5}}
	var rep FileReport
	Clean(m, &rep, false)
	if rep.DroppedDuplicates != 1 || m.Len() != 2 || m.Order[0] != 1 {
		t.Errorf("hand-built clean: %+v order %v", rep, m.Order)
	}
	empty := &Interactions{}
	Clean(empty, nil, false)
	if empty.Len() != 0 || len(empty.Pairs()) != 0 || ComputeStats(empty).Rows != 0 {
		t.Error("empty matrix")
	}
}
