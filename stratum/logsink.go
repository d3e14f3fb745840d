package stratum

import (
	"context"
	"encoding/hex"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/stratum/work"
)

// LogSink is a Sink that only logs, for running the server before a share
// ledger is configured (nothing is persisted, nothing is paid). Shares
// and rejects are logged at debug level, jobs at debug, blocks at warn.
type LogSink struct {
	log *zap.Logger
}

// NewLogSink returns a LogSink writing to log.
func NewLogSink(log *zap.Logger) *LogSink { return &LogSink{log: log} }

var _ Sink = (*LogSink)(nil)

// RecordJob logs the job.
func (l *LogSink) RecordJob(_ context.Context, job *work.Job) error {
	l.log.Debug("job", zap.String("job", job.ID), zap.Int64("height", job.Height),
		zap.Stringer("prev_hash", &job.PrevHash), zap.Float64("network_diff", job.NetworkDiff))
	return nil
}

// RecordShare logs the share with everything needed to re-verify it.
func (l *LogSink) RecordShare(_ context.Context, s *Share) error {
	if ce := l.log.Check(zap.DebugLevel, "share"); ce != nil {
		ce.Write(zap.String("account", s.Account), zap.String("worker", s.Worker), zap.String("group", s.Group),
			zap.String("job", s.Job.ID), zap.String("extranonce1", hex.EncodeToString(s.Extranonce1)),
			zap.String("extranonce2", hex.EncodeToString(s.Extranonce2)), zap.Uint32("ntime", s.NTime),
			zap.Uint32("nonce", s.Nonce), zap.Uint32("version", s.Version), zap.Float64("diff", s.Difficulty),
			zap.Float64("achieved", s.Achieved), zap.Stringer("hash", &s.Hash), zap.Bool("block", s.IsBlock))
	}
	return nil
}

// RecordBlock logs the found block and its share.
func (l *LogSink) RecordBlock(ctx context.Context, b *FoundBlock) error {
	l.RecordShare(ctx, &b.Share)
	l.log.Warn("found block recorded (log sink only)", zap.Int64("height", b.Height), zap.Stringer("hash", &b.Hash),
		zap.String("account", b.Share.Account), zap.String("worker", b.Share.Worker),
		zap.Int64("coinbase_sats", b.CoinbaseValue), zap.String("result", b.SubmitResult), zap.Bool("accepted", b.Accepted))
	return nil
}

// RecordReject logs the reject.
func (l *LogSink) RecordReject(r *Reject) {
	if ce := l.log.Check(zap.DebugLevel, "share rejected"); ce != nil {
		ce.Write(zap.String("account", r.Account), zap.String("worker", r.Worker),
			zap.Stringer("reason", r.Reason), zap.Float64("diff", r.Difficulty))
	}
}
