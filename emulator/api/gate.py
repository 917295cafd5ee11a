"""The scenario gate: API-level faults, injected latency and rate limits, on any `/v1` route.

It sits inside the request-context middleware, so an injected fault still gets a request id and a
journal entry. When no scenario in force asks for any of this, a request passes with one check.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict, deque
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.api.http import render_error
from emulator.errors import EmulatorError, RateLimited
from emulator.scenario.model import RateLimit, Scenario, unit

if TYPE_CHECKING:
    from emulator.core import Emulator

CONTROL_PREFIX = "/_emulator"


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


class GateState:
    """What the gate counts: rate-limit windows and calls per API-fault rule. Owned by the core
    so that a reset clears it."""

    def __init__(self) -> None:
        self.limiter = RateLimiter()
        # (tenant, activation of its scenario, rule number) -> calls the rule has seen
        self.calls: defaultdict[tuple[str | None, int, int], int] = defaultdict(int)

    def reset(self) -> None:
        self.limiter.reset()
        self.calls.clear()

    def forget(self, tenant_id: str) -> None:
        """Drop one tenant's rate-limit windows and API-fault call counts (a tenant reset)."""
        self.limiter.reset(tenant_id)
        for key in [k for k in self.calls if k[0] == tenant_id]:
            del self.calls[key]


class ScenarioGate:
    def __init__(self, app: ASGIApp, core: Emulator) -> None:
        self.app = app
        self.core = core
        self.state = core.gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scenarios = self.core.scenarios
        if (
            scope["type"] != "http"
            or not scenarios.gated
            or scope["path"].startswith(CONTROL_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        who, tenant = self._who(scope)
        scope["state"]["tenant_id"] = tenant  # so the journal names the tenant of a refused call
        scenario = scenarios.for_tenant(tenant)
        try:
            extra = await self._apply(scenario, scope, who, tenant)
        except EmulatorError as err:
            await render_error(err, scope["state"]["request_id"])(scope, receive, send)
            return
        if not extra:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _who(self, scope: Scope) -> tuple[str, str | None]:
        """(the key, the tenant) of the caller; an unauthenticated caller has no tenant."""
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
        try:
            principal = self.core.tenancy.authenticate(authorization)
        except EmulatorError:
            return authorization or "anonymous", None
        return principal.key_id, principal.tenant_id  # however the header spells the key

    async def _apply(
        self, scenario: Scenario, scope: Scope, who: str, tenant: str | None
    ) -> list[tuple[bytes, bytes]]:
        method, path = scope["method"], scope["path"]
        # calls are counted from when the scenario was put in force; draws use its own seed if
        # it pins one
        activation = self.core.scenarios.activation(tenant)
        seed = self.core.settings.seed if scenario.seed is None else scenario.seed
        for n, rule in enumerate(scenario.api_faults):
            if not rule.applies(method, path):
                continue
            key = (tenant, activation, n)
            self.state.calls[key] += 1
            call = self.state.calls[key]
            if not rule.fires(call, unit(seed, "api", scenario.name, tenant, n, call)):
                continue
            if rule.latency:
                await self._delay(rule.latency)
            if rule.error is not None:
                raise rule.error.error()
        limit = scenario.rate_limit
        if limit is None or not limit.covers(path):
            return []
        bucket = (tenant, who if limit.scope == "key" else "")
        headers = self.state.limiter.check(limit, bucket, self.core.clock.now())
        return [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def _delay(self, seconds: float) -> None:
        """Injected latency is real time (a client's timeout is real), divided by the clock's
        scale; a frozen clock does not hold responses back."""
        clock = self.core.clock
        if clock.mode != "frozen":
            await asyncio.sleep(seconds / clock.scale)
