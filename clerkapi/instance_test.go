package clerkapi

import (
	"errors"
	"testing"
)

// The key's instance is known only when every key of its JWKS names the
// same one.
func TestInstanceOfKeys(t *testing.T) {
	for _, tc := range []struct {
		kids []string
		want string
	}{
		{[]string{"ins_2abc"}, "ins_2abc"},
		{[]string{"ins_2abc", "ins_2abc"}, "ins_2abc"},
		{[]string{"ins_2abc", "ins_2xyz"}, ""},
		{[]string{"key_1"}, ""},
		{[]string{"ins_2abc", ""}, ""},
		{nil, ""},
	} {
		got, err := instanceOfKeys(tc.kids)
		if got != tc.want || (tc.want == "") != errors.Is(err, ErrInstanceUnknown) {
			t.Errorf("instanceOfKeys(%q) = %q, %v; want %q", tc.kids, got, err, tc.want)
		}
	}
}
