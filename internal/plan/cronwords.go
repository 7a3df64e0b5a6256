package plan

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Describe says when c runs in plain words, for a runbook: "every Sunday
// at 01:00", "every 15 minutes", "on the 1st of every month at 00:00".
// Times are the scheduler's local time. An expression too irregular to put
// simply (a day field with a step, such as */2) is described as "on the
// cron schedule" followed by the expression.
func (c Cron) Describe() string {
	days, ok := c.describeDays()
	if !ok {
		return "on the cron schedule " + quote(strings.TrimSpace(c.expr))
	}
	at, often := c.describeTimes()
	if !often {
		return days + " " + at
	}
	if days == "every day" {
		return at
	}
	return at + ", " + days
}

var (
	weekdayNames = strings.Fields("Sunday Monday Tuesday Wednesday Thursday Friday Saturday")
	monthNames   = strings.Fields("January February March April May June July August September October November December")
)

// describeTimes says at what times of a day c runs: "at 01:00" (often
// false), or a frequency such as "every 15 minutes" (often true).
func (c Cron) describeTimes() (phrase string, often bool) {
	mins, hours := bitValues(c.minute, 0, 59), bitValues(c.hour, 0, 23)
	if s, ok := describeFrequency(mins, hours); ok {
		return s, true
	}
	if len(mins)*len(hours) <= 8 {
		var times []string
		for _, h := range hours {
			for _, m := range mins {
				times = append(times, clock(h, m))
			}
		}
		return "at " + joinAnd(times), false
	}
	return fmt.Sprintf("at minutes %s of hours %s", ranges(mins, strconv.Itoa), ranges(hours, strconv.Itoa)), false
}

// describeFrequency says how often a job runs at minutes mins of hours
// hours, if it runs at a steady pace: "every hour on the hour", "every 5
// minutes from 09:00 to 17:55".
func describeFrequency(mins, hours []int) (string, bool) {
	allHours := len(hours) == 24
	step, stepped := evenStep(mins, 60)
	minutes := "every minute"
	if step > 1 {
		minutes = fmt.Sprintf("every %d minutes", step)
	}
	hourStep, hoursStepped := evenStep(hours, 24)
	switch {
	case len(mins) == 1 && allHours && mins[0] == 0:
		return "every hour on the hour", true
	case len(mins) == 1 && allHours:
		return fmt.Sprintf("every hour at minute %d", mins[0]), true
	case stepped && allHours:
		return minutes, true
	case stepped && isRun(hours):
		return fmt.Sprintf("%s from %s to %s", minutes, clock(hours[0], mins[0]), clock(hours[len(hours)-1], mins[len(mins)-1])), true
	case len(mins) == 1 && hoursStepped && len(hours) > 4:
		return fmt.Sprintf("every %d hours from %s", hourStep, clock(hours[0], mins[0])), true
	case len(mins) == 1 && isRun(hours) && len(hours) > 4:
		return fmt.Sprintf("every hour from %s to %s", clock(hours[0], mins[0]), clock(hours[len(hours)-1], mins[0])), true
	}
	return "", false
}

// describeDays says on which days c runs: "every day", "every Sunday",
// "on the 1st of every month". It is false when a day field has a step
// or range that starts with *, where cron's rules are too subtle to word.
func (c Cron) describeDays() (string, bool) {
	doms, dows := bitValues(c.dom, 1, 31), bitValues(c.dow, 0, 6)
	allDom, allDow := len(doms) == 31, len(dows) == 7
	in, of := "", "every month"
	if months := bitValues(c.month, 1, 12); len(months) < 12 {
		names := ranges(months, func(v int) string { return monthNames[v-1] })
		in, of = " in "+names, names
	}
	switch {
	case allDom && allDow:
		return "every day" + in, true
	case allDom && c.domStar:
		return "every " + weekdays(dows) + in, true
	case allDow && c.dowStar:
		return "on the " + ranges(doms, ordinal) + " of " + of, true
	case !c.domStar && !c.dowStar:
		return "on the " + ranges(doms, ordinal) + " of " + of + " and every " + weekdays(dows) + in, true
	}
	return "", false
}

// weekdays names days of the week, Monday first: "Monday to Friday",
// "Saturday and Sunday".
func weekdays(dows []int) string {
	mondayFirst := func(v int) int { return (v + 6) % 7 }
	order := make([]int, len(dows))
	for i, d := range dows {
		order[i] = mondayFirst(d)
	}
	slices.Sort(order)
	return ranges(order, func(v int) string { return weekdayNames[(v+1)%7] })
}

// ranges writes sorted values as a list in words, with runs of three or
// more as "a to b": "Monday to Friday", "1st and 15th".
func ranges(vs []int, name func(int) string) string {
	var parts []string
	for i := 0; i < len(vs); {
		j := i
		for j+1 < len(vs) && vs[j+1] == vs[j]+1 {
			j++
		}
		switch {
		case j-i >= 2:
			parts = append(parts, name(vs[i])+" to "+name(vs[j]))
		default:
			for k := i; k <= j; k++ {
				parts = append(parts, name(vs[k]))
			}
		}
		i = j + 1
	}
	return joinAnd(parts)
}

// bitValues lists the values from lo to hi set in set.
func bitValues(set uint64, lo, hi int) []int {
	var vs []int
	for v := lo; v <= hi; v++ {
		if set&(1<<v) != 0 {
			vs = append(vs, v)
		}
	}
	return vs
}

// evenStep says whether vs (two or more) are evenly spaced all round a
// cycle of n, as */15 is in an hour, and by how much.
func evenStep(vs []int, n int) (int, bool) {
	if len(vs) < 2 {
		return 0, false
	}
	step := vs[1] - vs[0]
	for i := 1; i < len(vs); i++ {
		if vs[i]-vs[i-1] != step {
			return 0, false
		}
	}
	return step, vs[0] < step && vs[len(vs)-1]+step == n+vs[0]
}

// isRun says whether vs are consecutive, with three or more.
func isRun(vs []int) bool {
	return len(vs) >= 3 && vs[len(vs)-1]-vs[0] == len(vs)-1
}

func clock(h, m int) string { return fmt.Sprintf("%02d:%02d", h, m) }

// ordinal is 1st, 2nd, 3rd, 4th, 11th, 21st.
func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return strconv.Itoa(n) + suffix
}

// joinAnd is "a", "a and b" or "a, b and c".
func joinAnd(parts []string) string {
	if len(parts) <= 1 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}
