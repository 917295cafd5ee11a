"""Pre-signed URLs: an expiry instant (emulator clock, in Unix milliseconds, as precise as every
timestamp the emulator writes) and an HMAC over path and expiry.

Used for batch results URLs and image URLs, which the real service also serves as short-lived
pre-signed links that need no Authorization header.
"""

from __future__ import annotations

import hashlib
import hmac

from emulator import seeded
from emulator.errors import ResultsUrlExpired, ResultsUrlInvalid


class Signer:
    """Signs with the `--signing-secret` setting or, without one, a secret derived from the seed,
    so seeded runs mint the same links. Whoever knows the secret can mint a link to any
    tenant's results (a link needs no Authorization header): a shared emulator sets its own."""

    def __init__(self, seed: int, secret: str | None = None) -> None:
        self._given = secret.encode() if secret is not None else None
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """A new seed changes a derived secret; a given one stays."""
        self._secret = self._given or seeded.digest("scaigrid-emulator", "signing", seed)

    def signature(self, path: str, expires: int) -> str:
        return hmac.new(self._secret, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def query(self, path: str, expires_at: float) -> str:
        """`expires=MS&signature=HEX` for a link valid until the instant `expires_at`."""
        expires = round(expires_at * 1000)
        return f"expires={expires}&signature={self.signature(path, expires)}"

    def verify(self, path: str, expires: str | None, signature: str | None, now: float) -> None:
        """Raise `ResultsUrlInvalid` for a tampered link and `ResultsUrlExpired` for a stale one."""
        # isascii: str.isdigit() also accepts digits such as "²", which int() refuses; and
        # compare_digest refuses (TypeError) a str with any non-ASCII character in it.
        if not expires or not (expires.isascii() and expires.isdigit()) or not signature:
            raise ResultsUrlInvalid()
        if not signature.isascii():
            raise ResultsUrlInvalid()
        if not hmac.compare_digest(self.signature(path, int(expires)), signature):
            raise ResultsUrlInvalid()
        if now * 1000 >= int(expires):
            raise ResultsUrlExpired()
