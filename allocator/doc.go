// Package allocator decides, per worker group and per interval, whether a
// group's power earns more mining for the pool or leased to an AI/HPC
// tenant, and keeps the record finance audits and replays. The pinned
// policy (Evaluate, Merit) is one pure function shared by the backtest
// (Backtest, `wattpool allocator backtest`) and the live loop.
//
// # Economics
//
// For a group of power P kW (at the site meter, cooling share included) and
// nominal hashrate H TH/s:
//
//   - efficiency E = 1000 × P / H J/TH (Group.JoulesPerTH);
//   - hashprice HP = 1e15 × 86400 × (subsidy + fees per block) × btc_usd /
//     (network difficulty × 2^32) $/PH/day (HashpriceUSDPerPHDay), the
//     subsidy from the block height on the network's halving schedule, in
//     integer satoshis (Subsidy: 50 BTC >> halvings, 0 from 64 halvings);
//   - mining value = HP / (0.024 × E) × (1 − pool_fee_bps / 10000) − energy
//     $/MWh (MiningUSDPerMWh): a PH/s at E J/TH burns 0.024 × E MWh a day;
//   - curtailed value = lease − energy (when the operator pays the tenant's
//     energy) or lease (when the tenant pays) $/MWh (LeasedUSDPerMWh) for a
//     group the lease has room for, else 0: the group is idle;
//   - a lease priced per kW-month is × 1000 / 730 per MWh, per MW-year
//     / 8760 (LeaseUSDPerMWh).
//
// Worked example: HP $45/PH/day, E = 17.5 J/TH, pool fee 2 %: mining earns
// 45 / (0.024 × 17.5) × 0.98 = $105.00 per MWh before energy.
//
// # Policy
//
// A group is mining or curtailed (idle counts as curtailed). Each
// evaluation at time t decides every group in three passes:
//
//  1. Firm lease. The firm step in force at t (the last
//     [[allocator.lease.firm]] whose from is at or before t; none before the
//     first) is met first: the least efficient groups (highest J/TH; equal
//     ones in configuration order) are curtailed until their power covers
//     its mw, whatever min_on says (rule "firm"). They are leased (their
//     curtailed value includes the lease) and their power is taken from
//     max_mw's room. A step above every group's power curtails them all
//     (the configuration refuses such a step); since groups come whole, the
//     firm groups may exceed mw, and max_mw, by less than one group.
//  2. Merit order. The other groups are decided one by one from the lowest
//     mining value per MWh upward (equal ones in configuration order). A
//     group's curtailed value includes the lease only if its whole power
//     fits in the lease room left (max_mw, 0 = unlimited, less the firm
//     groups and the groups decided before it that ended leased) and, when
//     site_mw is set, under site_mw with the lease power so far; otherwise
//     its curtailed value is 0. A mining group is curtailed when curtailed
//     value > mining value + hysteresis_usd_per_mwh (strictly; "lease_wins"),
//     a curtailed group resumes when mining value > curtailed value +
//     hysteresis ("mining_wins"); when the other side is ahead by less the
//     rule is "hysteresis", else "hold". A switch at t needs t − last
//     switch ≥ min_on while mining ("min_on" holds it) or ≥ min_off while
//     curtailed ("min_off"). A group that ends curtailed with room takes
//     it; one without room is idle (Decision.Idle) and earns 0, which beats
//     mining at a loss.
//  3. Site cap. When site_mw is set, the lease power (firm and merit) is in
//     place first; then the mining groups, from the highest mining value
//     per MWh down (equal ones in configuration order), each mine if their
//     power fits in what is left, and the others are idle (rule
//     "site_cap", curtailed value 0). A smaller group further down may
//     thus mine where a larger one did not fit. The cap is physical, so it
//     overrides min_on, and a curtailed group it keeps from resuming stays
//     curtailed (idle).
//
// A group missing from PolicyInput.States has never been seen: it starts
// mining with its last switch at the evaluation's time (a backtest starts
// every group so at its first row). Decision.NextSwitch is the last switch
// plus min_on (mining) or min_off (curtailed).
//
// # Backtest
//
// ReadPrices reads a CSV series (time, btc_usd, network_difficulty,
// energy_usd_per_mwh; optional lease_usd_per_mwh, fees_btc_per_block,
// height, default DefaultHeight); each row holds from its time until the
// next row's and the last row closes the series. Backtest runs Evaluate
// over it and sums per group the hours and MWh mining and curtailed, the
// switches, the margin the policy earned and what mining only or leasing
// only (lease capacity ignored) would have earned.
//
// # Closed loop
//
// In mode act, a switch the actuator took is then confirmed apart from
// the evaluations (confirm.go): a MachineActuator's miners are read back
// through their drivers, and the group's accepted difficulty per second at
// the pool (GroupRates, over Confirm.Window) must fall below
// Confirm.Below × its rate just before a curtailment, or come back above
// Confirm.Above × its mining rate after a resume, within Confirm.Timeout.
// Otherwise the miners that did not confirm are acted on again
// (Confirm.Retries), then the failure is alerted (metric, log,
// ConfirmStore record, Alerter). Firmware that acknowledges sleep and
// keeps hashing is seen only by the pool-side rate, and only per group.
package allocator
