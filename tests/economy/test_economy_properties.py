"""Property tests: random sequences of valid and invalid transitions keep every named invariant after
every step; each rejected transition raises a specific error and leaves the state unchanged."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.economy import (
    TERMINAL_STATUSES,
    Action,
    EconomyError,
    InvalidNonce,
    JobStateError,
    MessageError,
    NotSlashable,
    ReplayedMessage,
    SignedTransaction,
    State,
    apply_action,
    check_invariants,
    copy_state,
    process_dispute_verdict,
    process_genesis_allocation,
    sign_transaction,
)
from protocol.signing import get_public_key_bytes, private_key_from_bytes

from .actors import compute_action, make_active_economy, make_params

VARIANTS = (
    make_params(),
    make_params(
        reward_model="stake", emission_schedule="goal", vesting_mode="cliff", forced_error_rate_bps=5_000
    ),
    make_params(reward_model="fixed", emission_schedule="disinflationary", auction_duration_epochs=1),
    make_params(reward_model="performance", slash_fraction_bps=10_000, challenger_reward_bps=10_000),
)
"""Parameter tables the random sequences run under (every model, schedule and vesting mode)."""

GENERIC_ERRORS = (EconomyError, JobStateError, MessageError, NotSlashable)
"""Families, not specific errors: a rejection must use a more precise type."""

template = st.tuples(st.integers(0, 200), st.integers(0, 15), st.integers(0, 15), st.integers(0, 400))


def apply_checked(state: State, action: Action | SignedTransaction, **kw: bool) -> EconomyError | None:
    """Apply one action; on rejection check the error's precision and that nothing changed; check every
    invariant either way. Returns the rejection, if any."""
    before = copy_state(state)
    settled_before = {j for j, job in state.jobs.items() if job.status in TERMINAL_STATUSES}
    error: EconomyError | None = None
    try:
        if isinstance(action, Action) and action.kind == "verdict":  # a checked game's outcome (actors.py)
            process_dispute_verdict(state, action.params["dispute"], action.params["outcome"])
        else:
            apply_action(state, action, **kw)
    except EconomyError as exc:
        error = exc
        assert type(exc) not in GENERIC_ERRORS, f"{type(exc).__name__} is not specific"
        assert state == before, f"{type(exc).__name__} changed the state"
    check_invariants(state)
    for job_id in settled_before:  # a terminal job stays terminal, settled exactly once
        assert state.jobs[job_id].status == before.jobs[job_id].status
    return error


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.sampled_from(range(len(VARIANTS))), st.lists(template, min_size=30, max_size=150))
def test_random_sequences_keep_invariants(variant: int, templates: list[tuple[int, int, int, int]]) -> None:
    state = make_active_economy(VARIANTS[variant])
    check_invariants(state)
    for t in templates:
        apply_checked(state, compute_action(state, t), trust_unsigned=True)


KEYS = [private_key_from_bytes(bytes([i]) * 32) for i in (1, 2, 3)]
NAMES = [get_public_key_bytes(k).hex() for k in KEYS]


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2), st.integers(0, 2), st.integers(-1, 1), st.integers(0, 4), st.integers(-3, 300)
        ),
        min_size=5,
        max_size=25,
    )
)
def test_signed_sequences_reject_replays_gaps_and_forgeries(
    ops: list[tuple[int, int, int, int, int]],
) -> None:
    state = make_active_economy()
    for name in NAMES[:2]:
        process_genesis_allocation(state, name, 1_000)  # the third key never opens an account
    sent: list[SignedTransaction] = []
    for sender, recipient, nonce_offset, mode, amount in ops:
        key, name = KEYS[sender], NAMES[sender]
        account = state.accounts.get(name)
        nonce = (account.nonce if account else 0) + nonce_offset
        if mode == 0 and sent:  # replay an earlier transaction verbatim
            tx = sent[amount % len(sent)]
        elif mode == 1:
            tx = sign_transaction(key, "stake", max(nonce, 0), amount=amount)
        elif mode == 2:  # forge: another key's signature over this body
            genuine = sign_transaction(
                key, "transfer", max(nonce, 0), recipient=NAMES[recipient], amount=amount
            )
            tx = SignedTransaction(
                genuine.kind,
                genuine.body,
                sign_transaction(
                    KEYS[(sender + 1) % 3],
                    "transfer",
                    max(nonce, 0),
                    recipient=NAMES[recipient],
                    amount=amount,
                ).signature,
            )
        else:
            tx = sign_transaction(key, "transfer", max(nonce, 0), recipient=NAMES[recipient], amount=amount)
        error = apply_checked(state, tx)
        if error is None:
            sent.append(tx)
        elif mode == 0 and sent:
            assert isinstance(error, ReplayedMessage)
        elif mode != 2 and nonce_offset == 1:
            assert isinstance(error, InvalidNonce)
    for tx in sent:  # nothing that went through can go through twice
        assert isinstance(apply_checked(state, tx), ReplayedMessage)


def test_random_actor_reaches_every_mechanism() -> None:
    """The actor behind the property tests is not idle: over seeded runs every transition kind succeeds
    at least once, including settlements, disputes, verdicts and slashes."""
    import random
    from collections import Counter

    from .actors import KINDS, draw_template

    succeeded: Counter[str] = Counter()
    for seed in range(40):
        rng = random.Random(seed)
        state = make_active_economy(VARIANTS[seed % len(VARIANTS)])
        for _ in range(300):  # the sealed-job pipeline (seal, draw, reveal, window, opening) is long
            action = compute_action(state, draw_template(rng))
            if apply_checked(state, action, trust_unsigned=True) is None:
                succeeded[action.kind] += 1
    # a settlement with a transcript no game produced never succeeds: that is the point
    assert set(KINDS) - {"execute_proposal", "withdraw_unbonded", "settle_dispute"} <= set(succeeded), set(
        KINDS
    ) - set(succeeded)
    assert "settle_dispute" not in succeeded
