package kuairec

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// File names of a KuaiRec 2.0 data folder.
const (
	BigMatrixFile     = "big_matrix.csv"
	SmallMatrixFile   = "small_matrix.csv"
	UserFeaturesFile  = "user_features.csv"
	ItemCategoryFile  = "item_categories.csv"
	ItemDailyFile     = "item_daily_features.csv"
	SocialNetworkFile = "social_network.csv"
	CaptionFile       = "kuairec_caption_category.csv"
)

// DataSubdir is the data folder inside a KuaiRec download: DIR/KuaiRec 2.0/data.
var DataSubdir = filepath.Join("KuaiRec 2.0", "data")

// ResolveDataDir turns a --data value into the folder holding the CSV files. It
// accepts DIR (containing "KuaiRec 2.0/data"), DIR/KuaiRec 2.0 (containing
// "data") or the data folder itself; a folder counts when it holds
// item_categories.csv, big_matrix.csv or small_matrix.csv.
func ResolveDataDir(p string) (string, error) {
	if p == "" {
		return "", errors.New("no data folder given")
	}
	for _, c := range []string{filepath.Join(p, DataSubdir), filepath.Join(p, "data"), p} {
		for _, f := range []string{ItemCategoryFile, BigMatrixFile, SmallMatrixFile} {
			if st, err := os.Stat(filepath.Join(c, f)); err == nil && st.Mode().IsRegular() {
				return c, nil
			}
		}
	}
	return "", fmt.Errorf("%s: no KuaiRec data found (looked for %s, %s and %s in DIR, DIR/data and DIR/%s)",
		p, ItemCategoryFile, BigMatrixFile, SmallMatrixFile, DataSubdir)
}

// User is one row of user_features.csv. Numeric cells that are empty in the
// file (onehot_feat4 and onehot_feat12..17 have some) are -1 in OneHot.
type User struct {
	ID            uint32
	ActiveDegree  string // full_active, high_active, middle_active, UNKNOWN
	IsLowActive   bool
	IsLiveStream  bool
	IsVideoAuthor bool
	FollowNum     int32
	FansNum       int32
	FriendNum     int32
	RegisterDays  int32
	// Range labels, as in the file (not always consistent with the counts).
	FollowRange, FansRange, FriendRange, RegisterRange string
	OneHot                                             [18]int32
	// Raw is the record as read (31 cells), used to re-write the file.
	Raw []string
}

// UserFeaturesHeader is the header of user_features.csv.
var UserFeaturesHeader = strings.Split("user_id,user_active_degree,is_lowactive_period,is_live_streamer,is_video_author,follow_user_num,follow_user_num_range,fans_user_num,fans_user_num_range,friend_user_num,friend_user_num_range,register_days,register_days_range,onehot_feat0,onehot_feat1,onehot_feat2,onehot_feat3,onehot_feat4,onehot_feat5,onehot_feat6,onehot_feat7,onehot_feat8,onehot_feat9,onehot_feat10,onehot_feat11,onehot_feat12,onehot_feat13,onehot_feat14,onehot_feat15,onehot_feat16,onehot_feat17", ",")

// Video is one row of item_categories.csv joined with its caption row.
type Video struct {
	ID   uint32
	Tags []uint8 // 1..4 anonymous tag ids in 0..30, in file order
	// Caption is nil when the caption file is absent or has no row for the video.
	Caption *Caption
}

// Caption is one row of kuairec_caption_category.csv. Category ids are -124 for
// UNKNOWN; captions may hold newlines and bare CRs.
type Caption struct {
	VideoID         uint32
	ManualCoverText string
	Caption         string
	TopicTags       []string // "[a,b]" split on commas, unquoted Chinese tags
	CategoryID      [3]int32 // first, second, third level
	CategoryName    [3]string
	// Raw is the record as read (10 cells).
	Raw []string
}

// NumTags is the number of anonymous tags in item_categories.csv.
const NumTags = 31

// UnknownCategory is the category id of a missing category.
const UnknownCategory = -124

// CaptionHeader is the header of kuairec_caption_category.csv.
var CaptionHeader = strings.Split("video_id,manual_cover_text,caption,topic_tag,first_level_category_id,first_level_category_name,second_level_category_id,second_level_category_name,third_level_category_id,third_level_category_name", ",")

