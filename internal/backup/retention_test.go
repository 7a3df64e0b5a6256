package backup

import (
	"testing"
	"time"
)

func TestRetentionApply(t *testing.T) {
	day := 24 * time.Hour
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	// One backup a day for 12 days: F I D I F I D I I F I D (oldest first).
	types := []Type{Full, Incremental, Differential, Incremental, Full, Incremental, Differential, Incremental, Incremental, Full, Incremental, Differential}
	var infos []*Info
	for i, typ := range types {
		stop := now.Add(-time.Duration(len(types)-1-i) * day)
		infos = append(infos, &Info{ID: stop.Format("0102") + string(typ), Type: typ, StopTime: stop})
	}
	kept := func(r Retention) string {
		t.Helper()
		v, err := r.Apply(infos, now)
		if err != nil {
			t.Fatal(err)
		}
		s := ""
		for _, x := range v {
			if x.Keep {
				s += "K"
			} else {
				s += "-"
			}
		}
		return s
	}
	for _, c := range []struct {
		name string
		r    Retention
		want string
	}{
		{"two fulls", Retention{Full: 2}, "----KKKKKKKK"},
		{"one full", Retention{Full: 1}, "---------KKK"},
		{"two fulls, one diff", Retention{Full: 2, Diff: 1}, "----KK---KKK"},
		{"within 3 days keeps the PITR base", Retention{Within: 3 * day}, "-------KKKKK"},
		{"daily 2 weekly 2 (Nov 24 is a Tuesday)", Retention{Daily: 2, Weekly: 2}, "---------KKK"}, {"monthly 1", Retention{Monthly: 1}, "-----------K"},
	} {
		if got := kept(c.r); got != c.want {
			t.Errorf("%s: kept %s, want %s", c.name, got, c.want)
		}
	}
	if _, err := (Retention{}).Apply(infos, now); err != ErrNoPolicy {
		t.Errorf("empty policy: %v, want ErrNoPolicy", err)
	}
}

func TestParseRetentionDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "36h": 36 * time.Hour} {
		if got, err := ParseRetentionDuration(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "d", "-1d", "3x", "1.5d"} {
		if _, err := ParseRetentionDuration(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
