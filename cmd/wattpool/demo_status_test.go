package main

import "testing"

func TestVerdicts(t *testing.T) {
	for _, tc := range []struct {
		in   map[string]int64
		want string
	}{
		{nil, ""},
		{map[string]int64{"accepted": 4}, " (accepted 4)"},
		{map[string]int64{"rejected": 1, "accepted": 4, "duplicate": 2}, " (accepted 4, duplicate 2, rejected 1)"},
	} {
		if got := verdicts(tc.in); got != tc.want {
			t.Errorf("verdicts(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
