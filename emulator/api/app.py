"""The ASGI application: the route table, the request-context middleware and error handlers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import Receive, Scope, Send

from emulator.api.fast import FastInference
from emulator.api.gate import ScenarioGate
from emulator.api.http import RequestContext, on_emulator_error, on_http_exception
from emulator.api.routes import ROUTES
from emulator.core import Emulator
from emulator.errors import EmulatorError
from emulator.settings import Settings


def create_app(
    settings: Settings | None = None, core: Emulator | None = None, *, owned: bool | None = None
) -> EmulatorApp:
    """The emulator as an ASGI app. The app's lifespan starts and stops the core it builds; a
    prebuilt `core` is the caller's to start (as the pytest fixture does) unless `owned` is set."""
    owned = core is None if owned is None else owned
    core = core or Emulator(settings or Settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if owned:
            await core.start()
        try:
            yield
        finally:
            if owned:
                await core.stop()

    app = EmulatorApp(
        routes=ROUTES,
        middleware=[
            Middleware(RequestContext, core=core, routes=ROUTES),
            Middleware(ScenarioGate, core=core),
        ],
        exception_handlers={
            EmulatorError: on_emulator_error,
            HTTPException: on_http_exception,
        },
        lifespan=lifespan,
    )
    app.state.core = core
    app.fast = FastInference(core, general=app.general)
    return app


class EmulatorApp(Starlette):
    """Starlette, with the live inference fast path (`emulator.api.fast`) in front of it."""

    fast: FastInference

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast.takes(scope):
            await self.fast(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def general(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app without the fast path: what answers everything the fast path does not."""
        await super().__call__(scope, receive, send)
