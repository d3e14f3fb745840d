package stratum

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wattpool/wattpool/stratum/work"
)

// LogSink is a Sink that only logs, for running the server before a share
// ledger is configured (nothing is persisted, nothing is paid). Shares
// and rejects are logged at debug level, jobs at debug, blocks at warn.
//
// Its lines are written one at a time, and a call waits for its turn at
// most until its context ends: a log writer that stalls (a blocked pipe,
// a hung terminal) holds up the one call writing, while every other
// connection's share is refused as not recorded by its deadline instead
// of queueing behind the writer's lock.
type LogSink struct {
	log *zap.Logger
	// turn holds a token while a line is being written.
	turn chan struct{}
}

// NewLogSink returns a LogSink writing to log.
func NewLogSink(log *zap.Logger) *LogSink { return &LogSink{log: log, turn: make(chan struct{}, 1)} }

// rejectLogWait bounds how long RecordReject, which has no deadline and
// must not block, waits for its turn before it drops its debug line.
const rejectLogWait = 20 * time.Millisecond

// write writes ce once it is this call's turn, or returns an error when
// ctx ends first (the line is not written).
func (l *LogSink) write(ctx context.Context, ce *zapcore.CheckedEntry, fields ...zap.Field) error {
	select {
	case l.turn <- struct{}{}:
	default:
		select {
		case l.turn <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("log sink: log writer busy past the deadline: %w", ctx.Err())
		}
	}
	defer func() { <-l.turn }()
	ce.Write(fields...)
	return nil
}

var _ Sink = (*LogSink)(nil)

// RecordJob logs the job.
func (l *LogSink) RecordJob(ctx context.Context, job *work.Job) error {
	if ce := l.log.Check(zap.DebugLevel, "job"); ce != nil {
		return l.write(ctx, ce, zap.String("job", job.ID), zap.Int64("height", job.Height),
			zap.Stringer("prev_hash", &job.PrevHash), zap.Float64("network_diff", job.NetworkDiff))
	}
	return nil
}

// RecordShare logs the share with everything needed to re-verify it.
func (l *LogSink) RecordShare(ctx context.Context, s *Share) error {
	if ce := l.log.Check(zap.DebugLevel, "share"); ce != nil {
		return l.write(ctx, ce, zap.String("account", s.Account), zap.String("worker", s.Worker), zap.String("group", s.Group),
			zap.String("job", s.Job.ID), zap.String("extranonce1", hex.EncodeToString(s.Extranonce1)),
			zap.String("extranonce2", hex.EncodeToString(s.Extranonce2)), zap.Uint32("ntime", s.NTime),
			zap.Uint32("nonce", s.Nonce), zap.Uint32("version", s.Version), zap.Float64("diff", s.Difficulty),
			zap.Float64("achieved", s.Achieved), zap.Stringer("hash", &s.Hash), zap.Bool("block", s.IsBlock))
	}
	return nil
}

// RecordBlock logs the found block and its share.
func (l *LogSink) RecordBlock(ctx context.Context, b *FoundBlock) error {
	if err := l.RecordShare(ctx, &b.Share); err != nil {
		return err
	}
	if ce := l.log.Check(zap.WarnLevel, "found block recorded (log sink only)"); ce != nil {
		return l.write(ctx, ce, zap.Int64("height", b.Height), zap.Stringer("hash", &b.Hash),
			zap.String("account", b.Share.Account), zap.String("worker", b.Share.Worker),
			zap.Int64("coinbase_sats", b.CoinbaseValue), zap.String("result", b.SubmitResult), zap.Bool("accepted", b.Accepted))
	}
	return nil
}

// RecordReject logs the reject; while the log writer is busy for longer
// than rejectLogWait the line is dropped (RecordReject must not block).
func (l *LogSink) RecordReject(r *Reject) {
	if ce := l.log.Check(zap.DebugLevel, "share rejected"); ce != nil {
		ctx, cancel := context.WithTimeout(context.Background(), rejectLogWait)
		defer cancel()
		_ = l.write(ctx, ce, zap.String("account", r.Account), zap.String("worker", r.Worker),
			zap.Stringer("reason", r.Reason), zap.Float64("diff", r.Difficulty))
	}
}
