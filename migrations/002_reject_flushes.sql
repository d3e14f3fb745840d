-- The last reject-count flush each instance applied. A flush updates its
-- instance's row first, in the same transaction as its counts, and only
-- to a larger flush_id: a flush retried after its commit's acknowledgement
-- was lost finds its own id there and adds nothing, and two transactions
-- carrying the same flush (the lost one still running, and the retry)
-- queue on the row lock, so the second adds nothing either.
CREATE TABLE reject_flushes (
    instance   TEXT PRIMARY KEY,
    flush_id   BIGINT NOT NULL,
    flushed_at TIMESTAMPTZ NOT NULL
);
