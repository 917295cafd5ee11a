"""Identifiers. With the same seed and the same sequence of calls, every id repeats exactly."""

from __future__ import annotations

import itertools

from emulator import seeded


class Ids:
    """Mints ids as a hash of (seed, kind, sequence number): unique, opaque and reproducible."""

    def __init__(self, seed: int) -> None:
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self._requests = itertools.count(1)
        # Request ids are minted on every call, so they are a seeded prefix and a counter
        # rather than a hash each (a sha256 per request is measurable on the live path).
        self._request_prefix = "req_" + seeded.hexdigest(seed, "request", length=8)

    def make(self, prefix: str, kind: str, n: int, length: int = 24) -> str:
        return prefix + seeded.hexdigest(self.seed, kind, n, length=length)

    def request_id(self) -> str:
        return f"{self._request_prefix}{next(self._requests):012x}"

    def reset(self) -> None:
        self._requests = itertools.count(1)
