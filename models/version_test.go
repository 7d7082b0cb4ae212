package models

import "testing"

func TestCheckServerVersion(t *testing.T) {
	for _, c := range []struct {
		num  int    // server_version_num
		want string // the error, "" when accepted
	}{
		{90624, "the server runs Postgres 9: usersync needs Postgres 12 or later"},
		{110022, "the server runs Postgres 11: usersync needs Postgres 12 or later"},
		{120000, ""},
		{150014, ""},
		{180001, ""},
	} {
		got := ""
		if err := checkServerVersion(c.num); err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("checkServerVersion(%d) = %q, want %q", c.num, got, c.want)
		}
	}
}
