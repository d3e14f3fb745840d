-- The allocator's record: one row per worker group per live evaluation,
-- and the operators' manual overrides.
--
-- Conventions:
--   * Prices, values and chain figures are DOUBLE PRECISION: the live loop
--     computes with float64 and an IEEE double stores every float64
--     exactly, so a row replays to the same decision.
--   * Values are dollars per MWh net of energy (see the README's
--     economics); MWh and dollars are derived from them by reports.
--   * States are 'mining' or 'curtailed' (allocator.State.String); rules
--     are allocator.Rule strings, never renumbered.

CREATE TABLE allocator_decisions (
    id                    BIGSERIAL PRIMARY KEY,
    -- When the evaluation ran (the loop's clock) and who ran it.
    time                  TIMESTAMPTZ NOT NULL,
    instance              TEXT NOT NULL,
    group_name            TEXT NOT NULL,
    mode                  TEXT NOT NULL CHECK (mode IN ('dry-run', 'act')),
    policy                TEXT NOT NULL,
    -- Inputs.
    btc_usd               DOUBLE PRECISION NOT NULL,
    network_difficulty    DOUBLE PRECISION NOT NULL,
    fees_btc_per_block    DOUBLE PRECISION NOT NULL,
    height                BIGINT NOT NULL,
    subsidy_btc           DOUBLE PRECISION NOT NULL,
    energy_usd_per_mwh    DOUBLE PRECISION NOT NULL,
    lease_usd_per_mwh     DOUBLE PRECISION NOT NULL,
    -- The pool's measured hashrate of the group (its workers' sliding
    -- window) beside the configured nominal one; only nominal decides.
    measured_hashrate_ths DOUBLE PRECISION NOT NULL,
    nominal_hashrate_ths  DOUBLE PRECISION NOT NULL,
    joules_per_th         DOUBLE PRECISION NOT NULL,
    power_kw              DOUBLE PRECISION NOT NULL,
    -- The configured evaluation interval: the row speaks for at most this
    -- long (reports cut it short at the group's next row).
    interval_seconds      DOUBLE PRECISION NOT NULL CHECK (interval_seconds > 0),
    -- Both values compared, per MWh.
    mining_usd_per_mwh    DOUBLE PRECISION NOT NULL,
    curtailed_usd_per_mwh DOUBLE PRECISION NOT NULL,
    -- Outcome. state_after is the state the group holds after the
    -- evaluation: a failed actuation leaves it at state_before.
    state_before          TEXT NOT NULL CHECK (state_before IN ('mining', 'curtailed')),
    state_after           TEXT NOT NULL CHECK (state_after IN ('mining', 'curtailed')),
    idle                  BOOLEAN NOT NULL,
    rule                  TEXT NOT NULL,
    action                TEXT NOT NULL CHECK (action IN ('none', 'curtail', 'resume')),
    outcome               TEXT NOT NULL CHECK (outcome IN ('none', 'ok', 'failed', 'dry_run', 'not_leader')),
    error                 TEXT,
    -- When the group last changed state (as of state_after) and the
    -- earliest time min_on/min_off allow the next switch: a new leader
    -- restores both from the group's newest row.
    last_switch           TIMESTAMPTZ NOT NULL,
    next_switch           TIMESTAMPTZ NOT NULL
);

-- The newest row of each group (restore on becoming leader, the
-- operator view).
CREATE INDEX allocator_decisions_group_time ON allocator_decisions (group_name, time DESC, id DESC);
-- Time-range reports.
CREATE INDEX allocator_decisions_time ON allocator_decisions (time);

-- Manual overrides: while one is in force (created, not cancelled, not
-- expired) its state is the group's state whatever the prices say. The
-- newest override in force wins; rows are never deleted, so the record
-- shows who forced what, why and for how long.
CREATE TABLE allocator_overrides (
    id           BIGSERIAL PRIMARY KEY,
    group_name   TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('mining', 'curtailed')),
    reason       TEXT NOT NULL CHECK (reason <> ''),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- NULL: until cancelled.
    expires_at   TIMESTAMPTZ CHECK (expires_at IS NULL OR expires_at > created_at),
    created_by   TEXT NOT NULL,
    cancelled_at TIMESTAMPTZ
);

CREATE INDEX allocator_overrides_active ON allocator_overrides (group_name, created_at DESC)
    WHERE cancelled_at IS NULL;
