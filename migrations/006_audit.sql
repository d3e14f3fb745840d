-- 006_audit: the tamper-evident share log (package shares/audit).
--
-- Every share row is sealed in exactly one segment, in the transaction
-- that stores it: segments are numbered in commit order (the head row is
-- locked until commit), and each segment's hash chains the previous one:
--   hash      = SHA-256("wattpool audit segment v1\0" || prev_hash ||
--               seq (8 bytes BE) || shares (8 bytes BE) || rows_hash)
--   rows_hash = SHA-256 over the rows' digests in share_id order, a
--               row's digest being SHA-256 of its binary COPY tuple over
--               every column of shares.
-- runs maps share ids to their segment (24 bytes a run: spool segment id,
-- first and last offset); locator lists the segment's ids with the first
-- 8 bytes of each row's digest, so verify names the row that changed.
CREATE TABLE audit_segments (
    seq        BIGINT PRIMARY KEY,
    instance   TEXT NOT NULL,
    sealed_at  TIMESTAMPTZ NOT NULL,
    shares     BIGINT NOT NULL,
    min_time   TIMESTAMPTZ NOT NULL,
    max_time   TIMESTAMPTZ NOT NULL,
    runs       BYTEA NOT NULL,
    locator    BYTEA NOT NULL,
    rows_hash  BYTEA NOT NULL CHECK (length(rows_hash) = 32),
    prev_hash  BYTEA NOT NULL CHECK (length(prev_hash) = 32),
    hash       BYTEA NOT NULL CHECK (length(hash) = 32)
);

-- The chain's head: one row, locked by every seal.
CREATE TABLE audit_head (
    one        BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    seq        BIGINT NOT NULL,
    hash       BYTEA NOT NULL CHECK (length(hash) = 32),
    updated_at TIMESTAMPTZ NOT NULL
);
INSERT INTO audit_head (seq, hash, updated_at) VALUES (0, '\x0000000000000000000000000000000000000000000000000000000000000000', now());

-- Daily share partitions moved to retention archives and dropped: where
-- the file is and what it must hash to.
CREATE TABLE audit_archives (
    partition   TEXT PRIMARY KEY,
    day_from    TIMESTAMPTZ NOT NULL,
    day_to      TIMESTAMPTZ NOT NULL,
    path        TEXT NOT NULL,
    shares      BIGINT NOT NULL,
    file_sha256 BYTEA NOT NULL CHECK (length(file_sha256) = 32),
    archived_at TIMESTAMPTZ NOT NULL
);
