"""The scenario gate: API-level faults, injected latency, rate limits and transport faults, on any
`/v1` route and any route of the OpenAI surface (`/oai/v1`), where errors take OpenAI's body.

It sits inside the request-context middleware, so an injected fault still gets a request id and a
journal entry. When no scenario in force asks for any of this, a request passes with one check.
What happens to a call is decided by `emulator.scenario.effects`; this module is the HTTP side,
and `emulator.api.transport` what a transport fault does to the answer.
"""

from __future__ import annotations

import asyncio

from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.api import batches, transport
from emulator.api.http import authorization, render_error
from emulator.api.routes import ROUTES
from emulator.core import Emulator
from emulator.errors import EmulatorError

CONTROL_PREFIX = "/_emulator"
#: the route of a batch's pre-signed results link
_RESULTS_LINK = next(
    r for r in ROUTES if isinstance(r, Route) and r.endpoint is batches.get_results
).path_regex


class ScenarioGate:
    def __init__(self, app: ASGIApp, core: Emulator) -> None:
        self.app = app
        self.core = core

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scenarios = self.core.scenarios
        if (
            scope["type"] != "http"
            or not scenarios.gated
            or scope["path"].startswith(CONTROL_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        who, tenant = await self._who(scope)
        scope["state"]["tenant_id"] = tenant  # so the journal names the tenant of a refused call
        effect = self.core.effects.decide(
            scenarios.for_tenant(tenant),
            seed=scenarios.seed,
            activation=scenarios.activation(tenant),
            method=scope["method"],
            path=scope["path"],
            who=who,
            tenant=tenant,
            now=self.core.clock.now(),
        )
        if effect.latency:
            await self._delay(effect.latency)
        answer: ASGIApp = self.app
        if effect.error is not None:
            self.core.metrics.faults[("api", effect.error.code)] += 1
            answer = render_error(effect.error, scope["state"]["request_id"], scope["path"])
        elif effect.headers:
            answer = _with_headers(self.app, effect.headers)
        if effect.transport is not None:
            self.core.metrics.faults[("transport", effect.transport.fault)] += 1
            await transport.act(effect.transport, answer, scope, receive, send)
            return
        await answer(scope, receive, send)

    async def _who(self, scope: Scope) -> tuple[str, str | None]:
        """(the key, the tenant) of the caller. An unauthenticated caller has no tenant, but a
        results link (no key: its signature is the credential) is its batch's owner's, so the
        owner's scenario reaches its downloads."""
        header = authorization(scope)
        try:
            principal = self.core.tenancy.authenticate(header)
        except EmulatorError:
            link = _RESULTS_LINK.match(scope["path"])
            batch = await self.core.batches.results_batch(link["batch_id"]) if link else None
            return header or "anonymous", batch.tenant_id if batch else None
        return principal.key_id, principal.tenant_id  # however the header spells the key

    async def _delay(self, seconds: float) -> None:
        """Injected latency is real time (a client's timeout is real), divided by the clock's
        scale; a frozen clock does not hold responses back."""
        clock = self.core.clock
        if not clock.frozen:
            await asyncio.sleep(seconds / clock.scale)


def _with_headers(app: ASGIApp, headers: dict[str, str]) -> ASGIApp:
    """`app`, its answer carrying the extra `headers` (a rate limit's)."""
    extra = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def with_headers(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await app(scope, receive, send_with_headers)

    return with_headers