// csvFile reads a CSV file with encoding/csv (which keeps bare CRs inside quoted
// fields, so the caption file parses to its 10,728 records), checks the header
// and calls fn for each record with its reader for FieldPos. A record with the
// wrong number of fields, a quoting error or an fn error is counted as bad.
func csvFile(r io.Reader, name string, header []string, fn func(rec []string, cr *csv.Reader) *RowError, rep *FileReport) error {
	cr := csv.NewReader(bufio.NewReaderSize(r, 1<<20))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	h, err := cr.Read()
	if err != nil {
		return fmt.Errorf("%s: reading header: %w", name, err)
	}
	if len(h) > 0 {
		h[0] = strings.TrimPrefix(h[0], "\xef\xbb\xbf")
	}
	if strings.Join(h, ",") != strings.Join(header, ",") {
		return fmt.Errorf("%s: line 1: %w: %q", name, ErrHeader, clip([]byte(strings.Join(h, ","))))
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		rep.Rows++
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return fmt.Errorf("reading %s: %w", name, err)
			}
			e := RowError{File: name, Line: pe.Line, Column: 0, Reason: "bad csv: " + pe.Err.Error(), Text: ""}
			rep.BadRows[e.Key()]++
			rep.addError(e)
			continue
		}
		if len(rec) != len(header) {
			line, _ := cr.FieldPos(0)
			e := RowError{File: name, Line: line, Reason: fmt.Sprintf("want %d fields, got %d", len(header), len(rec)), Text: clip([]byte(strings.Join(rec, ",")))}
			rep.BadRows[e.Key()]++
			rep.addError(e)
			continue
		}
		if e := fn(rec, cr); e != nil {
			e.File = name
			if e.Column > 0 {
				e.Line, _ = cr.FieldPos(e.Column - 1)
				e.Name = header[e.Column-1]
			} else {
				e.Line, _ = cr.FieldPos(0)
			}
			rep.BadRows[e.Key()]++
			rep.addError(*e)
			continue
		}
		rep.Read++
	}
	return nil
}

func cellErr(col int, reason, text string) *RowError {
	return &RowError{Column: col + 1, Reason: reason, Text: clip([]byte(text))}
}

func atoi32(s string) (int32, bool) {
	if s == "" {
		return 0, false
	}
	if strings.HasSuffix(s, ".0") { // pandas float rendering of an int column
		s = s[:len(s)-2]
	}
	v, err := strconv.ParseInt(s, 10, 32)
	return int32(v), err == nil
}

func atoid(s string) (uint32, bool) {
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err == nil
}

func atobool(s string) (bool, bool) {
	switch s {
	case "0", "0.0":
		return false, true
	case "1", "1.0":
		return true, true
	}
	return false, false
}

// ReadUsers reads user_features.csv. Empty onehot cells become -1; an empty or
// non-numeric count or flag makes the row bad.
func ReadUsers(r io.Reader, name string) ([]User, *FileReport, error) {
	rep := newFileReport(name)
	var users []User
	err := csvFile(r, name, UserFeaturesHeader, func(rec []string, _ *csv.Reader) *RowError {
		var u User
		var ok bool
		if u.ID, ok = atoid(rec[0]); !ok {
			return cellErr(0, "bad id", rec[0])
		}
		u.ActiveDegree = rec[1]
		if rec[1] == "" {
			return cellErr(1, "empty", rec[1])
		}
		for i, p := range []*bool{&u.IsLowActive, &u.IsLiveStream, &u.IsVideoAuthor} {
			if *p, ok = atobool(rec[2+i]); !ok {
				return cellErr(2+i, "bad flag", rec[2+i])
			}
		}
		for i, p := range []*int32{&u.FollowNum, &u.FansNum, &u.FriendNum, &u.RegisterDays} {
			c := 5 + 2*i
			if *p, ok = atoi32(rec[c]); !ok || *p < 0 {
				return cellErr(c, "bad count", rec[c])
			}
		}
		u.FollowRange, u.FansRange, u.FriendRange, u.RegisterRange = rec[6], rec[8], rec[10], rec[12]
		for i := range 18 {
			s := rec[13+i]
			if s == "" {
				u.OneHot[i] = -1
				continue
			}
			if u.OneHot[i], ok = atoi32(s); !ok || u.OneHot[i] < 0 {
				return cellErr(13+i, "bad category", s)
			}
		}
		u.Raw = append([]string(nil), rec...)
		users = append(users, u)
		return nil
	}, rep)
	return users, rep, err
}

