package node

import (
	"context"

	"github.com/btcsuite/btcd/wire/v2"
)

// Update is a new template for the job builder.
type Update struct {
	// Template is the new template (immutable, shared).
	Template *Template
	// NewBlock is true when the previous block hash changed (a new block or
	// a reorg): miners must drop their old jobs (clean_jobs). False for a
	// refresh on the same previous block (new transactions).
	NewBlock bool
}

// Source produces templates and submits blocks. *Pool implements it with
// real nodes and failover, *FileSource with a template replayed from a file.
type Source interface {
	// Run produces updates on Updates() until ctx is done, then closes the
	// channel and returns nil. It returns an error only when it cannot run
	// at all (called twice).
	Run(ctx context.Context) error
	// Updates delivers the templates, in order. Consumers must keep reading:
	// a full channel delays the next update.
	Updates() <-chan Update
	// SubmitBlock hands a solved block to the node(s).
	SubmitBlock(ctx context.Context, block *wire.MsgBlock) (SubmitResult, error)
}

var (
	_ Source = (*Pool)(nil)
	_ Source = (*FileSource)(nil)
)
