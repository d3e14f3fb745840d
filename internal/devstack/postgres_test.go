package devstack

import "testing"

func TestReplaceDatabase(t *testing.T) {
	for _, tc := range []struct{ in, name, want string }{
		{"postgres://wattpool@127.0.0.1:5432/postgres?sslmode=disable", "t_1", "postgres://wattpool@127.0.0.1:5432/t_1?sslmode=disable"},
		{"postgres://u:p@db:5432/admin", "t_2", "postgres://u:p@db:5432/t_2"},
		{"postgres://u:p@db:5432", "t_3", "postgres://u:p@db:5432/t_3"},
		{"postgresql://u@h/x?a=1&b=2", "y", "postgresql://u@h/y?a=1&b=2"},
	} {
		if got := replaceDatabase(tc.in, tc.name); got != tc.want {
			t.Errorf("replaceDatabase(%q, %q) = %q, want %q", tc.in, tc.name, got, tc.want)
		}
	}
}

func TestLastLines(t *testing.T) {
	if got := lastLines([]byte("a\nb\nc\nd\n"), 2); got != "c | d" {
		t.Fatalf("lastLines = %q", got)
	}
}
