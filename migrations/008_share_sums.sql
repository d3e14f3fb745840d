-- Per-hour, per-account difficulty sums of the pool's shares (solo shares
-- left out, as every scheme leaves them out), so that a payout window of
-- millions of shares is summed from a few thousand rows: only the hours at
-- its two ends are read share by share (shares/payout). The share writer
-- adds to them in the transaction that stores the shares, only the rows
-- that transaction stored, so every stored share is summed exactly once.
--
-- diff_sum is exact: every float64 difficulty is a finite binary fraction
-- with a finite decimal expansion, written from Go as that exact decimal,
-- and numeric addition is exact (float8 -> numeric casts round, so the
-- writer never sums in SQL from share_diff). hour is the share's time
-- truncated to the UTC hour.
CREATE TABLE share_sums (
    hour timestamptz NOT NULL,
    account_id bigint NOT NULL,
    diff_sum numeric NOT NULL CHECK (diff_sum >= 0),
    shares bigint NOT NULL CHECK (shares > 0),
    PRIMARY KEY (hour, account_id)
);

-- share_sums_from holds one row: the first hour whose sums are whole (all
-- its shares were stored by a writer that keeps the sums). Hours before it
-- are read share by share. The writer sets it on its first commit (the
-- hour after that commit, or after the newest share already stored if that
-- is later); backfilling older hours lowers it.
CREATE TABLE share_sums_from (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    hour timestamptz NOT NULL
);
