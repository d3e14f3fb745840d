package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"
	"go.uber.org/zap"
)

// fileSubmitReason is what FileSource.SubmitBlock answers: there is no node
// behind a file.
const fileSubmitReason = "template file source: no node to submit to"

// FileOption changes a FileSource setting.
type FileOption func(*fileOptions)

type fileOptions struct {
	refresh  time.Duration
	newBlock time.Duration
	now      func() time.Time
}

// WithFileRefresh sets how often the template is re-sent as a refresh with
// curtime advanced to now (default 10 s, like Pool's refresh).
func WithFileRefresh(d time.Duration) FileOption {
	return func(o *fileOptions) { o.refresh = d }
}

// WithFileNewBlockEvery simulates a new block every d: the height goes up by
// one and the previous block hash becomes sha256d of the old one, so every
// run produces the same chain of fake blocks (default 0: never).
func WithFileNewBlockEvery(d time.Duration) FileOption {
	return func(o *fileOptions) { o.newBlock = d }
}

// WithFileClock sets the clock that dates templates (default time.Now).
func WithFileClock(now func() time.Time) FileOption {
	return func(o *fileOptions) { o.now = now }
}

// FileSource replays one getblocktemplate answer from a file, for
// benchmarks and offline demos: no node is needed, and found blocks go
// nowhere.
type FileSource struct {
	path    string
	base    *Template
	opts    fileOptions
	log     *zap.Logger
	updates chan Update
	started atomic.Bool
	// lastTemplate is when a template was last sent (unix ns; 0: never).
	lastTemplate atomic.Int64
}

// NewFileSource reads and validates the template file. The file holds the
// bare result object or a whole JSON-RPC answer {"result": {...}}.
func NewFileSource(path string, log *zap.Logger, opts ...FileOption) (*FileSource, error) {
	if log == nil {
		log = zap.NewNop()
	}
	o := fileOptions{refresh: DefaultRefreshInterval, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.refresh <= 0 || o.newBlock < 0 {
		return nil, fmt.Errorf("template file source: refresh %s must be positive, new-block interval %s not negative", o.refresh, o.newBlock)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("template file source: %w", err)
	}
	result, err := unwrapResult(raw)
	if err != nil {
		return nil, fmt.Errorf("template file source: %s: %w", path, err)
	}
	t, err := ParseTemplate(result, "file:"+path, o.now())
	if err != nil {
		return nil, fmt.Errorf("template file source: %s: %w", path, err)
	}
	return &FileSource{path: path, base: t, opts: o, log: log, updates: make(chan Update, 1)}, nil
}

// unwrapResult returns the template object of a full JSON-RPC answer, or
// raw itself when it is the bare object.
func unwrapResult(raw []byte) (json.RawMessage, error) {
	var env struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if env.Error != nil && !isNull(env.Error) {
		return nil, fmt.Errorf("file holds an RPC error: %s", clip(env.Error))
	}
	if env.Result == nil {
		return raw, nil // the bare result object
	}
	if isNull(env.Result) || !bytes.HasPrefix(bytes.TrimSpace(env.Result), []byte("{")) {
		return nil, fmt.Errorf("result is not a template object: %s", clip(env.Result))
	}
	return env.Result, nil
}

// Updates delivers templates; it is closed when Run returns.
func (f *FileSource) Updates() <-chan Update { return f.updates }

// LastTemplate is when the file's template was last handed out (the zero
// time: never), the file source's answer to Pool.LastTemplate.
func (f *FileSource) LastTemplate() time.Time {
	if ns := f.lastTemplate.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Run sends the template as a new block, then refreshes (and, with
// WithFileNewBlockEvery, simulated new blocks) until ctx is done.
func (f *FileSource) Run(ctx context.Context) error {
	if !f.started.CompareAndSwap(false, true) {
		return errors.New("template file source: Run called twice")
	}
	defer close(f.updates)
	cur := f.dated(f.base)
	if !f.send(ctx, Update{Template: cur, NewBlock: true}) {
		return nil
	}
	refresh := time.NewTicker(f.opts.refresh)
	defer refresh.Stop()
	var newBlock <-chan time.Time
	if f.opts.newBlock > 0 {
		t := time.NewTicker(f.opts.newBlock)
		defer t.Stop()
		newBlock = t.C
	}
	for {
		var u Update
		select {
		case <-ctx.Done():
			return nil
		case <-refresh.C:
			cur = f.dated(cur)
			u = Update{Template: cur}
		case <-newBlock:
			cur = f.dated(nextBlock(cur))
			u = Update{Template: cur, NewBlock: true}
			f.log.Info("template file source: simulated new block", zap.Int64("height", cur.Height),
				zap.Stringer("prev", cur.PrevHash))
		}
		if !f.send(ctx, u) {
			return nil
		}
	}
}

func (f *FileSource) send(ctx context.Context, u Update) bool {
	select {
	case f.updates <- u:
		f.lastTemplate.Store(time.Now().UnixNano())
		return true
	case <-ctx.Done():
		return false
	}
}

// dated returns a copy of t fetched now, with curtime advanced to now (never
// back, never below mintime). Templates are immutable: the copy shares the
// transaction slice, which nobody modifies.
func (f *FileSource) dated(t *Template) *Template {
	now := f.opts.now()
	c := *t
	c.FetchedAt = now
	c.CurTime = max(t.CurTime, t.MinTime, now.Unix())
	if c.MaxTime != 0 && c.MaxTime < c.CurTime {
		c.MaxTime = c.CurTime
	}
	return &c
}

// nextBlock fakes the template of the next block: height + 1 and a
// previous block hash derived from the old one. Transactions, value and
// bits stay: this is a demo, not a chain.
func nextBlock(t *Template) *Template {
	c := *t
	c.Height++
	c.PrevHash = chainhash.DoubleHashH(t.PrevHash[:])
	c.LongPollID = ""
	return &c
}

// SubmitBlock logs the block and answers inconclusive: there is no node.
func (f *FileSource) SubmitBlock(_ context.Context, block *wire.MsgBlock) (SubmitResult, error) {
	h := block.BlockHash()
	f.log.Warn("block found on a template file; not submitted anywhere", zap.String("file", f.path), zap.Stringer("hash", h))
	return SubmitResult{Status: SubmitInconclusive, Reason: fileSubmitReason, Hash: h, Node: "file:" + f.path}, nil
}
