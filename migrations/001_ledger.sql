-- Share ledger: accounts, workers, jobs, shares, rejects, blocks.
--
-- Conventions:
--   * Money is BIGINT satoshis, never floating point.
--   * Difficulty is DOUBLE PRECISION: share difficulties are fractional by
--     design (diff1 / target) and an IEEE double carries 53 bits of
--     mantissa, far more precision than any payout or hashrate needs.
--   * Hashes are BYTEA of 32 bytes in Bitcoin's internal (little-endian)
--     byte order, exactly as they appear inside blocks; display form is the
--     byte-reversed hex.
--   * Header fields that are unsigned 32-bit values on the wire (ntime,
--     nonce, version, version bits, nbits) are BIGINT so they keep their
--     natural unsigned value.

CREATE TABLE accounts (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE workers (
    id         BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (account_id, name)
);

-- Every job sent to miners, with every field needed to rebuild the block
-- header of any share made for it.
CREATE TABLE jobs (
    instance          TEXT NOT NULL,
    job_id            TEXT NOT NULL,
    height            BIGINT NOT NULL,
    prevhash          BYTEA NOT NULL CHECK (length(prevhash) = 32),
    version           BIGINT NOT NULL,
    nbits             BIGINT NOT NULL,
    ntime             BIGINT NOT NULL,
    coinb1            BYTEA NOT NULL,
    coinb2            BYTEA NOT NULL,
    merkle_branch     BYTEA[] NOT NULL,
    extranonce1_size  SMALLINT NOT NULL,
    extranonce2_size  SMALLINT NOT NULL,
    network_diff      DOUBLE PRECISION NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (instance, job_id)
);

-- Accepted shares, range-partitioned by day on time. Partitions are created
-- ahead of time by migrations.EnsurePartitions; shares_default catches
-- anything outside them so an insert never fails for want of a partition.
--
-- share_id is unique per spooled record (the spool segment's random id and
-- the record's byte offset) so a replayed record is recognized. There are no
-- foreign keys on this table on purpose: ingest speed (COPY) matters, and the
-- writer creates the referenced accounts, workers and jobs first.
CREATE TABLE shares (
    time          TIMESTAMPTZ NOT NULL,
    share_id      UUID NOT NULL,
    instance      TEXT NOT NULL,
    account_id    BIGINT NOT NULL,
    worker_id     BIGINT NOT NULL,
    group_name    TEXT NOT NULL,
    job_id        TEXT NOT NULL,
    extranonce1   BYTEA NOT NULL,
    extranonce2   BYTEA NOT NULL,
    ntime         BIGINT NOT NULL,
    nonce         BIGINT NOT NULL,
    version_bits  BIGINT NOT NULL,
    version       BIGINT NOT NULL,
    share_diff    DOUBLE PRECISION NOT NULL,
    achieved_diff DOUBLE PRECISION NOT NULL,
    hash          BYTEA NOT NULL,
    is_block      BOOLEAN NOT NULL,
    PRIMARY KEY (time, share_id)
) PARTITION BY RANGE (time);

CREATE TABLE shares_default PARTITION OF shares DEFAULT;

-- No secondary index on purpose: every read (hashrate, PPLNS, verify) is a
-- time range, served by the primary key, and each extra index costs about
-- a fifth of COPY throughput (measured: 194k -> 236k+ shares/s without).

-- Rejected shares aggregated per worker, reason and minute.
CREATE TABLE rejects (
    minute     TIMESTAMPTZ NOT NULL,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    worker_id  BIGINT NOT NULL REFERENCES workers (id),
    group_name TEXT NOT NULL,
    reason     TEXT NOT NULL,
    count      BIGINT NOT NULL,
    diff_sum   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (minute, worker_id, reason)
);

CREATE TYPE block_status AS ENUM ('pending', 'confirmed', 'orphaned', 'mature');

-- Blocks the pool found. final is set once nothing can change any more
-- (mature, or orphaned with the competing block itself mature), so the
-- tracker stops polling it.
CREATE TABLE blocks (
    hash           BYTEA PRIMARY KEY CHECK (length(hash) = 32),
    height         BIGINT NOT NULL,
    coinbase_sats  BIGINT NOT NULL,
    instance       TEXT NOT NULL,
    account_id     BIGINT NOT NULL REFERENCES accounts (id),
    worker_id      BIGINT NOT NULL REFERENCES workers (id),
    job_id         TEXT NOT NULL,
    submit_result  TEXT NOT NULL,
    status         block_status NOT NULL DEFAULT 'pending',
    confirmations  BIGINT NOT NULL DEFAULT 0,
    final          BOOLEAN NOT NULL DEFAULT false,
    found_at       TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE INDEX blocks_open ON blocks (height) WHERE NOT final;

-- Every status change of a block, with its time.
CREATE TABLE block_status_history (
    id            BIGSERIAL PRIMARY KEY,
    hash          BYTEA NOT NULL REFERENCES blocks (hash),
    status        block_status NOT NULL,
    confirmations BIGINT NOT NULL,
    changed_at    TIMESTAMPTZ NOT NULL
);

CREATE INDEX block_status_history_hash ON block_status_history (hash, changed_at);

-- How far each spool segment has been committed, updated in the same
-- transaction as the rows it covers: a replayed segment resumes exactly
-- after the last committed record.
CREATE TABLE spool_segments (
    segment_id       BIGINT PRIMARY KEY,
    instance         TEXT NOT NULL,
    committed_offset BIGINT NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
