package main

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestExitWithoutStrayStatus runs the built binary: a command that has
// reported its own failure (check-config's problems) or printed help ends
// with its exit status alone, not a stray "wattpool: exit status N" line.
func TestExitWithoutStrayStatus(t *testing.T) {
	bin := buildWattpool(t)
	tests := []struct {
		args []string
		code int
		want string // in the output
	}{
		{[]string{"serve", "-h"}, 0, "-config file"},
		{[]string{"shares", "verify", "--help"}, 0, "-config file"},
		{[]string{"check-config", "--config", "/dev/null"}, 1, "bitcoin.payout_address: must be set"},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			cmd.Env = []string{"PATH=/usr/bin:/bin"}
			out, err := cmd.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(string(out), tc.want) {
				t.Fatalf("exit %d, want %d; output:\n%s", code, tc.code, out)
			}
			if strings.Contains(string(out), "exit status") {
				t.Fatalf("stray exit status line:\n%s", out)
			}
			// Help a user asked for goes to stdout (pipe it to less);
			// errors and the usage shown with them go to stderr.
			stdout, _ := exec.Command(bin, tc.args...).Output()
			if asked := tc.code == 0; asked != strings.Contains(string(stdout), tc.want) {
				t.Fatalf("stdout of %v:\n%s", tc.args, stdout)
			}
		})
	}
}

// TestSubcommandUsage: every command group answers an unknown or missing
// subcommand with a usage error naming all of its subcommands.
func TestSubcommandUsage(t *testing.T) {
	groups := map[string][]subcommand{"shares": sharesCommands, "payouts": payoutsCommands, "audit": auditCommands,
		"allocator": allocatorCommands, "fleet": fleetCommands}
	for group, subs := range groups {
		for _, args := range [][]string{{group}, {group, "bogus"}} {
			var out strings.Builder
			err := run(context.Background(), args, &out, &out, mapEnv(nil))
			if exitCode(err) != 2 || !strings.HasPrefix(err.Error(), group+": want '"+group+" "+subs[0].name+"'") {
				t.Fatalf("%v: %v", args, err)
			}
			if strings.HasSuffix(err.Error(), `not ""`) || (len(args) == 2) != strings.HasSuffix(err.Error(), `not "bogus"`) {
				t.Fatalf("%v: %v", args, err)
			}
			for _, s := range subs {
				if !strings.Contains(err.Error(), "'"+group+" "+s.name+"'") {
					t.Fatalf("%v: %v does not name %s", args, err, s.name)
				}
			}
		}
	}
}
