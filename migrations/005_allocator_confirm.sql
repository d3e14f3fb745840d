-- The allocator's closed loop (README "Curtailment"): after acting on a
-- group the live loop confirms the action, and every change of that
-- confirmation is a row here, with the miners that had not confirmed at
-- that moment in allocator_action_results. Rows are only ever added: the
-- record shows when a curtailment was taken, each retry, and whether the
-- power was proven to go down.
--
-- Rates are the group's accepted difficulty per second at the pool over
-- window_seconds (x 2^32 = hashes per second).

CREATE TABLE allocator_confirmations (
    id              BIGSERIAL PRIMARY KEY,
    group_name      TEXT NOT NULL,
    instance        TEXT NOT NULL,
    -- The evaluation that decided the action: allocator_decisions.time of
    -- the group's row with this action.
    decision_time   TIMESTAMPTZ NOT NULL,
    action          TEXT NOT NULL CHECK (action IN ('curtail', 'resume')),
    state           TEXT NOT NULL CHECK (state IN ('curtailing', 'resuming', 'confirmed', 'unconfirmed',
                                                   'superseded', 'canceled')),
    -- When the action was taken, and when this row's state was reached.
    since           TIMESTAMPTZ NOT NULL,
    time            TIMESTAMPTZ NOT NULL,
    -- Retries taken so far (0: the first action).
    attempt         INTEGER NOT NULL CHECK (attempt >= 0),
    window_seconds  DOUBLE PRECISION NOT NULL CHECK (window_seconds > 0),
    rate_before     DOUBLE PRECISION NOT NULL,
    rate_reference  DOUBLE PRECISION NOT NULL,
    rate_now        DOUBLE PRECISION NOT NULL,
    threshold       DOUBLE PRECISION NOT NULL,
    pool_ok         BOOLEAN NOT NULL,
    -- NULL for a group without miners in the inventory (told through the
    -- webhook: the pool-side check is its only confirmation).
    machines_ok     BOOLEAN,
    miners          INTEGER NOT NULL CHECK (miners >= 0),
    miners_failed   INTEGER NOT NULL CHECK (miners_failed >= 0),
    message         TEXT
);

CREATE INDEX allocator_confirmations_group_time ON allocator_confirmations (group_name, time DESC, id DESC);
CREATE INDEX allocator_confirmations_decision ON allocator_confirmations (decision_time);

-- The miners that had not confirmed when the row was written, each with
-- its reason (unreachable, auth, refused, cannot_curtail, bad_reply,
-- still_hashing, still_sleeping, canceled, error). Miners are named by
-- their firmware API address; passwords are never stored.
CREATE TABLE allocator_action_results (
    confirmation_id BIGINT NOT NULL REFERENCES allocator_confirmations (id),
    address         TEXT NOT NULL,
    driver          TEXT NOT NULL,
    reason          TEXT NOT NULL,
    error           TEXT,
    attempts        INTEGER NOT NULL CHECK (attempts >= 0),
    -- What the miner read back as (mining, sleeping, unknown); NULL when
    -- it could not be read.
    state           TEXT,
    PRIMARY KEY (confirmation_id, address)
);
