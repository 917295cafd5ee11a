"""Identifiers. With the same seed and the same calls, every id repeats exactly.

The id of a tenant's object (batch, file, webhook, event, delivery) is a hash of the seed, its
kind, the tenant and its number among that tenant's objects of the kind: what other tenants do
never moves it. That matters beyond looks: scenario draws hash the batch id, so a batch gets the
same faults whatever ran before it. The numbers are kept in the store, so a restart continues
them, and a reset of the tenant starts them again.
"""

from __future__ import annotations

import itertools

from emulator import seeded
from emulator.store import Store


class Ids:
    """Mints ids as a hash of (seed, kind, tenant, number): unique, opaque and reproducible."""

    def __init__(self, seed: int, store: Store) -> None:
        self.store = store
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self._requests = itertools.count(1)
        # Request ids are minted on every call, so they are a seeded prefix and a counter
        # rather than a hash each (a sha256 per request is measurable on the live path).
        self._request_prefix = "req_" + seeded.hexdigest(seed, "request", length=8)

    def make(self, prefix: str, kind: str, tenant_id: str, n: int, length: int = 24) -> str:
        return prefix + seeded.hexdigest(self.seed, kind, tenant_id, n, length=length)

    async def mint(self, prefix: str, kind: str, tenant_id: str) -> str:
        """The id of the tenant's next object of `kind`."""
        return self.make(prefix, kind, tenant_id, await self.store.claim_number(tenant_id, kind))

    def request_id(self) -> str:
        return f"{self._request_prefix}{next(self._requests):012x}"

    def reset(self) -> None:
        """Request ids count from 1 again (a full reset, or a clock put back)."""
        self._requests = itertools.count(1)
