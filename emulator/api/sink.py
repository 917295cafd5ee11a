"""The built-in webhook receiver: `POST` records a delivery (no admin token: the emulator's own
sender posts here), `GET` lists what a sink received (a control route like the others)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from emulator import wire
from emulator.api.control import admin
from emulator.api.http import JSON, core_of, read_body


async def receive(request: Request) -> Response:
    q = request.query_params
    status = core_of(request).sinks.receive(
        request.path_params["name"],
        dict(request.headers),
        await read_body(request),  # bounded: posting here needs no token
        q.get("status"),
        q.get("count"),
    )
    return JSON(wire.ok({"received": True}), status_code=status)


async def received(request: Request) -> Response:
    admin(request)
    return JSON(wire.ok({"items": core_of(request).sinks.items(request.path_params["name"])}))
