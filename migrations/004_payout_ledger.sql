-- The payout ledger: double-entry journals in integer satoshis.
--
-- Conventions:
--   * Every journal's entries sum to zero. An entry's amount_sats raises
--     the balance of its account (a miner's account name, or a pool
--     account named 'pool:...'); an account's balance is the sum of its
--     entries, never a stored figure.
--   * A credited block is one journal: 'pool:coinbase' -R, and the
--     credits, the fee ('pool:fee') and the remainder ('pool:remainder')
--     summing to R, the block's coinbase value. An orphaned block that was
--     credited (a reorg after maturity) gets a reversal journal: the same
--     entries negated.
--   * Exactly once: a journal is unique per (kind, block) and per (kind,
--     period); crediting also holds a transaction-level advisory lock, so
--     several instances on one database credit each block once.
--   * Every result row stores the scheme and parameters it was computed
--     with (payout_results, pps_periods), so a change of [payouts] never
--     rewrites the past.

-- [payouts] as it was in force over time: the row with the greatest
-- effective_from at or before an instant governs it.
CREATE TABLE payout_params (
    effective_from  TIMESTAMPTZ PRIMARY KEY,
    scheme          TEXT NOT NULL CHECK (scheme IN ('pplns', 'tides', 'prop', 'pps', 'fpps')),
    fee_bps         BIGINT NOT NULL CHECK (fee_bps BETWEEN 0 AND 10000),
    pplns_window    TEXT NOT NULL,
    fpps_fee_blocks BIGINT NOT NULL CHECK (fpps_fee_blocks >= 1),
    recorded_at     TIMESTAMPTZ NOT NULL,
    recorded_by     TEXT NOT NULL
);

CREATE TABLE payout_journals (
    id           BIGSERIAL PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('block', 'reversal', 'pps', 'payment')),
    -- Set for block and reversal journals.
    block_hash   BYTEA REFERENCES blocks (hash),
    -- Set for pps journals: the UTC hour credited.
    period_start TIMESTAMPTZ,
    -- Set for payment journals.
    batch_id     BIGINT,
    -- The instant the journal counts at in statements and reports.
    booked_at    TIMESTAMPTZ NOT NULL,
    instance     TEXT NOT NULL,
    UNIQUE (kind, block_hash),
    UNIQUE (kind, period_start),
    UNIQUE (kind, batch_id),
    CHECK ((kind IN ('block', 'reversal')) = (block_hash IS NOT NULL)),
    CHECK ((kind = 'pps') = (period_start IS NOT NULL)),
    CHECK ((kind = 'payment') = (batch_id IS NOT NULL))
);

CREATE INDEX payout_journals_booked ON payout_journals (booked_at);

CREATE TABLE payout_entries (
    id          BIGSERIAL PRIMARY KEY,
    journal_id  BIGINT NOT NULL REFERENCES payout_journals (id),
    account     TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('coinbase', 'credit', 'fee', 'remainder', 'pps_funding', 'payment', 'payment_funding')),
    amount_sats BIGINT NOT NULL
);

CREATE INDEX payout_entries_journal ON payout_entries (journal_id);
CREATE INDEX payout_entries_account ON payout_entries (account, journal_id);

-- One credited block's result: the parameters it was computed with and
-- the window it came from (the credits are its journal's entries).
CREATE TABLE payout_results (
    block_hash        BYTEA PRIMARY KEY REFERENCES blocks (hash),
    journal_id        BIGINT NOT NULL REFERENCES payout_journals (id),
    params_from       TIMESTAMPTZ NOT NULL REFERENCES payout_params (effective_from),
    scheme            TEXT NOT NULL,
    fee_bps           BIGINT NOT NULL,
    pplns_window      TEXT NOT NULL,
    coinbase_sats     BIGINT NOT NULL,
    fee_sats          BIGINT NOT NULL,
    remainder_sats    BIGINT NOT NULL,
    window_shares     BIGINT NOT NULL,
    window_difficulty TEXT NOT NULL,
    computed_at       TIMESTAMPTZ NOT NULL
);

-- Each account's part of a credited block or PPS hour: its exact
-- difficulty and what it would have had with no pool fee, so statements
-- can show the fee it bore.
CREATE TABLE payout_credit_details (
    journal_id  BIGINT NOT NULL REFERENCES payout_journals (id),
    account     TEXT NOT NULL,
    difficulty  TEXT NOT NULL,
    gross_sats  BIGINT NOT NULL,
    sats        BIGINT NOT NULL,
    PRIMARY KEY (journal_id, account)
);

-- PPS/FPPS: per account and UTC hour, the exact credit (a rational
-- carried as numerator/denominator text), the satoshis booked (its floor
-- plus the previous hour's carried fraction, floored) and the fraction
-- carried to the next hour.
CREATE TABLE pps_periods (
    period_start    TIMESTAMPTZ NOT NULL,
    account         TEXT NOT NULL,
    journal_id      BIGINT NOT NULL REFERENCES payout_journals (id),
    params_from     TIMESTAMPTZ NOT NULL REFERENCES payout_params (effective_from),
    scheme          TEXT NOT NULL,
    fee_bps         BIGINT NOT NULL,
    fpps_fee_blocks BIGINT NOT NULL,
    shares          BIGINT NOT NULL,
    difficulty      TEXT NOT NULL,
    exact_sats      TEXT NOT NULL,
    carry_in        TEXT NOT NULL,
    sats            BIGINT NOT NULL,
    carry_out       TEXT NOT NULL,
    PRIMARY KEY (period_start, account)
);

CREATE INDEX pps_periods_account ON pps_periods (account, period_start DESC);

-- Where an account is paid when its name is not an address of the
-- network.
CREATE TABLE payout_addresses (
    account    TEXT PRIMARY KEY,
    address    TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE payout_batches (
    id                BIGSERIAL PRIMARY KEY,
    created_at        TIMESTAMPTZ NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'paid')),
    fee_rate_sat_vb   BIGINT NOT NULL,
    vsize             BIGINT NOT NULL,
    network_fee_sats  BIGINT NOT NULL,
    change_address    TEXT NOT NULL,
    change_sats       BIGINT NOT NULL,
    inputs_sats       BIGINT NOT NULL,
    psbt              BYTEA NOT NULL,
    txid              TEXT,
    paid_at           TIMESTAMPTZ
);

CREATE TABLE payout_batch_outputs (
    batch_id    BIGINT NOT NULL REFERENCES payout_batches (id),
    account     TEXT NOT NULL,
    address     TEXT NOT NULL,
    amount_sats BIGINT NOT NULL CHECK (amount_sats > 0),
    PRIMARY KEY (batch_id, account)
);
