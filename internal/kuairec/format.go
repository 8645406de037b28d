package kuairec

import (
	"strconv"
)

// Formatting helpers of the generator: each appends a value exactly as the
// KuaiRec files render it (pandas/Python float repr).

const CSTOffsetMS = 8 * 3600 * 1000

// Civil converts days since 1970-01-01 to (year, month, day) (Hinnant's algorithm).
func Civil(days int64) (int, int, int) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era = (z - 146096) / 146097
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}

// daysFromCivil is the inverse of Civil.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := int64(y - era*400)
	mm := int64(m)
	if mm > 2 {
		mm -= 3
	} else {
		mm += 9
	}
	doy := (153*mm+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + doe - 719468
}

func FloorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func append2(b []byte, v int) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }

// LocalDate returns the UTC+8 date of ms as YYYYMMDD.
func LocalDate(ms int64) int {
	y, m, d := Civil(FloorDiv(ms+CSTOffsetMS, 86400000))
	return y*10000 + m*100 + d
}

// AppendLocalTime appends ms rendered in UTC+8 as "2006-01-02 15:04:05.000".
func AppendLocalTime(b []byte, ms int64) []byte {
	l := ms + CSTOffsetMS
	days := FloorDiv(l, 86400000)
	rem := l - days*86400000
	y, m, d := Civil(days)
	b = strconv.AppendInt(b, int64(y), 10)
	b = append(b, '-')
	b = append2(b, m)
	b = append(b, '-')
	b = append2(b, d)
	b = append(b, ' ')
	sec := rem / 1000
	b = append2(b, int(sec/3600))
	b = append(b, ':')
	b = append2(b, int(sec/60%60))
	b = append(b, ':')
	b = append2(b, int(sec%60))
	msr := int(rem % 1000)
	return append(b, '.', byte('0'+msr/100), byte('0'+msr/10%10), byte('0'+msr%10))
}

// AppendPyFloat appends f as Python's repr does for the magnitudes in KuaiRec:
// the shortest round-tripping digits, ".0" on integral values.
func AppendPyFloat(b []byte, f float64) []byte {
	n := len(b)
	b = strconv.AppendFloat(b, f, 'g', -1, 64)
	for _, c := range b[n:] {
		if c == '.' || c == 'e' || c == 'n' || c == 'N' {
			return b
		}
	}
	return append(b, '.', '0')
}

// AppendTimestamp appends ms as Unix seconds the way pandas writes the float
// timestamp column: "1593878903.438", "1593882025.5", "1593882025.0".
func AppendTimestamp(b []byte, ms int64) []byte {
	if ms < 0 {
		b = append(b, '-')
		ms = -ms
	}
	sec, frac := ms/1000, ms%1000
	b = strconv.AppendInt(b, sec, 10)
	b = append(b, '.')
	if frac == 0 {
		return append(b, '0')
	}
	digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	nd := 3
	for nd > 1 && digits[nd-1] == '0' {
		nd--
	}
	return append(b, digits[:nd]...)
}
