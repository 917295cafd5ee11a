"""What scenarios do to API calls: injected faults, transport faults and latency per rule, and
rate limits.

The state here (rate-limit windows, each rule's call count) belongs to the emulator, so a reset
clears it; the HTTP gate (`emulator.api.gate`) only asks `decide` and acts on the answer.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from dataclasses import dataclass, field

from emulator.errors import EmulatorError, RateLimited
from emulator.scenario.model import RateLimit, Scenario, Transport
from emulator.seeded import unit


class RateLimiter:
    """A sliding window on the emulator clock, per key or per tenant, as ScaiGrid's limiter."""

    def __init__(self) -> None:
        # (tenant, the key or the whole tenant) -> instants of the calls in the window
        self._hits: defaultdict[tuple[str | None, str], deque[float]] = defaultdict(deque)

    def check(self, limit: RateLimit, who: tuple[str | None, str], now: float) -> dict[str, str]:
        """Count this request; the rate-limit headers, or `RateLimited` once the window is full."""
        hits = self._hits[who]
        while hits and hits[0] <= now - limit.per:
            hits.popleft()
        if len(hits) >= limit.requests:
            reset = hits[0] + limit.per
            wait = max(1, math.ceil(reset - now))
            headers = _headers(limit, 0, reset)
            raise RateLimited(retry_after=wait, headers=headers)
        hits.append(now)
        return _headers(limit, limit.requests - len(hits), (hits[0] + limit.per))

    def reset(self, tenant_id: str | None = None) -> None:
        if tenant_id is None:
            self._hits.clear()
        for who in [w for w in self._hits if w[0] == tenant_id]:
            del self._hits[who]


def _headers(limit: RateLimit, remaining: int, reset: float) -> dict[str, str]:
    return {
        "X-Scaigrid-Ratelimit-Limit": str(limit.requests),
        "X-Scaigrid-Ratelimit-Remaining": str(remaining),
        "X-Scaigrid-Ratelimit-Reset": str(math.ceil(reset)),
    }


@dataclass
class Effect:
    """What a scenario does to one call: wait `latency` real seconds, then fail with `error`,
    break the wire with `transport`, or go on with the extra response `headers`."""

    latency: float = 0.0
    error: EmulatorError | None = None
    transport: Transport | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ends(self) -> bool:
        """Whether a rule has decided how the call ends (later rules only count it)."""
        return self.error is not None or self.transport is not None


class ApiEffects:
    """API faults, injected latency and rate limits, counted per tenant."""

    def __init__(self) -> None:
        self.limiter = RateLimiter()
        # (tenant, activation of its scenario, rule number) -> calls the rule has seen
        self.calls: defaultdict[tuple[str | None, int, int], int] = defaultdict(int)

    def decide(
        self,
        scenario: Scenario,
        *,
        seed: int,
        activation: int,
        method: str,
        path: str,
        who: str,
        tenant: str | None,
        now: float,
    ) -> Effect:
        """Count this call against every rule that applies (a rule's N-th call is the N-th call
        to a route it covers, whatever other rules did with it); the first rule with an error
        or a transport fault that fires ends the call, after the latency of every rule that
        fired before it. A transport fault acts on whatever answers the call, a rate limit's
        429 too.
        `activation` numbers the setting that put the scenario in force, so counts start afresh
        when it is set again; draws use the scenario's own seed if it pins one."""
        seed = seed if scenario.seed is None else scenario.seed
        effect = Effect()
        for n, rule in enumerate(scenario.api_faults):
            if not rule.applies(method, path):
                continue
            key = (tenant, activation, n)
            self.calls[key] += 1
            call = self.calls[key]
            if effect.ends:  # counted; the call has failed already
                continue
            if not rule.fires(call, unit(seed, "api", scenario.name, tenant, n, call)):
                continue
            effect.latency += rule.latency or 0.0
            if rule.error is not None:
                effect.error = rule.error.error()
            effect.transport = rule.transport
        if effect.error is not None:
            return effect
        limit = scenario.rate_limit
        if limit is not None and limit.covers(path):
            bucket = (tenant, who if limit.scope == "key" else "")
            try:
                effect.headers = self.limiter.check(limit, bucket, now)
            except RateLimited as exc:
                effect.error = exc
        return effect

    def reset(self, tenant_id: str | None = None) -> None:
        """Forget the counts and windows of one tenant, or of everyone."""
        self.limiter.reset(tenant_id)
        if tenant_id is None:
            self.calls.clear()
            return
        for key in [k for k in self.calls if k[0] == tenant_id]:
            del self.calls[key]
