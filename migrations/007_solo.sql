-- Solo mining ([[stratum.listener]] solo = true). A solo job's coinbase
-- pays the miner's address directly; solo_script is that address's output
-- script (NULL for the pool's jobs, whose coinbase pays the pool), and the
-- job's id starts with 's' (pool job ids are hex), so a share row names a
-- solo job by its job_id alone. Shares of solo jobs are solo shares: stored
-- and re-verifiable like any other, but never part of the pool's payout
-- schemes; a block found on a solo job credits nobody (its reward is
-- already the miner's) and ends no prop round.
ALTER TABLE jobs ADD COLUMN solo_script BYTEA CHECK (solo_script IS NULL OR length(solo_script) > 0);

-- Solo jobs are few next to the pool's: a partial index serves the
-- per-block questions (is this block solo, which mature blocks are due for
-- crediting) and the list of solo jobs an archive walk leaves out.
CREATE INDEX jobs_solo ON jobs (instance, job_id) WHERE solo_script IS NOT NULL;
