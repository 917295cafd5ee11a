"""The batch status table (emulator.status): every (from, to) pair, allowed or refused."""

from __future__ import annotations

import itertools

import pytest

from emulator.errors import InvalidTransition
from emulator.status import (
    ACTIVE,
    FINAL,
    TRANSITIONS,
    BatchStatus,
    can_move,
    check_move,
    is_final,
)

P, R, C, F, X = (
    BatchStatus.PENDING,
    BatchStatus.PROCESSING,
    BatchStatus.COMPLETED,
    BatchStatus.FAILED,
    BatchStatus.CANCELLED,
)

#: The contract's lifecycle, written out independently of the module's table.
EXPECTED_MOVES = {(P, R), (P, F), (P, X), (R, C), (R, X)}

ALL_PAIRS = list(itertools.product(BatchStatus, repeat=2))


def test_statuses_are_exactly_the_documented_five() -> None:
    assert [s.value for s in BatchStatus] == [
        "pending",
        "processing",
        "completed",
        "failed",
        "cancelled",
    ]


def test_table_has_a_row_for_every_status() -> None:
    assert set(TRANSITIONS) == set(BatchStatus)


def test_table_is_the_contract_lifecycle() -> None:
    table = {(a, b) for a, nexts in TRANSITIONS.items() for b in nexts}
    assert table == EXPECTED_MOVES


@pytest.mark.parametrize(("current", "to"), ALL_PAIRS, ids=lambda s: str(s))
def test_every_pair(current: BatchStatus, to: BatchStatus) -> None:
    allowed = to in TRANSITIONS[current]
    assert allowed == ((current, to) in EXPECTED_MOVES)
    # plain strings (as stored in SQLite) behave exactly like the enum members
    assert can_move(current, to) is allowed
    assert can_move(current.value, to.value) is allowed
    if allowed:
        assert check_move(current.value, to.value) == to
    else:
        with pytest.raises(InvalidTransition) as caught:
            check_move(current.value, to.value)
        assert caught.value.code == "INVALID_TRANSITION"
        assert current.value in caught.value.message
        assert to.value in caught.value.message


def test_no_status_moves_to_itself() -> None:
    for status in BatchStatus:
        assert not can_move(status, status)


def test_final_and_active_sets() -> None:
    assert FINAL == {C, F, X}
    assert ACTIVE == {P, R}
    assert FINAL.isdisjoint(ACTIVE)
    assert FINAL | ACTIVE == set(BatchStatus)
    for status in BatchStatus:
        assert is_final(status.value) is (status in FINAL)
        assert (not TRANSITIONS[status]) is (status in FINAL)


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError):
        can_move("pending", "expired")
    with pytest.raises(ValueError):
        is_final("validating")