// ParseIntList parses a list cell: "[8]", "[27, 9]", "[]". Spaces are ignored.
func ParseIntList(s string) ([]int, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, false
	}
	s = strings.TrimSpace(s[1 : len(s)-1])
	if s == "" {
		return []int{}, true
	}
	parts := strings.Split(s, ",")
	out := make([]int, 0, len(parts))
	for _, p := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}

// ParseTopicTags parses a topic_tag cell: "[]" or "[五爱市场,感谢快手我要上热门,搞笑]"
// (unquoted tags, split on commas; empty tags dropped).
func ParseTopicTags(s string) ([]string, bool) {
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, false
	}
	var out []string
	for _, p := range strings.Split(s[1:len(s)-1], ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out, true
}

// ReadItemCategories reads item_categories.csv. A row whose tag list is not a
// list of ints in 0..30 is bad.
func ReadItemCategories(r io.Reader, name string) ([]Video, *FileReport, error) {
	rep := newFileReport(name)
	var vids []Video
	err := csvFile(r, name, []string{"video_id", "feat"}, func(rec []string, _ *csv.Reader) *RowError {
		id, ok := atoid(rec[0])
		if !ok {
			return cellErr(0, "bad id", rec[0])
		}
		tags, ok := ParseIntList(rec[1])
		if !ok {
			return cellErr(1, "bad list", rec[1])
		}
		v := Video{ID: id, Tags: make([]uint8, 0, len(tags))}
		for _, t := range tags {
			if t < 0 || t >= NumTags {
				return cellErr(1, "tag out of range", rec[1])
			}
			v.Tags = append(v.Tags, uint8(t))
		}
		vids = append(vids, v)
		return nil
	}, rep)
	return vids, rep, err
}

// ReadCaptions reads kuairec_caption_category.csv.
func ReadCaptions(r io.Reader, name string) ([]Caption, *FileReport, error) {
	rep := newFileReport(name)
	var caps []Caption
	err := csvFile(r, name, CaptionHeader, func(rec []string, _ *csv.Reader) *RowError {
		var c Caption
		var ok bool
		if c.VideoID, ok = atoid(rec[0]); !ok {
			return cellErr(0, "bad id", rec[0])
		}
		c.ManualCoverText, c.Caption = rec[1], rec[2]
		if c.TopicTags, ok = ParseTopicTags(rec[3]); !ok {
			return cellErr(3, "bad list", rec[3])
		}
		for l := range 3 {
			col := 4 + 2*l
			if c.CategoryID[l], ok = atoi32(rec[col]); !ok {
				return cellErr(col, "bad category", rec[col])
			}
			c.CategoryName[l] = rec[col+1]
		}
		c.Raw = append([]string(nil), rec...)
		caps = append(caps, c)
		return nil
	}, rep)
	return caps, rep, err
}

// ReadSocial reads social_network.csv into user -> friends.
func ReadSocial(r io.Reader, name string) (map[uint32][]uint32, *FileReport, error) {
	rep := newFileReport(name)
	out := map[uint32][]uint32{}
	err := csvFile(r, name, []string{"user_id", "friend_list"}, func(rec []string, _ *csv.Reader) *RowError {
		u, ok := atoid(rec[0])
		if !ok {
			return cellErr(0, "bad id", rec[0])
		}
		fl, ok := ParseIntList(rec[1])
		if !ok {
			return cellErr(1, "bad list", rec[1])
		}
		fr := make([]uint32, 0, len(fl))
		for _, f := range fl {
			if f < 0 || f > math.MaxUint32 {
				return cellErr(1, "bad id", rec[1])
			}
			fr = append(fr, uint32(f))
		}
		out[u] = append(out[u], fr...)
		return nil
	}, rep)
	return out, rep, err
}

