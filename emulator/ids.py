"""Identifiers. With the same seed and the same sequence of calls, every id repeats exactly."""

from __future__ import annotations

import hashlib
import itertools


class Ids:
    """Mints ids as a hash of (seed, kind, sequence number): unique, opaque and reproducible."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._requests = itertools.count(1)

    def make(self, prefix: str, kind: str, n: int, length: int = 24) -> str:
        digest = hashlib.sha256(f"{self.seed}:{kind}:{n}".encode()).hexdigest()
        return prefix + digest[:length]

    def request_id(self) -> str:
        return self.make("req_", "request", next(self._requests), 20)

    def reset(self) -> None:
        self._requests = itertools.count(1)
