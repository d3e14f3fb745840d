package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
)

// TestHealthcheck runs the command against a real serve: live and ready
// answer 0; a port nobody serves and HTTP turned off are errors.
func TestHealthcheck(t *testing.T) {
	vars := loadVars(t, "", t.TempDir())
	delete(vars, "WATTPOOL_DATABASE_MIGRATE")
	pool := serveInProcess(t, vars)
	ctx := context.Background()
	for _, args := range [][]string{{"healthcheck"}, {"healthcheck", "--ready"}} {
		var out bytes.Buffer
		// The pool's own WATTPOOL_HTTP_ADDR names the server to ask.
		if err := run(ctx, args, &out, &out, mapEnv(map[string]string{"WATTPOOL_HTTP_ADDR": vars["WATTPOOL_HTTP_ADDR"]})); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
	}
	var out bytes.Buffer
	port := freePorts(t, 1)[0]
	err := run(ctx, []string{"healthcheck", "--addr", "0.0.0.0:" + strconv.Itoa(port), "--timeout", "2s"}, &out, &out, mapEnv(nil))
	if err == nil || !strings.Contains(err.Error(), "healthcheck /healthz") || !strings.Contains(err.Error(), "127.0.0.1:"+strconv.Itoa(port)) {
		t.Fatalf("healthcheck of a closed port: %v", err)
	}
	err = run(ctx, []string{"healthcheck"}, &out, &out, mapEnv(map[string]string{"WATTPOOL_HTTP_ADDR": "off"}))
	if err == nil || !strings.Contains(err.Error(), "the HTTP server is off") {
		t.Fatalf("healthcheck with HTTP off: %v", err)
	}
	if err := pool.shutdown(); err != nil {
		t.Fatal(err)
	}
}
