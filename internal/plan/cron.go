package plan

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Cron is a parsed cron expression: the five fields of crontab(5) (minute,
// hour, day of month, month, day of week), or one of the macros @hourly,
// @daily (@midnight), @weekly, @monthly and @yearly (@annually).
//
// A field is *, a number, a range a-b, a step */n or a-b/n, or a list of
// those separated by commas. Months and days of the week may also be
// named by their first three letters (jan, mon). Day of week 0 and 7 are
// Sunday. As in cron, when both day of month and day of week are
// restricted (neither starts with *), a day matching either one runs.
type Cron struct {
	expr                          string
	minute, hour, dom, month, dow uint64 // bit v set: value v matches; dow 7 is folded into 0
	domStar, dowStar              bool   // the field starts with "*"
}

var cronMacros = map[string]string{
	"@hourly":   "0 * * * *",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@weekly":   "0 0 * * 0",
	"@monthly":  "0 0 1 * *",
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
}

// cronField is what one field of a cron expression may hold.
type cronField struct {
	name     string
	min, max int
	names    []string // names[i] is value min+i
}

var cronFields = [5]cronField{
	{name: "minute", max: 59},
	{name: "hour", max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: strings.Fields("jan feb mar apr may jun jul aug sep oct nov dec")},
	{name: "day of week", max: 7, names: strings.Fields("sun mon tue wed thu fri sat sun")},
}

// ParseCron parses a cron expression. It refuses an expression that never
// runs, such as 0 0 30 2 * (February 30th).
func ParseCron(s string) (Cron, error) {
	c := Cron{expr: s}
	expr := strings.TrimSpace(s)
	if strings.HasPrefix(expr, "@") {
		m, ok := cronMacros[strings.ToLower(expr)]
		if !ok {
			return Cron{}, fmt.Errorf("unknown macro %s; use @hourly, @daily, @weekly, @monthly or @yearly", quote(expr))
		}
		expr = m
	}
	fs := strings.Fields(expr)
	if len(fs) != len(cronFields) {
		msg := fmt.Sprintf("want 5 fields (minute hour day-of-month month day-of-week), got %d", len(fs))
		if len(fs) == 6 {
			msg += "; a field for seconds is not supported"
		}
		return Cron{}, errors.New(msg)
	}
	dst := [5]*uint64{&c.minute, &c.hour, &c.dom, &c.month, &c.dow}
	for i, f := range cronFields {
		b, err := f.parse(fs[i])
		if err != nil {
			return Cron{}, fmt.Errorf("%s field: %w", f.name, err)
		}
		*dst[i] = b
	}
	c.dow = c.dow&^(1<<7) | c.dow>>7 // Sunday is 0 and 7
	c.domStar, c.dowStar = strings.HasPrefix(fs[2], "*"), strings.HasPrefix(fs[4], "*")
	if !c.runsSomeDay() {
		return Cron{}, errors.New("never runs: none of its months has that day of the month")
	}
	return c, nil
}

// parse parses one field into a bit set of the values it matches.
func (f cronField) parse(s string) (uint64, error) {
	var set uint64
	for part := range strings.SplitSeq(s, ",") {
		rng, stepText, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 || !isDigits(stepText) {
				return 0, fmt.Errorf("step %s: want a whole number, 1 or more", quote(stepText))
			}
			step = n
		}
		lo, hi := f.min, f.max
		if rng != "*" {
			if hasStep && !strings.Contains(rng, "-") {
				return 0, errors.New("a step goes after * or a range, as in */15 or 0-30/15")
			}
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = f.value(a); err != nil {
				return 0, err
			}
			hi = lo
			if isRange {
				if hi, err = f.value(b); err != nil {
					return 0, err
				}
			}
			if lo > hi {
				return 0, fmt.Errorf("range %s goes backwards", quote(rng))
			}
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << v
		}
	}
	return set, nil
}

// value parses one number or name of the field.
func (f cronField) value(s string) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return f.min + i, nil
		}
	}
	if s == "" {
		return 0, fmt.Errorf("empty value; want a number from %d to %d", f.min, f.max)
	}
	if !isDigits(s) {
		return 0, fmt.Errorf("%s is not a number", quote(s))
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < f.min || v > f.max {
		if len(s) > 9 {
			s = s[:6] + "..."
		}
		return 0, fmt.Errorf("%s is out of range %d-%d", s, f.min, f.max)
	}
	return v, nil
}

func isDigits(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' })
}

// String is the expression as it was given to ParseCron.
func (c Cron) String() string { return c.expr }

// Equal reports whether c and d are the same expression.
func (c Cron) Equal(d Cron) bool { return c == d }

// cronCycleStart begins the calendar period over which gaps between runs
// are measured: 2001 to 2028, 28 years after which dates fall on the same
// days of the week again (until 2100), a whole number of weeks. Every date
// of the year, February 29th included, falls on every day of the week in
// it.
var cronCycleStart = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)

const cronCycleDays = 28*365 + 7

