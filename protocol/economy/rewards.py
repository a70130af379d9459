"""Per-epoch emission (three schedules), its distribution (four models) and the epoch transition.

Tokens are minted only here (after genesis): exactly the sum of the rewards paid, so a rounding
remainder of a split is simply never created.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from protocol.economy.committee import process_committee_rotation
from protocol.economy.helpers import (
    compute_pro_rata,
    compute_share,
    get_circulating_supply,
    get_reputation,
    increase_balance,
)
from protocol.economy.jobs import Assignment, process_batch_auction, process_draws
from protocol.economy.state import SlashEvent, State
from protocol.economy.storage import SamplingReport, process_availability_sampling
from protocol.economy.units import BPS_DENOMINATOR
from protocol.types import Tokens


@dataclass(frozen=True, slots=True)
class EpochReport:
    """What one epoch transition did (the epoch that ended)."""

    epoch: int
    emission: int  # tokens the schedule offered this epoch
    minted: int  # tokens actually minted as rewards (<= emission)
    rewards: dict[str, int]  # account -> tokens minted to it
    network_work: int  # work units settled during the epoch
    assignments: list[Assignment] = field(default_factory=list)  # batch-auction matches
    slash_events: list[SlashEvent] = field(default_factory=list)  # slashes during the epoch
    sampling: SamplingReport | None = None  # the new epoch's availability sampling (storage.py)


def compute_epoch_emission(state: State) -> Tokens:
    """Tokens the schedule offers for the current epoch."""
    p = state.params
    if p.emission_schedule == "disinflationary":
        # floor: emission rounds down; the fraction is never minted, so there is nothing to conserve
        return Tokens(
            get_circulating_supply(state)
            * state.emission.inflation_bps
            // (BPS_DENOMINATOR * p.epochs_per_year)
        )
    return Tokens(state.emission.per_epoch)


def get_stake_weights(state: State) -> dict[str, int]:
    """Active workers' stake (O(workers))."""
    return {a: state.stakes.get(a, 0) for a, w in state.workers.items() if w.active}


def get_performance_weights(state: State) -> dict[str, int]:
    """Work settled this epoch, scaled by (1 + reputation / reputation_reward_scale) in integers."""
    scale = state.params.reputation_reward_scale
    return {a: units * (scale + get_reputation(state, a)) for a, units in state.epoch_work.items()}


def compute_epoch_rewards(state: State, emission: int) -> dict[str, Tokens]:
    """The rewards of the current epoch under `reward_model`; their sum never exceeds `emission`."""
    p = state.params
    if p.reward_model == "fixed":
        tasks = state.epoch_tasks
        if sum(tasks.values()) * p.fixed_reward_per_task <= emission:
            return {a: Tokens(n * p.fixed_reward_per_task) for a, n in tasks.items() if n > 0}
        return compute_pro_rata(emission, tasks)
    if p.reward_model == "stake":
        return compute_pro_rata(emission, get_stake_weights(state))
    if p.reward_model == "performance":
        return compute_pro_rata(emission, get_performance_weights(state))
    # hybrid; floor (compute_share): the stake part rounds down, the remainder goes to the performance part
    stake_part = compute_share(emission, p.hybrid_stake_share_bps)
    rewards = compute_pro_rata(stake_part, get_stake_weights(state))
    for a, r in compute_pro_rata(emission - stake_part, get_performance_weights(state)).items():
        rewards[a] = Tokens(rewards.get(a, 0) + r)
    return rewards


def process_rewards(state: State, rewards: dict[str, Tokens]) -> Tokens:
    """Mint `rewards` into the recipients' balances; returns the amount minted."""
    minted = 0
    for account, amount in rewards.items():
        increase_balance(state, account, amount)
        minted += amount
    state.total_supply += minted
    state.totals.emitted += minted
    return Tokens(minted)


def process_emission_schedule(state: State) -> None:
    """Move the schedule in use one epoch forward (called at the end of each epoch)."""
    p = state.params
    em = state.emission
    if p.emission_schedule == "exponential":
        # floor: emission decays rounding down; it is not minted yet, so nothing to conserve
        em.per_epoch = em.per_epoch * p.emission_retention_bps // BPS_DENOMINATOR
    elif p.emission_schedule == "goal":
        work = sum(state.epoch_work.values())
        # floor: a whole-basis-point controller step; the sign is what matters
        step = (p.compute_goal - work) * p.goal_adjust_bps // p.compute_goal
        step = max(-p.goal_adjust_bps, min(p.goal_adjust_bps, step))
        # floor: emission rounds down; clamped to [floor, cap]
        em.per_epoch = max(
            p.emission_floor, min(p.emission_cap, em.per_epoch * (BPS_DENOMINATOR + step) // BPS_DENOMINATOR)
        )
    elif (state.epoch + 1) % p.epochs_per_year == 0:
        # disinflationary: a new year starts next epoch; floor: the rate rounds down toward its floor
        em.inflation_bps = max(
            p.terminal_inflation_bps,
            em.inflation_bps * (BPS_DENOMINATOR - p.disinflation_bps) // BPS_DENOMINATOR,
        )


def process_epoch(state: State, seed: bytes) -> EpochReport:
    """End the current epoch and start the next, whose `seed` is the forced-error draw of the jobs sealed
    in the epoch that ends:
    clear the batch auction, mint and pay the epoch's rewards, step the emission schedule, reset the
    per-epoch tallies, draw the new epoch's committee. Cost O(queued batch jobs + asks + workers + referees · committee size)."""
    ended = state.epoch
    assignments = process_batch_auction(state)
    emission = compute_epoch_emission(state)
    rewards = compute_epoch_rewards(state, emission)
    minted = process_rewards(state, rewards)
    process_emission_schedule(state)
    report = EpochReport(
        ended,
        emission,
        minted,
        dict(rewards),
        sum(state.epoch_work.values()),
        assignments,
        state.slash_events,
    )
    state.epoch_work = {}
    state.epoch_tasks = {}
    state.slash_events = []
    state.epoch += 1
    state.seed = bytes(seed).hex()
    process_draws(state)  # the new seed is the draw of every job sealed in the epoch that ended
    process_committee_rotation(state)  # and it draws the epoch's referee committee
    # and it closes the availability challenges past their deadline and draws the epoch's new ones
    return dataclasses.replace(report, sampling=process_availability_sampling(state))
