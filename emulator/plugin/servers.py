"""The session's emulator, as the `scaigrid` fixtures serve it: `EmulatorServer` (uvicorn on a
free loopback port, in a background thread) or `InProcessServer` (the app on an event loop in a
background thread, reached through `httpx.ASGITransport`), each with the `Session` every test of
it starts from."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections.abc import Coroutine
from typing import Any

import httpx

from emulator.clock import iso
from emulator.settings import Settings


class Session:
    """What every test of a session's server starts from: its seed, and the instant its frozen
    clock starts at (the teardown of each test puts the clock back there)."""

    def __init__(self, seed: int, start: float) -> None:
        self.seed = seed
        self.start = iso(start)

    def key(self, nodeid: str, index: int) -> str:
        """The API key of a test's `index`-th tenant: the same in every run of the test, alone,
        after others or in a pytest-xdist worker, so its tenant and its ids are too."""
        digest = hashlib.sha256(f"{self.seed}:{nodeid}:{index}".encode()).hexdigest()
        return "sgk_test_" + digest[:40]


class EmulatorServer:
    """uvicorn serving the emulator in a background thread, on a free loopback port."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        from emulator.api.app import create_app
        from emulator.cli import server_config
        from emulator.core import Emulator

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        settings = settings.replace(host="127.0.0.1", port=self.sock.getsockname()[1])
        self.base_url = settings.base_url
        self.core = Emulator(settings)
        self.session = Session(settings.seed, self.core.clock.now())
        config = server_config(create_app(core=self.core, owned=True), "warning")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})
        # the session's one connection pool: every test's client and control calls share it
        self._pool = _Shared(httpx.HTTPTransport())
        self.transport: httpx.BaseTransport = self._pool
        self.async_transport: httpx.AsyncBaseTransport | None = None  # async clients: their own

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:  # uvicorn sets it once it accepts connections
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator server failed to start")
            self._thread.join(0.01)

    def stop(self) -> None:
        self._pool.close_pool()
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self.sock.close()


class _Shared(httpx.BaseTransport):
    """A transport many `httpx.Client`s use: closing one of them leaves the pool open; the
    owner closes the pool with `close_pool`."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(request)

    def close(self) -> None:
        pass

    def close_pool(self) -> None:
        self._inner.close()


INPROCESS_URL = "http://scaigrid.inprocess"


class InProcessServer:
    """The emulator's core and app on an event loop in a background thread, with no socket:
    clients reach the app through `httpx.ASGITransport`, each request handed to that loop."""

    def __init__(self, settings: Settings) -> None:
        from emulator.api.app import create_app
        from emulator.core import Emulator

        settings = settings.replace(public_url=INPROCESS_URL)
        self.base_url = settings.base_url
        self.core = Emulator(settings)
        self.session = Session(settings.seed, self.core.clock.now())
        self.app = create_app(core=self.core)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._asgi = httpx.ASGITransport(self.app)
        self._outbound: httpx.AsyncClient | None = None
        self.transport: httpx.BaseTransport = _InProcessTransport(self)
        self.async_transport: httpx.AsyncBaseTransport | None = _InProcessAsyncTransport(self)

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 120.0) -> Any:
        """Run `coro` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        from emulator.api.http import ConnectionDropped

        body = await request.aread()
        inner = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        try:
            response = await self._asgi.handle_async_request(inner)
        except ConnectionDropped as exc:  # a transport fault: what httpx raises on a socket
            error = httpx.ReadError if exc.reset else httpx.RemoteProtocolError
            raise error(str(exc), request=request) from exc
        content = await response.aread()
        return httpx.Response(response.status_code, headers=response.headers, content=content)

    def start(self) -> None:
        self._thread.start()

        async def start() -> None:
            await self.core.start()
            # webhook deliveries reach this same app (its sinks), whatever host a URL names
            self._outbound = httpx.AsyncClient(transport=self._asgi, base_url=self.base_url)
            self.core.sender.use(self._outbound)

        self.run(start())

    def stop(self) -> None:
        async def stop() -> None:
            await self.core.stop()
            if self._outbound is not None:
                await self._outbound.aclose()

        try:
            self.run(stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()


class _InProcessTransport(httpx.BaseTransport):
    def __init__(self, server: InProcessServer) -> None:
        self._server = server

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        response: httpx.Response = self._server.run(self._server._send(request))
        return response


class _InProcessAsyncTransport(httpx.AsyncBaseTransport):
    def __init__(self, server: InProcessServer) -> None:
        self._server = server

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        future = asyncio.run_coroutine_threadsafe(self._server._send(request), self._server._loop)
        response: httpx.Response = await asyncio.wrap_future(future)
        return response