// runsOnDay says whether c runs on a day of the given month (1-12), day of
// the month (1-31) and day of the week (0-6, Sunday first).
func (c Cron) runsOnDay(month, day, weekday int) bool {
	if c.month&(1<<month) == 0 {
		return false
	}
	dom, dow := c.dom&(1<<day) != 0, c.dow&(1<<weekday) != 0
	if c.domStar || c.dowStar {
		return dom && dow
	}
	return dom || dow
}

// runsSomeDay says whether c runs on any day: whether some date of its
// months (February 29th included) matches, on some day of the week.
func (c Cron) runsSomeDay() bool {
	daysIn := [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
	for m := 1; m <= 12; m++ {
		for d := 1; d <= daysIn[m]; d++ {
			for w := range 7 {
				if c.runsOnDay(m, d, w) {
					return true
				}
			}
		}
	}
	return false
}

// MaxGap is the longest time between two consecutive runs of c: how stale
// the newest result of a job run on c can get. It is MaxGap(c).
func (c Cron) MaxGap() time.Duration { return MaxGap(c) }

// MaxGap is the longest time between two consecutive runs of any of cs,
// taken together: a weekly full backup and an incremental on the other six
// days give 24h. It is measured over a whole calendar cycle on a clock
// without daylight saving changes, so a monthly expression gives its
// longest month and 0 0 29 2 * gives four years. It is 0 when nothing
// runs (no cs, or only zero Crons).
func MaxGap(cs ...Cron) time.Duration {
	const day = 24 * 60
	sets := make([]minuteSet, len(cs))
	for i, c := range cs {
		sets[i] = c.minutes()
	}
	// Which runs a day has depends on its month, day and day of the week
	// only, so each of those (2604 at most) is worked out once.
	type known struct {
		done bool
		runs dayRuns
	}
	var memo [12 * 31 * 7]known
	first, prev, gap := -1, -1, 0 // minutes from the start of the cycle
	for i := range cronCycleDays {
		t := cronCycleStart.AddDate(0, 0, i)
		m, d, w := int(t.Month()), t.Day(), int(t.Weekday())
		k := &memo[((m-1)*31+d-1)*7+w]
		if !k.done {
			var union minuteSet
			for j, c := range cs {
				if c.runsOnDay(m, d, w) {
					union.or(sets[j])
				}
			}
			k.done, k.runs = true, union.runs()
		}
		r := k.runs
		if r.first < 0 {
			continue
		}
		if prev < 0 {
			first = i*day + r.first
		} else {
			gap = max(gap, i*day+r.first-prev)
		}
		gap = max(gap, r.gap)
		prev = i*day + r.last
	}
	if first < 0 {
		return 0
	}
	// The cycle repeats: its last run is followed by its first one again.
	gap = max(gap, first+cronCycleDays*day-prev)
	return time.Duration(gap) * time.Minute
}

// minuteSet is a set of times of day, in minutes after midnight.
type minuteSet [(24*60 + 63) / 64]uint64

func (s *minuteSet) or(t minuteSet) {
	for i := range s {
		s[i] |= t[i]
	}
}

// minutes is the set of times of day c runs at, on the days it runs.
func (c Cron) minutes() minuteSet {
	var s minuteSet
	for h := range 24 {
		for m := range 60 {
			if c.hour&(1<<h) != 0 && c.minute&(1<<m) != 0 {
				s[(h*60+m)/64] |= 1 << ((h*60 + m) % 64)
			}
		}
	}
	return s
}

// dayRuns is when jobs run in a day, in minutes after midnight: the first
// and last run (-1 if none), and the longest time between two runs.
type dayRuns struct{ first, last, gap int }

func (s minuteSet) runs() dayRuns {
	r := dayRuns{first: -1, last: -1}
	for i, w := range s {
		for w != 0 {
			m := i*64 + bits.TrailingZeros64(w)
			w &= w - 1
			if r.first < 0 {
				r.first = m
			} else {
				r.gap = max(r.gap, m-r.last)
			}
			r.last = m
		}
	}
	return r
}

// Next returns the first time after t (to the minute, in t's location)
// at which c runs. Every Cron that ParseCron returns runs some day, so
// Next finds a time within a leap-year cycle.
func (c Cron) Next(t time.Time) time.Time {
	t = t.Truncate(time.Minute).Add(time.Minute)
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
	for i := 0; i < 4*366+1; i, day = i+1, day.AddDate(0, 0, 1) {
		if !c.runsOnDay(int(day.Month()), day.Day(), int(day.Weekday())) {
			continue
		}
		for h := 0; h < 24; h++ {
			if c.hour&(1<<h) == 0 {
				continue
			}
			for m := 0; m < 60; m++ {
				if c.minute&(1<<m) == 0 {
					continue
				}
				at := time.Date(day.Year(), day.Month(), day.Day(), h, m, 0, 0, t.Location())
				if !at.Before(t) {
					return at
				}
			}
		}
	}
	return time.Time{} // unreachable for a parsed Cron
}
