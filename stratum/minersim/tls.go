package minersim

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// startTLS runs the client handshake on a fresh connection within
// DialTimeout, as a stratum+ssl miner does before its first line.
func (m *Miner) startTLS(ctx context.Context, conn net.Conn, addr string) (net.Conn, error) {
	cfg := m.cfg.TLS.Clone()
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
	}
	tc := tls.Client(conn, cfg)
	hctx, cancel := context.WithTimeout(ctx, m.cfg.DialTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	// HandshakeContext leaves no deadline behind; reads set their own.
	_ = conn.SetDeadline(time.Time{})
	return tc, nil
}
