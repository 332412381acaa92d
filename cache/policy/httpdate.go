package policy

import (
	"time"
)

// ParseHTTPDate parses an HTTP-date exactly as RFC 9110 §5.6.7 defines it:
//
//	IMF-fixdate  = day-name "," SP date1 SP time-of-day SP GMT
//	               ; Sun, 06 Nov 1994 08:49:37 GMT
//	rfc850-date  = day-name-l "," SP date2 SP time-of-day SP GMT
//	               ; Sunday, 06-Nov-94 08:49:37 GMT
//	asctime-date = day-name SP date3 SP time-of-day SP year
//	               ; Sun Nov  6 08:49:37 1994
//
// the two obsolete formats being ones a recipient "MUST accept". Day and
// month names are case-sensitive, as the grammar's %s says; the zone name
// GMT is accepted in any case. Nothing else is accepted: no other zone, no
// double space (except asctime's " 6"), no one-digit hour, day or year
// digits out of place, no leading or trailing bytes, no date that does not
// exist (31 Apr). The day name is not checked against the date. A
// two-digit rfc850 year is the one within 50 years of now (RFC 9110
// §5.6.7), not Go's fixed 1969-2068. net/http's ParseTime is laxer (time.Parse accepts a
// one-digit hour and any case of names), hence this parser.
func ParseHTTPDate(s string) (time.Time, bool) {
	switch {
	case len(s) == 29 && s[3] == ',':
		return parseIMFFixdate(s)
	case len(s) == 24 && s[3] == ' ':
		return parseAsctime(s)
	default:
		return parseRFC850(s)
	}
}

var (
	dayNames     = [...]string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
	longDayNames = [...]string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
	monthNames   = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

func isDayName(s string) bool {
	for _, d := range dayNames {
		if s == d {
			return true
		}
	}
	return false
}

func month(s string) (time.Month, bool) {
	for i, m := range monthNames {
		if s == m {
			return time.Month(i + 1), true
		}
	}
	return 0, false
}

// digits reads s as a fixed number of decimal digits.
func digits(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func isGMT(s string) bool {
	return len(s) == 3 && lower(s[0]) == 'g' && lower(s[1]) == 'm' && lower(s[2]) == 't'
}

// timeOfDay reads "HH:MM:SS" (hour 00-23, minute 00-59, second 00-60,
// §5.6.7).
func timeOfDay(s string) (h, m, sec int, ok bool) {
	if len(s) != 8 || s[2] != ':' || s[5] != ':' {
		return 0, 0, 0, false
	}
	h, ok1 := digits(s[0:2])
	m, ok2 := digits(s[3:5])
	sec, ok3 := digits(s[6:8])
	if !ok1 || !ok2 || !ok3 || h > 23 || m > 59 || sec > 60 {
		return 0, 0, 0, false
	}
	return h, m, sec, true
}

// mkDate builds the time, refusing days the month does not have.
func mkDate(year int, mon time.Month, day, h, m, sec int) (time.Time, bool) {
	if day < 1 || day > 31 {
		return time.Time{}, false
	}
	if time.Date(year, mon, day, 0, 0, 0, 0, time.UTC).Day() != day {
		return time.Time{}, false // e.g. 31 Apr rolled over to 1 May
	}
	return time.Date(year, mon, day, h, m, sec, 0, time.UTC), true
}

// parseIMFFixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
func parseIMFFixdate(s string) (time.Time, bool) {
	if !isDayName(s[0:3]) || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[25] != ' ' || !isGMT(s[26:29]) {
		return time.Time{}, false
	}
	day, ok1 := digits(s[5:7])
	mon, ok2 := month(s[8:11])
	year, ok3 := digits(s[12:16])
	h, m, sec, ok4 := timeOfDay(s[17:25])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return time.Time{}, false
	}
	return mkDate(year, mon, day, h, m, sec)
}

// parseAsctime: "Sun Nov  6 08:49:37 1994" or "Sun Nov 06 08:49:37 1994".
func parseAsctime(s string) (time.Time, bool) {
	if !isDayName(s[0:3]) || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' {
		return time.Time{}, false
	}
	mon, ok1 := month(s[4:7])
	var day int
	ok2 := false
	if s[8] == ' ' {
		day, ok2 = digits(s[9:10])
	} else {
		day, ok2 = digits(s[8:10])
	}
	h, m, sec, ok3 := timeOfDay(s[11:19])
	year, ok4 := digits(s[20:24])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return time.Time{}, false
	}
	return mkDate(year, mon, day, h, m, sec)
}

// parseRFC850: "Sunday, 06-Nov-94 08:49:37 GMT".
func parseRFC850(s string) (time.Time, bool) {
	comma := -1
	for i := 0; i < len(s) && i < 10; i++ {
		if s[i] == ',' {
			comma = i
			break
		}
	}
	if comma < 0 {
		return time.Time{}, false
	}
	name, rest := s[:comma], s[comma+1:]
	known := false
	for _, d := range longDayNames {
		if name == d {
			known = true
		}
	}
	// rest: " 06-Nov-94 08:49:37 GMT"
	if !known || len(rest) != 23 || rest[0] != ' ' || rest[3] != '-' || rest[7] != '-' || rest[10] != ' ' || rest[19] != ' ' || !isGMT(rest[20:23]) {
		return time.Time{}, false
	}
	day, ok1 := digits(rest[1:3])
	mon, ok2 := month(rest[4:7])
	yy, ok3 := digits(rest[8:10])
	h, m, sec, ok4 := timeOfDay(rest[11:19])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return time.Time{}, false
	}
	return mkDate(rfc850Year(yy, mon, day, h, m, sec, time.Now()), mon, day, h, m, sec)
}

// rfc850Year is the year of a two-digit rfc850 year yy. RFC 9110 §5.6.7:
// a recipient "MUST interpret a timestamp that appears to be more than 50
// years in the future as representing the most recent year in the past
// that had the same last two digits". So the year is the latest with
// those digits whose timestamp is at most 50 years after now.
func rfc850Year(yy int, mon time.Month, day, h, m, sec int, now time.Time) int {
	limit := now.AddDate(50, 0, 0)
	year := now.Year()/100*100 + 100 + yy
	for time.Date(year, mon, day, h, m, sec, 0, time.UTC).After(limit) {
		year -= 100
	}
	return year
}
