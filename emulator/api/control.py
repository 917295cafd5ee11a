"""The control plane under `/_emulator/`: health now; reset, clock, scenarios and the rest."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from emulator import wire
from emulator.api.http import JSON, core_of


async def health(request: Request) -> Response:
    return JSON(wire.ok(core_of(request).health()))
