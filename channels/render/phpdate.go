package render

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// PHPDate formats t with a PHP date() format string, the format Mautic's
// date_format_* settings use.
//
// Supported: d D j l N S w z W F m M n t L o Y y a A B g G h H i s u v
// e I O P p T Z c r U, and backslash to escape the next character. Any other
// byte is copied as is, as PHP does; a trailing lone backslash is dropped.
func PHPDate(t time.Time, format string) string {
	var b strings.Builder
	b.Grow(len(format) * 2)
	for i := 0; i < len(format); i++ {
		c := format[i]
		switch c {
		case '\\':
			if i+1 < len(format) {
				i++
				b.WriteByte(format[i])
			}
		// Day.
		case 'd':
			pad2(&b, t.Day())
		case 'D':
			b.WriteString(t.Weekday().String()[:3])
		case 'j':
			b.WriteString(strconv.Itoa(t.Day()))
		case 'l':
			b.WriteString(t.Weekday().String())
		case 'N':
			wd := int(t.Weekday())
			if wd == 0 {
				wd = 7
			}
			b.WriteString(strconv.Itoa(wd))
		case 'S':
			b.WriteString(ordinalSuffix(t.Day()))
		case 'w':
			b.WriteString(strconv.Itoa(int(t.Weekday())))
		case 'z':
			b.WriteString(strconv.Itoa(t.YearDay() - 1))
		// Week.
		case 'W':
			_, w := t.ISOWeek()
			pad2(&b, w)
		// Month.
		case 'F':
			b.WriteString(t.Month().String())
		case 'm':
			pad2(&b, int(t.Month()))
		case 'M':
			b.WriteString(t.Month().String()[:3])
		case 'n':
			b.WriteString(strconv.Itoa(int(t.Month())))
		case 't':
			b.WriteString(strconv.Itoa(daysIn(t.Year(), t.Month())))
		// Year.
		case 'L':
			if daysIn(t.Year(), time.February) == 29 {
				b.WriteByte('1')
			} else {
				b.WriteByte('0')
			}
		case 'o':
			y, _ := t.ISOWeek()
			b.WriteString(strconv.Itoa(y))
		case 'Y':
			b.WriteString(strconv.Itoa(t.Year()))
		case 'y':
			pad2(&b, ((t.Year()%100)+100)%100)
		// Time.
		case 'a':
			if t.Hour() < 12 {
				b.WriteString("am")
			} else {
				b.WriteString("pm")
			}
		case 'A':
			if t.Hour() < 12 {
				b.WriteString("AM")
			} else {
				b.WriteString("PM")
			}
		case 'B':
			u := t.UTC()
			secs := u.Hour()*3600 + u.Minute()*60 + u.Second() + 3600
			fmt.Fprintf(&b, "%03d", (secs*10/864)%1000)
		case 'g':
			b.WriteString(strconv.Itoa(hour12(t.Hour())))
		case 'G':
			b.WriteString(strconv.Itoa(t.Hour()))
		case 'h':
			pad2(&b, hour12(t.Hour()))
		case 'H':
			pad2(&b, t.Hour())
		case 'i':
			pad2(&b, t.Minute())
		case 's':
			pad2(&b, t.Second())
		case 'u':
			fmt.Fprintf(&b, "%06d", t.Nanosecond()/1000)
		case 'v':
			fmt.Fprintf(&b, "%03d", t.Nanosecond()/1000000)
		// Time zone.
		case 'e':
			b.WriteString(t.Location().String())
		case 'I':
			if t.IsDST() {
				b.WriteByte('1')
			} else {
				b.WriteByte('0')
			}
		case 'O':
			b.WriteString(offset(t, false))
		case 'P':
			b.WriteString(offset(t, true))
		case 'p':
			if _, off := t.Zone(); off == 0 {
				b.WriteByte('Z')
			} else {
				b.WriteString(offset(t, true))
			}
		case 'T':
			name, _ := t.Zone()
			if name == "" || name[0] == '+' || name[0] == '-' {
				// PHP prints the offset for zones without an abbreviation.
				name = offset(t, true)
			}
			b.WriteString(name)
		case 'Z':
			_, off := t.Zone()
			b.WriteString(strconv.Itoa(off))
		// Full date/time.
		case 'c':
			b.WriteString(PHPDate(t, `Y-m-d\TH:i:sP`))
		case 'r':
			b.WriteString(PHPDate(t, `D, d M Y H:i:s O`))
		case 'U':
			b.WriteString(strconv.FormatInt(t.Unix(), 10))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func pad2(b *strings.Builder, n int) {
	if n < 10 && n >= 0 {
		b.WriteByte('0')
	}
	b.WriteString(strconv.Itoa(n))
}

func hour12(h int) int {
	h %= 12
	if h == 0 {
		return 12
	}
	return h
}

func ordinalSuffix(day int) string {
	if day%100 >= 11 && day%100 <= 13 {
		return "th"
	}
	switch day % 10 {
	case 1:
		return "st"
	case 2:
		return "nd"
	case 3:
		return "rd"
	}
	return "th"
}

func daysIn(year int, m time.Month) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func offset(t time.Time, colon bool) string {
	_, off := t.Zone()
	sign := byte('+')
	if off < 0 {
		sign = '-'
		off = -off
	}
	h, m := off/3600, (off%3600)/60
	if colon {
		return fmt.Sprintf("%c%02d:%02d", sign, h, m)
	}
	return fmt.Sprintf("%c%02d%02d", sign, h, m)
}