// DailyHeader is the header of item_daily_features.csv (58 columns).
var DailyHeader = strings.Split("video_id,date,author_id,video_type,upload_dt,upload_type,visible_status,video_duration,video_width,video_height,music_id,video_tag_id,video_tag_name,show_cnt,show_user_num,play_cnt,play_user_num,play_duration,complete_play_cnt,complete_play_user_num,valid_play_cnt,valid_play_user_num,long_time_play_cnt,long_time_play_user_num,short_time_play_cnt,short_time_play_user_num,play_progress,comment_stay_duration,like_cnt,like_user_num,click_like_cnt,double_click_cnt,cancel_like_cnt,cancel_like_user_num,comment_cnt,comment_user_num,direct_comment_cnt,reply_comment_cnt,delete_comment_cnt,delete_comment_user_num,comment_like_cnt,comment_like_user_num,follow_cnt,follow_user_num,cancel_follow_cnt,cancel_follow_user_num,share_cnt,share_user_num,download_cnt,download_user_num,report_cnt,report_user_num,reduce_similar_cnt,reduce_similar_user_num,collect_cnt,collect_user_num,cancel_collect_cnt,cancel_collect_user_num", ",")

// dailyStringCols are the text columns of item_daily_features.csv.
var dailyStringCols = map[int]bool{3: true, 4: true, 5: true, 6: true, 12: true}

// DailyRow is one row of item_daily_features.csv: Num[i] is column i as a
// number (NaN for an empty cell and for the text columns video_type, upload_dt,
// upload_type, visible_status and video_tag_name, which are in Text).
type DailyRow struct {
	VideoID uint32
	Date    int32
	Num     [58]float64
	Text    map[int]string
}

// DailyAgg aggregates a video's rows of item_daily_features.csv.
type DailyAgg struct {
	Days          int
	ShowCnt       float64 // sums over the days
	PlayCnt       float64
	CompleteCnt   float64
	ValidPlayCnt  float64
	LikeCnt       float64
	CommentCnt    float64
	ShareCnt      float64
	FollowCnt     float64
	ProgressSum   float64 // sum of play_progress over days with a value
	ProgressDays  int
	VideoDuration float64 // ms, last non-empty value
	UploadDate    string  // upload_dt of the last row
}

// MeanProgress is the mean daily play_progress (0 when unknown).
func (a *DailyAgg) MeanProgress() float64 {
	if a.ProgressDays == 0 {
		return 0
	}
	return a.ProgressSum / float64(a.ProgressDays)
}

// ReadDaily reads item_daily_features.csv and calls fn for each good row (the
// row is reused between calls).
func ReadDaily(r io.Reader, name string, fn func(*DailyRow)) (*FileReport, error) {
	rep := newFileReport(name)
	row := &DailyRow{Text: map[int]string{}}
	err := csvFile(r, name, DailyHeader, func(rec []string, _ *csv.Reader) *RowError {
		var ok bool
		if row.VideoID, ok = atoid(rec[0]); !ok {
			return cellErr(0, "bad id", rec[0])
		}
		if row.Date, ok = atoi32(rec[1]); !ok {
			return cellErr(1, "bad date", rec[1])
		}
		for i, s := range rec {
			if dailyStringCols[i] {
				row.Text[i] = s
				row.Num[i] = math.NaN()
				continue
			}
			if s == "" {
				row.Num[i] = math.NaN()
				continue
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsInf(f, 0) {
				return cellErr(i, "bad number", s)
			}
			row.Num[i] = f
		}
		fn(row)
		return nil
	}, rep)
	return rep, err
}

func (a *DailyAgg) add(r *DailyRow) {
	nz := func(f float64) float64 {
		if math.IsNaN(f) {
			return 0
		}
		return f
	}
	a.Days++
	a.ShowCnt += nz(r.Num[13])
	a.PlayCnt += nz(r.Num[15])
	a.CompleteCnt += nz(r.Num[18])
	a.ValidPlayCnt += nz(r.Num[20])
	a.LikeCnt += nz(r.Num[28])
	a.CommentCnt += nz(r.Num[34])
	a.FollowCnt += nz(r.Num[42])
	a.ShareCnt += nz(r.Num[46])
	if p := r.Num[26]; !math.IsNaN(p) {
		a.ProgressSum += p
		a.ProgressDays++
	}
	if d := r.Num[7]; !math.IsNaN(d) {
		a.VideoDuration = d
	}
	a.UploadDate = r.Text[4]
}

// openFile opens dir/name; a missing optional file gives (nil, nil).
func openFile(dir, name string, optional bool) (*os.File, error) {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		if optional && errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("opening %s: %w", name, err)
	}
	return f, nil
}

// timed runs fn and stores its wall time in the report it returns.
func timed(fn func() (*FileReport, error)) (*FileReport, error) {
	t0 := time.Now()
	rep, err := fn()
	if rep != nil {
		rep.Elapsed = time.Since(t0)
	}
	return rep, err
}
