package synth

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"fmt"
	"github.com/streamrec/streamrec/internal/kuairec"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// sideInfo is what the generator needs from the side files.
type sideInfo struct {
	tags    [][]uint8 // per video id
	cat     []int32   // first-level category per video id
	catName map[int32]string
}

// prepareSide writes user_features.csv, item_categories.csv and
// kuairec_caption_category.csv into dataDir: the real files of cfg.SideDir
// restricted to the scale's ids (byte-identical records; the whole file at full
// scale), or synthesised ones.
func prepareSide(cfg GenConfig, dataDir string) (*sideInfo, error) {
	sc := cfg.Scale
	si := &sideInfo{tags: make([][]uint8, sc.Videos), cat: make([]int32, sc.Videos), catName: map[int32]string{}}
	r := rand.New(rand.NewPCG(cfg.Seed, 0x51de))
	if cfg.SideDir == "" {
		if err := synthUsers(r, sc, filepath.Join(dataDir, kuairec.UserFeaturesFile)); err != nil {
			return nil, err
		}
		if err := synthItems(r, sc, si, dataDir); err != nil {
			return nil, err
		}
		return si, nil
	}
	src, err := kuairec.ResolveDataDir(cfg.SideDir)
	if err != nil {
		return nil, fmt.Errorf("side files: %w", err)
	}
	n, err := copyFilteredCSV(filepath.Join(src, kuairec.UserFeaturesFile), filepath.Join(dataDir, kuairec.UserFeaturesFile), sc.Users)
	if err != nil {
		return nil, err
	}
	if n != sc.Users {
		return nil, fmt.Errorf("side files: %s has %d of the users 0..%d", kuairec.UserFeaturesFile, n, sc.Users-1)
	}
	if n, err = copyFilteredCSV(filepath.Join(src, kuairec.ItemCategoryFile), filepath.Join(dataDir, kuairec.ItemCategoryFile), sc.Videos); err != nil {
		return nil, err
	}
	if n != sc.Videos {
		return nil, fmt.Errorf("side files: %s has %d of the videos 0..%d", kuairec.ItemCategoryFile, n, sc.Videos-1)
	}
	f, err := os.Open(filepath.Join(dataDir, kuairec.ItemCategoryFile))
	if err != nil {
		return nil, err
	}
	vids, rep, err := kuairec.ReadItemCategories(f, kuairec.ItemCategoryFile)
	f.Close()
	if err != nil {
		return nil, err
	}
	if rep.Bad() > 0 || len(vids) != sc.Videos {
		return nil, fmt.Errorf("side files: %s has %d bad rows", kuairec.ItemCategoryFile, rep.Bad())
	}
	for _, v := range vids {
		si.tags[v.ID] = v.Tags
	}
	capSrc := filepath.Join(src, kuairec.CaptionFile)
	if _, err := os.Stat(capSrc); err != nil {
		return si, synthCaptions(r, sc, si, filepath.Join(dataDir, kuairec.CaptionFile))
	}
	if _, err := copyFilteredCSV(capSrc, filepath.Join(dataDir, kuairec.CaptionFile), sc.Videos); err != nil {
		return nil, err
	}
	f, err = os.Open(filepath.Join(dataDir, kuairec.CaptionFile))
	if err != nil {
		return nil, err
	}
	caps, _, err := kuairec.ReadCaptions(f, kuairec.CaptionFile)
	f.Close()
	if err != nil {
		return nil, err
	}
	for i := range si.cat {
		si.cat[i] = kuairec.UnknownCategory
	}
	si.catName[kuairec.UnknownCategory] = "UNKNOWN"
	for _, c := range caps {
		if int(c.VideoID) < sc.Videos {
			si.cat[c.VideoID] = c.CategoryID[0]
			si.catName[c.CategoryID[0]] = c.CategoryName[0]
		}
	}
	return si, nil
}

