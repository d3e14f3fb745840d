package haproxy

import (
	"fmt"
	"io"
	"net"
	"time"
)

// socketCommand sends one command to an HAProxy stats socket and returns
// the answer (the socket closes after it).
func socketCommand(path, cmd string) (string, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return "", fmt.Errorf("haproxy stats socket: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, cmd); err != nil {
		return "", fmt.Errorf("haproxy stats socket: %w", err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return "", fmt.Errorf("haproxy stats socket: %w", err)
	}
	return string(b), nil
}
