"""`GET /health` and `GET /metrics`: the service's own, without authentication, as the real
service has them (the control plane's `/_emulator/health` answers the same health)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from emulator import control, wire
from emulator.api.http import JSON, core_of
from emulator.metrics import CONTENT_TYPE, Census, render
from emulator.status import BatchStatus


async def service_health(request: Request) -> Response:
    return JSON(wire.ok(control.health(core_of(request))))


async def metrics(request: Request) -> Response:
    """The counters, and what the store says now (a scrape is one grouped query)."""
    core = core_of(request)
    rows = await core.store.batch_census()
    queued = sum(left for status, _, left in rows if status in _ACTIVE)
    census = Census({status: n for status, n, _ in rows}, queued)
    text = render(core.metrics, census, [s.value for s in BatchStatus], core.version)
    return Response(text, media_type=CONTENT_TYPE)


_ACTIVE = frozenset({BatchStatus.PENDING.value, BatchStatus.PROCESSING.value})
