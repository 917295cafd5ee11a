"""Where a live chat request's time goes: in-process ASGI calls, no HTTP, no sockets.

The same request as `live_chat.py` is sent straight into the ASGI app in a loop, and the CPU time
per call (time.process_time, best of 3 runs) is measured for a ladder of variants, each removing
one layer: the difference between two rungs is what that layer costs.

  emulator                      the app `emulator serve` runs
  - engine                      Engine.infer replaced by the fixed answer bare_app.py returns
  - scenario gate               the ScenarioGate middleware left out
  - request id                  ids.request_id() returning a constant
  - request context             RequestContext replaced by a middleware that only sets the id
  bare                          benchmarks/bare_app.py

What is left between the last emulator rung and bare is the route itself: the router (30 routes,
chat is the third), `caller` (auth and permission), `json_body`, `core.infer`, the envelope.

Run: .venv/bin/python benchmarks/live_chat_breakdown.py [--calls 5000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import bare_app  # noqa: E402
from benchmarks.common import API_KEY, ROOT, machine, table, write_results  # noqa: E402
from benchmarks.live_chat import BODY, PATH  # noqa: E402
from emulator.api.app import create_app  # noqa: E402
from emulator.api.http import RequestContext, on_emulator_error, on_http_exception  # noqa: E402
from emulator.api.routes import ROUTES  # noqa: E402
from emulator.core import Emulator  # noqa: E402
from emulator.errors import EmulatorError  # noqa: E402
from emulator.settings import Settings  # noqa: E402

RAW = orjson.dumps(BODY)
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"content-type", b"application/json"),
    (b"authorization", f"Bearer {API_KEY}".encode()),
    (b"content-length", str(len(RAW)).encode()),
]


def scope() -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": list(HEADERS),
    }


async def receive() -> Message:
    return {"type": "http.request", "body": RAW, "more_body": False}


async def send(message: Message) -> None:
    if message["type"] == "http.response.start" and message["status"] != 200:
        raise RuntimeError(f"status {message['status']}")


async def calls(app: ASGIApp, n: int) -> None:
    for _ in range(n):
        await app(scope(), receive, send)


async def cpu_us_per_call(app: ASGIApp, n: int) -> float:
    await calls(app, 300)  # warm-up
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        await calls(app, n)
        best = min(best, (time.process_time() - t) / n * 1e6)
    return best


class OnlyRequestId:
    """The least a middleware must do for the routes to work: set the request id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})["request_id"] = "req_constant"
        await self.app(scope, receive, send)


def app_with(core: Emulator, middleware: list[Middleware]) -> Starlette:
    app = Starlette(
        routes=ROUTES,
        middleware=middleware,
        exception_handlers={EmulatorError: on_emulator_error, HTTPException: on_http_exception},
    )
    app.state.core = core
    return app


async def ladder(n: int, profile: bool) -> list[tuple[str, float]]:
    core = Emulator(Settings(db=":memory:", port=8000))
    await core.start()
    try:
        rungs = [("emulator", await cpu_us_per_call(create_app(core=core), n))]
        if profile:
            prof = cProfile.Profile()
            prof.enable()
            await calls(create_app(core=core), n)
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        fixed: Callable[..., dict[str, Any]] = lambda *a, **k: bare_app.COMPLETION  # noqa: E731
        core.engine.infer = fixed  # type: ignore[method-assign]
        rungs.append(("- engine", await cpu_us_per_call(create_app(core=core), n)))
        context = [Middleware(RequestContext, core=core, routes=ROUTES)]
        rungs.append(("- scenario gate", await cpu_us_per_call(app_with(core, context), n)))
        core.ids.request_id = lambda: "req_constant"  # type: ignore[method-assign]
        rungs.append(("- request id", await cpu_us_per_call(app_with(core, context), n)))
        only_id = [Middleware(OnlyRequestId)]
        rungs.append(("- request context", await cpu_us_per_call(app_with(core, only_id), n)))
        rungs.append(("bare", await cpu_us_per_call(bare_app.app, n)))
    finally:
        await core.stop()
    return rungs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=5000, help="calls per measurement")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of the app")
    args = ap.parse_args()
    info = machine()
    rungs = asyncio.run(ladder(args.calls, args.profile))
    # Each rung's cost is the rung above it minus this one; bare's is the route itself.
    rows: list[list[Any]] = [[rungs[0][0], rungs[0][1], "-"]]
    for (_, above), (name, us) in zip(rungs, rungs[1:], strict=False):
        label = "bare (layer: the route itself)" if name == "bare" else name
        rows.append([label, us, above - us])
    print(f"CPU microseconds per in-process ASGI call, best of 3 x {args.calls:,}")
    print(table(["variant", "us/call", "layer removed, us"], rows))
    path = write_results(
        "live_chat_breakdown",
        {**info, "calls": args.calls, "us_per_call": dict(rungs)},
    )
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
