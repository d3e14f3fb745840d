//go:build !unix

package stratum

import (
	"net"
	"syscall"
)

// rawConn disables inline writes where write(2) is not available: every
// message goes through the writer goroutine.
func rawConn(net.Conn) syscall.RawConn { return nil }

func tryWrite(syscall.RawConn, []byte) (int, error) { return 0, nil }
