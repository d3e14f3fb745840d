//go:build unix

package stratum

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// inlineWriter performs one non-blocking write(2) on a socket through
// syscall.RawConn. Its callback is bound once, so a write allocates
// nothing; writers are pooled, not kept per connection.
type inlineWriter struct {
	b   []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

var inlineWriters = sync.Pool{New: func() any {
	w := &inlineWriter{}
	w.fn = w.write
	return w
}}

func (w *inlineWriter) write(fd uintptr) bool {
	w.n, w.err = syscall.Write(int(fd), w.b)
	return true // never wait for writability: the caller queues the rest
}

// rawConn returns the socket's RawConn when inline writes are possible.
func rawConn(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// tryWrite writes as much of b as the socket takes right now without
// blocking. A full socket or an expired write deadline is not an error:
// it returns how much went out and the caller queues the rest for the
// writer goroutine, which waits with a fresh deadline.
func tryWrite(rc syscall.RawConn, b []byte) (int, error) {
	w := inlineWriters.Get().(*inlineWriter)
	w.b, w.n, w.err = b, 0, nil
	err := rc.Write(w.fn)
	n, werr := w.n, w.err
	w.b = nil
	inlineWriters.Put(w)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, nil
		}
		return 0, err
	}
	if n < 0 {
		n = 0
	}
	if werr == syscall.EAGAIN || werr == syscall.EINTR {
		return n, nil
	}
	return n, werr
}

// rawReader reads from a socket through syscall.RawConn so that no buffer
// is held while the connection is idle: the runtime's poller waits for
// readability first, and only then is a pooled buffer taken for the read.
// Thousands of idle miners therefore cost no read buffers at all.
type rawReader struct {
	rc   syscall.RawConn
	pool *sync.Pool
	buf  *[]byte
	n    int
	err  error
	fn   func(fd uintptr) bool
}

func newRawReader(rc syscall.RawConn, pool *sync.Pool) *rawReader {
	r := &rawReader{rc: rc, pool: pool}
	r.fn = r.read
	return r
}

func (r *rawReader) read(fd uintptr) bool {
	if r.buf == nil {
		r.buf = r.pool.Get().(*[]byte)
	}
	var n int
	var err error
	for {
		n, err = syscall.Read(int(fd), (*r.buf)[:cap(*r.buf)])
		if err != syscall.EINTR {
			break
		}
	}
	if err == syscall.EAGAIN {
		r.pool.Put(r.buf)
		r.buf = nil
		return false // nothing yet: wait for readability without a buffer
	}
	r.n, r.err = n, err
	return true
}

// Read waits for data and returns it in a pooled buffer the caller must
// put back. At end of stream it returns io.EOF.
func (r *rawReader) Read() (*[]byte, int, error) {
	r.n, r.err = 0, nil
	err := r.rc.Read(r.fn)
	buf := r.buf
	r.buf = nil
	if err == nil {
		err = r.err
	}
	n := r.n
	if n < 0 {
		n = 0
	}
	if err == nil && n == 0 {
		err = io.EOF
	}
	if n == 0 && buf != nil {
		r.pool.Put(buf)
		buf = nil
	}
	return buf, n, err
}
