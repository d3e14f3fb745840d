package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// cmdHealthcheck asks a running pool's HTTP server whether it is live
// (/healthz) or, with --ready, ready (/readyz): exit 0 when it answers 200,
// 1 otherwise. The container image has no curl or shell, so compose's and
// Kubernetes' health checks run this.
func cmdHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "host:port of the pool's HTTP server (default $WATTPOOL_HTTP_ADDR, else 127.0.0.1:8080; a wildcard host means this machine)")
	ready := fs.Bool("ready", false, "check readiness (/readyz: a template is current and the ledger takes shares) instead of liveness (/healthz)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	target, err := healthcheckAddr(*addr, lookup)
	if err != nil {
		return usageError{"healthcheck: " + err.Error()}
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+path, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(stdout, "%s: %s\n", path, strings.TrimSpace(string(body)))
	return nil
}

// healthcheckAddr is the address to ask: the flag, else the pool's own
// WATTPOOL_HTTP_ADDR, else the default; a wildcard or empty host (the pool
// listens on every interface) is asked on loopback.
func healthcheckAddr(flagAddr string, lookup env) (string, error) {
	addr := flagAddr
	if addr == "" {
		if v, ok := lookup("WATTPOOL_HTTP_ADDR"); ok && v != "" {
			addr = v
		} else {
			addr = "127.0.0.1:8080"
		}
	}
	if addr == "off" {
		return "", fmt.Errorf("the HTTP server is off (WATTPOOL_HTTP_ADDR=off): nothing to check")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", addr, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}
