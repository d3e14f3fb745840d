//go:build !unix

package stratum

import (
	"errors"
	"net"
	"sync"
	"syscall"
)

// rawConn disables inline writes and buffer-less reads where write(2) and
// read(2) are not available: messages go through the writer goroutine and
// reads use a pooled buffer held during the read.
func rawConn(net.Conn) syscall.RawConn { return nil }

func tryWrite(syscall.RawConn, []byte) (int, error) { return 0, nil }

type rawReader struct{}

func newRawReader(syscall.RawConn, *sync.Pool) *rawReader { return nil }

// Read is never called: readLoop uses a rawReader only when rawConn
// returned a RawConn, which it never does here.
func (r *rawReader) Read() (*[]byte, int, error) {
	return nil, 0, errors.New("buffer-less reads are not supported on this platform")
}
