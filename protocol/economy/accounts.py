"""Accounts, genesis allocations and transfers."""

from __future__ import annotations

from protocol.economy.errors import AccountExists, GenesisClosed, InvalidAmount
from protocol.economy.helpers import (
    decrease_balance,
    get_account,
    increase_balance,
    require_account_name,
    require_positive_amount,
)
from protocol.economy.state import Account, State
from protocol.types import Tokens


def process_open_account(state: State, account: str) -> None:
    """Open an empty account named `account` (see units.py for the naming rule)."""
    name = require_account_name(account)
    if name in state.accounts:
        raise AccountExists(f"account {name!r} is already open")
    state.accounts[name] = Account()


def process_genesis_allocation(state: State, account: str, amount: Tokens) -> None:
    """Create `amount` new tokens in `account` (opening it if needed). Only in epoch 0: after genesis,
    tokens come from emission alone."""
    name = require_account_name(account)
    require_positive_amount(amount, "a genesis allocation")
    if state.epoch != 0:
        raise GenesisClosed(f"genesis allocations end with epoch 0; this is epoch {state.epoch}")
    if name not in state.accounts:
        state.accounts[name] = Account()
    increase_balance(state, name, amount)
    state.total_supply += amount
    state.totals.genesis += amount


def process_transfer(state: State, sender: str, recipient: str, amount: Tokens) -> None:
    """Move `amount` liquid tokens from `sender` to `recipient` (both must be open accounts)."""
    require_positive_amount(amount, "a transfer")
    get_account(state, recipient)
    if sender == recipient:
        raise InvalidAmount("a transfer to oneself moves nothing")
    decrease_balance(state, sender, amount)
    increase_balance(state, recipient, amount)
