package plan

import "testing"

func TestCronDescribe(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"0 1 * * sun", "every Sunday at 01:00"},
		{"0 1 * * 7", "every Sunday at 01:00"},
		{"0 1 * * mon-sat", "every Monday to Saturday at 01:00"},
		{"0 3 * * 1-5", "every Monday to Friday at 03:00"},
		{"0 3 * * sat,sun", "every Saturday and Sunday at 03:00"},
		{"0 3 * * mon,wed,fri", "every Monday, Wednesday and Friday at 03:00"},
		{"30 2 * * *", "every day at 02:30"},
		{"@daily", "every day at 00:00"},
		{"@weekly", "every Sunday at 00:00"},
		{"@monthly", "on the 1st of every month at 00:00"},
		{"@yearly", "on the 1st of January at 00:00"},
		{"0 0 29 2 *", "on the 29th of February at 00:00"},
		{"0 2 1,15 * *", "on the 1st and 15th of every month at 02:00"},
		{"0 2 1-7 * *", "on the 1st to 7th of every month at 02:00"},
		{"0 2 22,23 3-5 *", "on the 22nd and 23rd of March to May at 02:00"},
		{"0 4 * 1,7 0", "every Sunday in January and July at 04:00"},
		{"0 1,13 * * *", "every day at 01:00 and 13:00"},
		{"15,45 1 * * *", "every day at 01:15 and 01:45"},
		{"@hourly", "every hour on the hour"},
		{"5 * * * *", "every hour at minute 5"},
		{"*/15 * * * *", "every 15 minutes"},
		{"0,30 * * * *", "every 30 minutes"},
		{"* * * * *", "every minute"},
		{"*/5 9-17 * * mon-fri", "every 5 minutes from 09:00 to 17:55, every Monday to Friday"},
		{"0 */6 * * *", "every day at 00:00, 06:00, 12:00 and 18:00"},
		{"0 */2 * * *", "every 2 hours from 00:00"},
		{"30 9-17 * * *", "every hour from 09:30 to 17:30"},
		{"0 0 1 * mon", "on the 1st of every month and every Monday at 00:00"},
		{"0 0 */2 * mon", "on the cron schedule \"0 0 */2 * mon\""},
		{"10,20 1-9 * * *", "every day at minutes 10 and 20 of hours 1 to 9"},
		{"0 1,3,5,8,11 * * *", "every day at 01:00, 03:00, 05:00, 08:00 and 11:00"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			c, err := ParseCron(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Describe(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOrdinal(t *testing.T) {
	for n, want := range map[int]string{1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 11: "11th", 12: "12th", 13: "13th", 21: "21st", 22: "22nd", 23: "23rd", 31: "31st"} {
		if got := ordinal(n); got != want {
			t.Errorf("ordinal(%d): got %q, want %q", n, got, want)
		}
	}
}
