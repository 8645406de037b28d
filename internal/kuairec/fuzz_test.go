package kuairec

import (
	"bytes"
	"strings"
	"testing"
)

var matrixSeeds = []string{
	"0,3649,13838,10867,2020-07-05 00:08:23.438,20200705,1593878903.438,1.2733965215790926\n",
	"14,148,4381,6067,2020-07-05 05:27:48.378,20200705.0,1593898068.378,0.7221031811438932\n7162,4364,2182,19367,,,,0.112666\n",
	"0,1,1,1,t,20200905,1.599304e+09,0.340597\r\n\r\n1,2,3,4,t,20200705,-5.0,573.4571\n",
	"1,2,3,4,\"a,b\",20200705,1.5,0.5\n1,2,3\n\"\n",
	"1,2,3,4,t,20200705,1.5,NaN\n9999999999,2,3,4,t,99999999,1.5,1e308\n",
}

// FuzzReadMatrix: the matrix parser never panics, accounts for every line,
// and cleaning any result gives a sorted replay order.
func FuzzReadMatrix(f *testing.F) {
	for _, s := range matrixSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in := append([]byte(MatrixHeader+"\n"), body...)
		m, rep, err := ReadMatrix(bytes.NewReader(in), "f.csv", 0, 2, nil)
		if err != nil {
			t.Fatal(err) // the header is fixed: no error is allowed
		}
		if rep.Read != m.Len() || rep.Rows != rep.Read+rep.Bad() {
			t.Fatalf("report %d read, %d rows, %d bad for %d parsed", rep.Read, rep.Rows, rep.Bad(), m.Len())
		}
		for _, e := range rep.Errors {
			if e.Line < 2 || e.File != "f.csv" {
				t.Fatalf("error %v", e)
			}
		}
		// The fast path and the general path agree line by line.
		for _, ln := range bytes.Split(body, []byte("\n")) {
			ln = bytes.TrimSuffix(ln, []byte("\r"))
			var fast, slow Interactions
			if parseMatrixFast(ln, &fast) {
				if e := parseMatrixLine(ln, &slow); e != nil {
					t.Fatalf("%q: fast path accepted, general path: %v", ln, e)
				}
				if fast.User[0] != slow.User[0] || fast.Video[0] != slow.Video[0] || fast.PlayMS[0] != slow.PlayMS[0] ||
					fast.DurMS[0] != slow.DurMS[0] || fast.TimeMS[0] != slow.TimeMS[0] || fast.Date[0] != slow.Date[0] ||
					fast.WatchRatio[0] != slow.WatchRatio[0] || fast.timeHash[0] != slow.timeHash[0] {
					t.Fatalf("%q: fast %+v, general %+v", ln, fast, slow)
				}
			}
		}
		Clean(m, rep, true)
		for k := 1; k < len(m.Order); k++ {
			a, b := m.Order[k-1], m.Order[k]
			if m.TimeMS[a] > m.TimeMS[b] || (m.TimeMS[a] == m.TimeMS[b] && m.User[a] > m.User[b]) {
				t.Fatalf("order not sorted at %d", k)
			}
		}
	})
}

// FuzzTimestamp: parseTimestampMS never panics, and AppendTimestamp output
// parses back to the same milliseconds.
func FuzzTimestamp(f *testing.F) {
	for _, s := range []string{"1593878903.438", "1593882025.5", "1593882025", "-3", "1.599304e+09", ".5", "1.", "+1.25", "1e400", "999999999999999.9999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, ok := parseTimestampMS([]byte(s))
		if !ok || ms < -1e15 || ms > 1e15 {
			return
		}
		b := AppendTimestamp(nil, ms)
		back, ok := parseTimestampMS(b)
		if !ok || back != ms {
			t.Fatalf("%q -> %d -> %s -> %d", s, ms, b, back)
		}
	})
}

// FuzzSideFiles: the side-file readers never panic nor fail past a good header.
func FuzzSideFiles(f *testing.F) {
	f.Add(uint8(0), "0,[8]\n1,\"[27, 9]\"\n2,[]\n")
	f.Add(uint8(1), "4,五爱街,\"#搞笑\r这\",\"[五爱市场,搞笑]\",5,时尚,737,营销售卖,2596,女装\n1,UNKNOWN,,[],-124,UNKNOWN,-124,UNKNOWN,-124,UNKNOWN\n")
	f.Add(uint8(2), "0,high_active,0,0,0,5,\"(0,10]\",0,0,0,0,107,61-90,0,1,17,638,,0,1,6,184,6,3,0,,,,,,\n")
	f.Add(uint8(3), "3371,[2975]\n5352,\"[4202, 7126]\"\n")
	f.Add(uint8(4), "0,20200705,3309,NORMAL,2020-03-30,ShortImport,public,5966.0,720,1280,3350323409,841,建筑,14665,11372,10141,7485,88729488,5657,4834,5503,4775,5503,4775,1939,1481,0.79,6629173,573,569,315,257,87,85,11,11,8,3,0,0,112,61,284,284,0,0,2,2,8,8,0,0,3,3,,,,\n")
	f.Add(uint8(1), "\"unterminated\n")
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		var err error
		var rep *FileReport
		switch which % 5 {
		case 0:
			_, rep, err = ReadItemCategories(strings.NewReader("video_id,feat\n"+body), "i.csv")
		case 1:
			_, rep, err = ReadCaptions(strings.NewReader(strings.Join(CaptionHeader, ",")+"\n"+body), "c.csv")
		case 2:
			_, rep, err = ReadUsers(strings.NewReader(strings.Join(UserFeaturesHeader, ",")+"\n"+body), "u.csv")
		case 3:
			_, rep, err = ReadSocial(strings.NewReader("user_id,friend_list\n"+body), "s.csv")
		case 4:
			rep, err = ReadDaily(strings.NewReader(strings.Join(DailyHeader, ",")+"\n"+body), "d.csv", func(*DailyRow) {})
		}
		if err != nil {
			t.Fatalf("error past a good header: %v", err)
		}
		if rep.Rows != rep.Read+rep.Bad() {
			t.Fatalf("rows %d != read %d + bad %d", rep.Rows, rep.Read, rep.Bad())
		}
	})
}
