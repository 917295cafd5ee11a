"""Pre-signed links: the signature covers path and expiry; odd `expires` values are refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.errors import ResultsUrlExpired, ResultsUrlInvalid
from emulator.signing import Signer

SIGNER = Signer(1)
PATH = "/v1/inference/batch/b/results"


def test_a_valid_link_passes_until_it_expires() -> None:
    """`expires` is in Unix milliseconds: a link minted for an instant expires at it exactly."""
    sig = SIGNER.signature(PATH, 100_250)
    SIGNER.verify(PATH, "100250", sig, now=100.249)
    with pytest.raises(ResultsUrlExpired):
        SIGNER.verify(PATH, "100250", sig, now=100.25)
    assert SIGNER.query(PATH, 100.25) == f"expires=100250&signature={sig}"


@pytest.mark.parametrize("expires", ["", "-1", "1e3", "²", "١٠٠", " 100", "100 "])
def test_expires_that_is_not_plain_ascii_digits_is_invalid(expires: str) -> None:
    with pytest.raises(ResultsUrlInvalid):
        SIGNER.verify(PATH, expires, SIGNER.signature(PATH, 100), now=0)


def test_the_signature_covers_the_path_and_the_expiry() -> None:
    sig = SIGNER.signature(PATH, 100)
    for path, expires in ((PATH + "x", "100"), (PATH, "101")):
        with pytest.raises(ResultsUrlInvalid):
            SIGNER.verify(path, expires, sig, now=0)
    with pytest.raises(ResultsUrlInvalid):
        SIGNER.verify(PATH, "100", None, now=0)


# --- properties (hypothesis) ----------------------------------------------------------------------

TEXT = st.text(max_size=80)
EXPIRES = st.integers(min_value=0, max_value=2**63)


@given(path=TEXT, expires=EXPIRES, early=st.floats(0.001, 1e6))
def test_a_link_it_minted_passes_until_its_expiry(path: str, expires: int, early: float) -> None:
    sig = SIGNER.signature(path, expires)
    if expires / 1000 - early >= 0:
        SIGNER.verify(path, str(expires), sig, now=expires / 1000 - early)
    with pytest.raises(ResultsUrlExpired):
        SIGNER.verify(path, str(expires), sig, now=expires / 1000 + early)


@given(path=TEXT, expires=EXPIRES, position=st.integers(0, 63), char=st.characters())
def test_any_change_to_the_signature_is_refused(
    path: str, expires: int, position: int, char: str
) -> None:
    sig = SIGNER.signature(path, expires)
    tampered = sig[:position] + char + sig[position + 1 :]
    if tampered != sig:
        with pytest.raises(ResultsUrlInvalid):
            SIGNER.verify(path, str(expires), tampered, now=0)


@given(
    path=TEXT,
    expires=st.none() | TEXT,
    signature=st.none() | TEXT | st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    now=st.floats(allow_nan=True, allow_infinity=True),
)
def test_whatever_a_link_carries_the_answer_is_pass_invalid_or_expired(
    path: str, expires: str | None, signature: str | None, now: float
) -> None:
    """Any query a client can send: the checker passes it or refuses it, and nothing else
    (no TypeError, no ValueError: a 500)."""
    try:
        SIGNER.verify(path, expires, signature, now)
    except (ResultsUrlInvalid, ResultsUrlExpired):
        pass


# --- the secret -----------------------------------------------------------------------------------


def test_without_a_secret_the_seed_makes_it_so_seeded_runs_mint_the_same_links() -> None:
    assert Signer(1).query(PATH, 100) == SIGNER.query(PATH, 100)
    assert Signer(2).query(PATH, 100) != SIGNER.query(PATH, 100)


def test_a_given_secret_replaces_the_seeds_and_survives_a_reseed() -> None:
    mine = Signer(1, "a secret of our own")
    assert mine.query(PATH, 100) != SIGNER.query(PATH, 100)
    assert mine.query(PATH, 100) == Signer(7, "a secret of our own").query(PATH, 100)
    minted = mine.query(PATH, 100)
    mine.reseed(9)
    assert mine.query(PATH, 100) == minted
    with pytest.raises(ResultsUrlInvalid):  # a link the seed's secret signed is not one of ours
        mine.verify(PATH, "100000", SIGNER.signature(PATH, 100_000), now=0)
    assert mine.query(PATH, 100) != Signer(1, "another").query(PATH, 100)