// copyFilteredCSV copies the header and the records whose first cell is an id
// below limit, byte for byte (record boundaries from encoding/csv, so quoted
// newlines and bare CRs stay inside their record). It returns the records kept.
func copyFilteredCSV(src, dst string, limit int) (int, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return 0, fmt.Errorf("side files: %w", err)
	}
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var out bytes.Buffer
	prev := int64(0)
	kept := 0
	for first := true; ; first = false {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("side files: %s: %w", src, err)
		}
		end := cr.InputOffset()
		raw := data[prev:end]
		prev = end
		if !first {
			id, err := strconv.Atoi(rec[0])
			if err != nil || id < 0 || id >= limit {
				continue
			}
			kept++
		}
		out.Write(raw)
		if len(raw) > 0 && raw[len(raw)-1] != '\n' {
			out.WriteByte('\n')
		}
	}
	return kept, os.WriteFile(dst, out.Bytes(), 0o644)
}

func writeCSV(path string, header []string, rows func(w *csv.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	w := csv.NewWriter(bw)
	if err := w.Write(header); err != nil {
		return err
	}
	if err := rows(w); err != nil {
		return err
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func pickW(r *rand.Rand, w []float64) int {
	s := 0.0
	for _, x := range w {
		s += x
	}
	x := r.Float64() * s
	for i, v := range w {
		if x < v {
			return i
		}
		x -= v
	}
	return len(w) - 1
}

func bucket(x int, bounds []int, labels []string) string {
	for i, b := range bounds {
		if x <= b {
			return labels[i]
		}
	}
	return labels[len(labels)-1]
}

// synthUsers writes a user_features.csv with the cardinalities and quirks of
// the real one (STATS.md §4): UNKNOWN activity, quoted range labels, range
// labels sometimes inconsistent with counts, empty onehot cells.
func synthUsers(r *rand.Rand, sc Scale, path string) error {
	cards := [18]int{2, 8, 30, 1076, 12, 10, 3, 47, 340, 7, 5, 3, 2, 2, 2, 2, 2, 2}
	lnorm := func(med, sg float64, hi int) int {
		return min(hi, int(med*math.Exp(sg*r.NormFloat64())))
	}
	return writeCSV(path, kuairec.UserFeaturesHeader, func(w *csv.Writer) error {
		rec := make([]string, len(kuairec.UserFeaturesHeader))
		for u := range sc.Users {
			rec[0] = strconv.Itoa(u)
			rec[1] = []string{"full_active", "high_active", "UNKNOWN", "middle_active"}[pickW(r, []float64{6092, 938, 118, 28})]
			flag := func(p float64) string {
				if r.Float64() < p {
					return "1"
				}
				return "0"
			}
			rec[2], rec[3], rec[4] = flag(3.0/7176), flag(49.0/7176), flag(1217.0/7176)
			jit := func(i int, n int) int { // 5% labels off by one bucket
				if r.Float64() < 0.05 {
					return max(0, min(n-1, i+1))
				}
				return i
			}
			follow := 0
			if r.Float64() > 0.05 {
				follow = lnorm(60, 1.3, 2100)
			}
			fl := []string{"0", "(0,10]", "(10,50]", "(50,100]", "(100,150]", "(150,250]", "(250,500]", "500+"}
			fb := []int{0, 10, 50, 100, 150, 250, 500}
			rec[5], rec[6] = strconv.Itoa(follow), fl[jit(idxOf(fl, bucket(follow, fb, fl)), len(fl))]
			fans := 0
			if r.Float64() > 0.4 {
				fans = lnorm(3, 1.5, 11401)
			}
			fal := []string{"0", "[1,10)", "[10,100)", "[100,1k)", "[1k,5k)", "[5k,1w)", "[1w,10w)"}
			rec[7], rec[8] = strconv.Itoa(fans), bucket(fans, []int{0, 9, 99, 999, 4999, 9999}, fal)
			fr := 0
			if r.Float64() > 0.3 {
				fr = lnorm(4, 1.2, 1425)
			}
			frl := []string{"0", "[1,5)", "[5,30)", "[30,60)", "[60,120)", "[120,250)", "250+"}
			rec[9], rec[10] = strconv.Itoa(fr), bucket(fr, []int{0, 4, 29, 59, 119, 249}, frl)
			rd := lnorm(225, 0.9, 2245)
			rdl := []string{"15-30", "31-60", "61-90", "91-180", "181-365", "366-730", "730+"}
			rec[11], rec[12] = strconv.Itoa(rd), rdl[jit(idxOf(rdl, bucket(rd, []int{30, 60, 90, 180, 365, 730}, rdl)), len(rdl))]
			miss1317 := r.Float64() < 75.0/7176
			for i, c := range cards {
				v := int(float64(c) * r.Float64() * r.Float64())
				rec[13+i] = strconv.Itoa(v)
				if (i == 4 && r.Float64() < 201.0/7176) || (i == 12 && (miss1317 || r.Float64() < 2.0/7176)) || (i >= 13 && miss1317) {
					rec[13+i] = ""
				}
			}
			if err := w.Write(rec); err != nil {
				return err
			}
		}
		return nil
	})
}

func idxOf(xs []string, s string) int {
	for i, x := range xs {
		if x == s {
			return i
		}
	}
	return 0
}

var synthWords = strings.Fields("搞笑 美食 宠物 萌宠驾到 直播 旅行 音乐 舞蹈 颜值 时尚 游戏 汽车 体育 教育 科技 生活 情感 亲子 健身 摄影 风景 美妆 农村 动漫 新闻 民生资讯 喜剧 高新数码 建筑 祝福")

var synthCats = []string{"民生资讯", "时尚", "其他", "颜值", "情感", "美食", "宠物", "喜剧", "游戏", "音乐", "舞蹈", "汽车", "体育", "教育", "科技", "生活", "亲子", "健身", "摄影", "旅行", "美妆", "三农", "动漫", "影视", "明星", "综艺", "军事", "历史", "读书", "手工", "绘画", "家居", "职场", "财经", "法律", "医疗", "公益", "高新数码"}

// synthItems writes item_categories.csv and kuairec_caption_category.csv.
func synthItems(r *rand.Rand, sc Scale, si *sideInfo, dataDir string) error {
	tagW := make([]float64, kuairec.NumTags)
	for t := range tagW {
		tagW[t] = 1 / math.Pow(float64(t+1), 1.1)
	}
	perm := r.Perm(kuairec.NumTags)
	err := writeCSV(filepath.Join(dataDir, kuairec.ItemCategoryFile), []string{"video_id", "feat"}, func(w *csv.Writer) error {
		for v := range sc.Videos {
			n := 1 + pickW(r, []float64{8970, 1562, 185, 11})
			var tags []uint8
			for len(tags) < n {
				t := uint8(perm[pickW(r, tagW)])
				dup := false
				for _, x := range tags {
					dup = dup || x == t
				}
				if !dup {
					tags = append(tags, t)
				}
			}
			si.tags[v] = tags
			parts := make([]string, len(tags))
			for i, t := range tags {
				parts[i] = strconv.Itoa(int(t))
			}
			if err := w.Write([]string{strconv.Itoa(v), "[" + strings.Join(parts, ", ") + "]"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return synthCaptions(r, sc, si, filepath.Join(dataDir, kuairec.CaptionFile))
}

func synthCaptions(r *rand.Rand, sc Scale, si *sideInfo, path string) error {
	si.catName[kuairec.UnknownCategory] = "UNKNOWN"
	phrase := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 && r.IntN(3) == 0 {
				b.WriteByte(' ')
			}
			b.WriteString(synthWords[r.IntN(len(synthWords))])
		}
		return b.String()
	}
	return writeCSV(path, kuairec.CaptionHeader, func(w *csv.Writer) error {
		rec := make([]string, len(kuairec.CaptionHeader))
		for v := range sc.Videos {
			rec[0] = strconv.Itoa(v)
			rec[1] = "UNKNOWN"
			if r.Float64() < 0.376 {
				rec[1] = phrase(1 + r.IntN(4))
			}
			rec[2] = ""
			if r.Float64() < 0.874 {
				rec[2] = phrase(1 + r.IntN(8))
				if r.IntN(2500) == 0 {
					rec[2] += "\r" + phrase(2) // the real file has 4 captions with a bare CR
				}
			}
			rec[3] = "[]"
			if r.Float64() < 0.57 {
				n := 1 + r.IntN(4)
				tags := make([]string, n)
				for i := range tags {
					tags[i] = synthWords[r.IntN(len(synthWords))]
				}
				rec[3] = "[" + strings.Join(tags, ",") + "]"
			}
			c1 := int32(r.IntN(len(synthCats)))
			name := synthCats[c1]
			if r.Float64() < 40.0/10728 {
				c1, name = kuairec.UnknownCategory, "UNKNOWN"
			}
			si.cat[v], si.catName[c1] = c1, name
			rec[4], rec[5] = strconv.Itoa(int(c1)), name
			rec[6], rec[7], rec[8], rec[9] = "-124", "UNKNOWN", "-124", "UNKNOWN"
			if c1 != kuairec.UnknownCategory && r.Float64() < 0.666 {
				rec[6], rec[7] = strconv.Itoa(600+int(c1)*4+r.IntN(4)), name+"随拍"
				if r.Float64() < 0.54 {
					rec[8], rec[9] = strconv.Itoa(2400+int(c1)*6+r.IntN(6)), name+"精选"
				}
			}
			if err := w.Write(rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeSocial writes social_network.csv: SocialUsers users (not sorted) with 1-5
// friends; multi-friend lists are quoted ("[4202, 7126]").
func (g *genModel) writeSocial(path string) error {
	r := rand.New(rand.NewPCG(g.seed, 0x50c1a1))
	users := r.Perm(g.sc.Users)[:min(g.sc.SocialUsers, g.sc.Users)]
	return writeCSV(path, []string{"user_id", "friend_list"}, func(w *csv.Writer) error {
		for _, u := range users {
			n := 1 + pickW(r, []float64{70, 20, 7, 2, 1})
			seen := map[int]bool{u: true}
			var fr []string
			for len(fr) < n && len(seen) < g.sc.Users {
				f := r.IntN(g.sc.Users)
				if !seen[f] {
					seen[f] = true
					fr = append(fr, strconv.Itoa(f))
				}
			}
			if err := w.Write([]string{strconv.Itoa(u), "[" + strings.Join(fr, ", ") + "]"}); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeDaily writes item_daily_features.csv: one row per (video, day) from the
// video's upload (or Jul 5) to Sep 5, 90% of days present; counts follow the
// video's popularity and quality; collect_* cells are empty before 2020-07-10.
func (g *genModel) writeDaily(path string) (int, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString(strings.Join(kuairec.DailyHeader, ",") + "\n")
	meanPop := 0.0
	for _, v := range g.truth.Videos {
		meanPop += v.Popularity
	}
	meanPop /= float64(len(g.truth.Videos))
	startDay := kuairec.FloorDiv(SpanStartMS+kuairec.CSTOffsetMS, 86400000)
	rows := 0
	var b []byte
	for vi := range g.truth.Videos {
		vt := &g.truth.Videos[vi]
		r := rand.New(rand.NewPCG(g.seed^0xda11, uint64(vi)))
		upDay := startDay - 10 + int64(r.IntN(spanDays+10))
		if vt.ReleaseMS != 0 {
			upDay = kuairec.FloorDiv(vt.ReleaseMS+kuairec.CSTOffsetMS, 86400000)
		}
		uy, um, ud := kuairec.Civil(upDay)
		upload := fmt.Sprintf("%04d-%02d-%02d", uy, um, ud)
		author := 1 + r.IntN(9000)
		utype := []string{"ShortImport", "LongImport", "ShortCamera", "LongCamera", "Web"}[pickW(r, []float64{60, 15, 15, 5, 5})]
		wd, ht := []int{720, 576, 528, 720}[r.IntN(4)], []int{1280, 1024, 960, 1556}[r.IntN(4)]
		music := 1e9 + r.Int64N(3e9)
		cat := g.side.cat[vi]
		name := g.side.catName[cat]
		if name == "" {
			name = "UNKNOWN"
		}
		for day := max(upDay, startDay); day < startDay+spanDays; day++ {
			if r.Float64() >= 0.9 {
				continue
			}
			pop := vt.Popularity
			dms := day*86400000 - kuairec.CSTOffsetMS
			if g.truth.Manifest.PopDriftMS != 0 && dms >= g.truth.Manifest.PopDriftMS {
				pop = vt.PopularityAfter
			}
			show := int(pop / meanPop * 2000 * math.Exp(0.4*r.NormFloat64()-0.03*float64(day-upDay)))
			y, m, d := kuairec.Civil(day)
			date := y*10000 + m*100 + d
			prog := min(1, max(0.01, 0.75+0.2*vt.Quality-0.3*durTerm(vt.DurationMS)+0.05*r.NormFloat64()))
			play := int(float64(show) * (0.6 + 0.2*r.Float64()))
			frac := func(n int, p float64) int { return int(float64(n) * min(1, max(0, p))) }
			complete := frac(play, prog*prog)
			valid := frac(play, prog)
			long := frac(play, prog*0.9)
			short := frac(play, 1-prog)
			like := frac(play, 0.03*math.Exp(vt.Quality))
			comment := frac(play, 0.002)
			follow := frac(play, 0.003)
			share := frac(play, 0.002)
			nums := []int{show, frac(show, 0.8), play, frac(play, 0.75), int(float64(play) * prog * float64(vt.DurationMS)), complete, frac(complete, 0.85), valid, frac(valid, 0.85), long, frac(long, 0.85), short, frac(short, 0.9)}
			b = b[:0]
			b = fmt.Appendf(b, "%d,%d,%d,NORMAL,%s,%s,public,", vi, date, author, upload, utype)
			b = kuairec.AppendPyFloat(b, float64(vt.DurationMS))
			b = fmt.Appendf(b, ",%d,%d,%d,%d,%s", wd, ht, music, cat, name)
			for _, n := range nums {
				b = strconv.AppendInt(append(b, ','), int64(n), 10)
			}
			b = kuairec.AppendPyFloat(append(b, ','), prog)
			rest := []int{frac(play, 0.5) * 1000, like, frac(like, 0.98), frac(like, 0.6), frac(like, 0.4), frac(like, 0.02), frac(like, 0.02),
				comment, frac(comment, 0.9), frac(comment, 0.7), frac(comment, 0.3), 0, 0, frac(comment, 3), frac(comment, 2),
				follow, follow, 0, 0, share, share, frac(share, 0.5), frac(share, 0.5), 0, 0, frac(play, 0.0005), frac(play, 0.0005)}
			for _, n := range rest {
				b = strconv.AppendInt(append(b, ','), int64(n), 10)
			}
			if date < 20200710 {
				b = append(b, ",,,,"...)
			} else {
				c := float64(frac(play, 0.001))
				for _, x := range []float64{c, c, 0, 0} {
					b = kuairec.AppendPyFloat(append(b, ','), x)
				}
			}
			b = append(b, '\n')
			if _, err := w.Write(b); err != nil {
				return 0, err
			}
			rows++
		}
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	return rows, f.Close()
}
