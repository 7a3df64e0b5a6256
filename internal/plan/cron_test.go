package plan

import (
	"strings"
	"testing"
	"time"
)

func TestParseCronErrors(t *testing.T) {
	tests := []struct {
		expr, want string
	}{
		{"", "want 5 fields (minute hour day-of-month month day-of-week), got 0"},
		{"* * * *", "got 4"},
		{"0 * * * * *", "got 6; a field for seconds is not supported"},
		{"60 * * * *", "minute field: 60 is out of range 0-59"},
		{"* 24 * * *", "hour field: 24 is out of range 0-23"},
		{"* * 0 * *", "day of month field: 0 is out of range 1-31"},
		{"* * 32 * *", "day of month field: 32 is out of range 1-31"},
		{"* * * 13 *", "month field: 13 is out of range 1-12"},
		{"* * * * 8", "day of week field: 8 is out of range 0-7"},
		{"99999999999999999999 * * * *", "out of range 0-59"},
		{"5-3 * * * *", `minute field: range "5-3" goes backwards`},
		{"* * * * fri-mon", `range "fri-mon" goes backwards`},
		{"*/0 * * * *", `minute field: step "0": want a whole number, 1 or more`},
		{"*/x * * * *", `step "x"`},
		{"*/+5 * * * *", `step "+5"`},
		{"5/10 * * * *", "a step goes after * or a range"},
		{"1,,2 * * * *", "minute field: empty value; want a number from 0 to 59"},
		{"1, * * * *", "empty value"},
		{"-1 * * * *", "empty value"},
		{"+1 * * * *", `"+1" is not a number`},
		{"a * * * *", `minute field: "a" is not a number`},
		{"* * * foo *", `month field: "foo" is not a number`},
		{"* * * * monday", `"monday" is not a number`},
		{"* jan * * *", `hour field: "jan" is not a number`},
		{"0 0 30 2 *", "never runs"},
		{"0 0 31 4,6,9,11 *", "never runs"},
		{"0 0 31 */2 *", ""}, // Jan, Mar, May, Jul, Sep, Nov: all have a 31st
		{"0 0 30 2 mon", ""}, // day of week widens it: every Monday in February
		{"@reboot", `unknown macro "@reboot"; use @hourly, @daily, @weekly, @monthly or @yearly`},
		{"@daily 1", "unknown macro"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := ParseCron(tt.expr)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got error %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestCronMaxGap(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		expr string
		want time.Duration
	}{
		{"* * * * *", time.Minute},
		{"*/15 * * * *", 15 * time.Minute},
		{"0,30 * * * *", 30 * time.Minute},
		{"10,20 * * * *", 50 * time.Minute},
		{"@hourly", time.Hour},
		{"0 */6 * * *", 6 * time.Hour},
		{"0 1,13 * * *", 12 * time.Hour},
		{"0 9-17 * * *", 16 * time.Hour},
		{"@daily", day},
		{"@midnight", day},
		{"0 22 * * *", day},
		{"  30 2 * * *  ", day},
		{"0 1 * * 1-5", 3 * day},     // Friday to Monday
		{"0 1 * * mon-fri", 3 * day}, // names
		{"0 1 * * MON-FRI", 3 * day}, // in any case
		{"0 1 * * 1-6", 2 * day},
		{"@weekly", 7 * day},
		{"0 1 * * 0", 7 * day},
		{"0 1 * * 7", 7 * day},   // 7 is Sunday too
		{"0 1 * * sun", 7 * day}, // names
		{"0 1 * * 5-7", 5 * day}, // Friday to Sunday, then Friday
		{"0 0 * * */2", 2 * day}, // Sunday, Tuesday, Thursday, Saturday
		{"0 0 */2 * *", 2 * day}, // odd days: the 31st then the 1st is one day
		{"0 0 1,15 * *", 17 * day},
		{"@monthly", 31 * day},
		{"0 0 13 * 5", 7 * day}, // the 13th or any Friday
		{"0 0 1 jan,jul *", 184 * day},
		{"@yearly", 366 * day},
		{"0 0 29 2 *", (4*365 + 1) * day},
		{"0 12 * * 0-6/3", 3 * day}, // Sunday, Wednesday, Saturday
		// Mondays in February: from Feb 22nd of a common year whose February
		// starts on a Monday to Feb 7th of the next year.
		{"0 12 * feb 1", 350 * day},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			c := mustCron(t, tt.expr)
			if got := c.MaxGap(); got != tt.want {
				t.Errorf("MaxGap() = %v, want %v", got, tt.want)
			}
			if c.String() != tt.expr {
				t.Errorf("String() = %q, want %q", c.String(), tt.expr)
			}
		})
	}
	if g := (Cron{}).MaxGap(); g != 0 {
		t.Errorf("MaxGap of the zero Cron = %v, want 0", g)
	}
}

func TestMaxGapOfSeveral(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name  string
		exprs []string
		want  time.Duration
	}{
		{"none", nil, 0},
		{"one", []string{"@daily"}, day},
		{"weekly full and incremental on the other days", []string{"0 1 * * 0", "0 1 * * 1-6"}, day},
		{"at different times of day", []string{"0 1 * * 0", "0 13 * * 3"}, 3*day + 12*time.Hour},
		{"the same day twice", []string{"0 0 * * *", "0 12 * * *"}, 12 * time.Hour},
		{"overlapping", []string{"*/10 * * * *", "*/15 * * * *"}, 10 * time.Minute},
		{"monthly and weekly", []string{"@monthly", "@weekly"}, 7 * day},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cs []Cron
			for _, e := range tt.exprs {
				cs = append(cs, mustCron(t, e))
			}
			if got := MaxGap(cs...); got != tt.want {
				t.Errorf("MaxGap(%q) = %v, want %v", tt.exprs, got, tt.want)
			}
		})
	}
}

func TestCronNext(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 30, 20, 0, time.UTC) // a Tuesday
	for expr, want := range map[string]string{
		"*/15 * * * *": "2026-11-24 10:45",
		"0 1 * * 0":    "2026-11-29 01:00",
		"30 10 * * *":  "2026-11-25 10:30",
		"@monthly":     "2026-12-01 00:00",
		"0 0 29 2 *":   "2028-02-29 00:00",
	} {
		c, err := ParseCron(expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Next(at).Format("2006-01-02 15:04"); got != want {
			t.Errorf("%s after %s: %s, want %s", expr, at, got, want)
		}
	}
}
