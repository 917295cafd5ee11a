"""Pre-signed links: the signature covers path and expiry; odd `expires` values are refused."""

from __future__ import annotations

import pytest

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
