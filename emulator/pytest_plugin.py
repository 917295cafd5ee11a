"""The pytest plugin: a real emulator on loopback for a whole test session, a fresh tenant per test.

    def test_my_batch_client(scaigrid):
        client = MyBatchClient(base_url=scaigrid.base_url, api_key=scaigrid.api_key)
        batch_id = client.submit(lines)
        scaigrid.wait_for(batch_id, "completed")

    `scaigrid.openai_client()` is the official `openai` SDK pointed at `scaigrid.oai_base_url`.

The server runs on a frozen clock, so nothing happens by itself with time: `advance()` moves it.
Each test gets its own API key, hence its own tenant (open tenancy): tests never see each other's
batches or files, and a scenario set with `use_scenario` applies to that test's tenant only.

Isolation by construction: a test's key is derived from its node id, and the emulator numbers a
tenant's ids on their own, so the same test gets the same ids and the same scenario faults
whatever ran before it. A test's teardown forgets its tenants and puts the clock back at the
session's start, so each test starts at the same instant and its leftovers never run later.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest

from emulator.clock import iso
from emulator.errors import ConfigError
from emulator.scenario.registry import looks_like_yaml
from emulator.settings import SETTINGS, Settings
from emulator.tenancy import open_tenant_id


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


class EmulatorRefused(httpx.HTTPStatusError):
    """The control plane refused a call: the message is the server's own (its code, message and
    every detail), not a bare status. Still an `httpx.HTTPStatusError`."""

    def __init__(self, response: httpx.Response) -> None:
        request = response.request
        text = f"{request.method} {request.url.path} answered {response.status_code}"
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            text += f": {response.text[:500]}"
        else:
            text += f" {error.get('code')}: {error.get('message')}"
            for detail in error.get("details") or []:
                if detail.get("message") and detail["message"] not in text:
                    text += f"\n  {detail.get('field', '')}: {detail['message']}"
        super().__init__(text, request=request, response=response)


class SignatureMismatch(AssertionError):
    """A post a sink received is not signed with the sink's secret."""


class Sink:
    """A built-in receiver for one test: its `url`, a webhook to it (`register`), and what it
    received. Sinks live for the server's session, so the name is made this test's own."""

    def __init__(self, owner: Scaigrid, name: str, secret: str, query: dict[str, int]) -> None:
        self._owner = owner
        self.name = f"{owner.tenant_id}-{name}"
        self.secret = secret
        self.url = f"{owner.base_url}/_emulator/sink/{quote(self.name, safe='')}"
        if query:
            self.url += "?" + urlencode(query)

    def register(self, events: list[str] | None = None, **fields: Any) -> dict[str, Any]:
        """A webhook of this test's tenant that delivers here, signed with this sink's secret."""
        body: dict[str, Any] = {"url": self.url, "secret": self.secret, **fields}
        if events is not None:
            body["events"] = events
        resp = self._owner.client.post("/v1/webhooks", json=body)
        resp.raise_for_status()
        webhook: dict[str, Any] = resp.json()["data"]
        return webhook

    def received(self) -> list[dict[str, Any]]:
        """Every post, oldest first: `received_at`, `headers`, `body` (raw text), `status` (what
        the sink answered) and `verified` (whether the signature matches the secret)."""
        path = f"/sink/{quote(self.name, safe='')}"
        items: list[dict[str, Any]] = self._owner._call("GET", path)["items"]
        for item in items:
            given = item["headers"].get("x-scaigrid-signature", "")
            expected = (
                "sha256="
                + hmac.new(self.secret.encode(), item["body"].encode(), hashlib.sha256).hexdigest()
            )
            item["verified"] = hmac.compare_digest(given, expected)
        return items

    def events(self, *, verify: bool = True) -> list[dict[str, Any]]:
        """The events received, parsed, oldest first. With `verify` (the default) a post whose
        signature does not match the secret raises `SignatureMismatch`."""
        out = []
        for item in self.received():
            if verify and not item["verified"]:
                raise SignatureMismatch(
                    f"sink {self.name!r}: the post received at {item['received_at']} (event "
                    f"{item['headers'].get('x-scaigrid-event-id')}) is not signed with this "
                    "sink's secret"
                )
            out.append(json.loads(item["body"]))
        return out


class Scaigrid:
    """What a test gets: URLs, its own key, a client, and the levers of the emulator."""

    def __init__(self, server: EmulatorServer | InProcessServer, api_key: str) -> None:
        self._server = server
        self.base_url = server.base_url
        self.oai_base_url = f"{server.base_url}/oai/v1"  # the OpenAI-compatible surface
        self.api_key = api_key
        self.tenant_id = open_tenant_id(self.api_key)
        #: every tenant this test has (`@pytest.mark.scaigrid(tenants=N)`); the first is this one
        self.tenants: list[Scaigrid] = [self]
        # both clients ride the session's one connection pool: building them costs microseconds
        self.client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=30,
            transport=server.transport,
        )
        self._control = httpx.Client(
            base_url=f"{self.base_url}/_emulator", timeout=60, transport=server.transport
        )

    def async_client(self, **options: Any) -> httpx.AsyncClient:
        """An `httpx.AsyncClient` with this test's key (`options` go to it); close it yourself."""
        if self._server.async_transport is not None:
            options.setdefault("transport", self._server.async_transport)
        headers = {"Authorization": f"Bearer {self.api_key}", **options.pop("headers", {})}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30, **options)

    def openai_client(self, *, async_: bool = False, **options: Any) -> Any:
        """The official `openai` SDK's client (`AsyncOpenAI` with `async_=True`) pointed at the
        emulator with this test's key; `options` go to the client (`max_retries`, ...)."""
        import openai

        options = {"base_url": self.oai_base_url, "api_key": self.api_key, **options}
        if async_:
            if self._server.async_transport is not None and "http_client" not in options:
                options["http_client"] = httpx.AsyncClient(transport=self._server.async_transport)
            return openai.AsyncOpenAI(**options)
        options.setdefault("http_client", httpx.Client(transport=self._server.transport))
        return openai.OpenAI(**options)

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        resp = self._control.request(method, path, **kw)
        if resp.is_error:
            raise EmulatorRefused(resp)
        return resp.json()["data"]

    def advance(
        self, seconds: float = 0, *, minutes: float = 0, hours: float = 0
    ) -> dict[str, Any]:
        """Move the emulator clock forward; returns once everything due by then is processed."""
        data: dict[str, Any] = self._call(
            "POST", "/clock/advance", json={"seconds": seconds, "minutes": minutes, "hours": hours}
        )
        return data

    def sleep(self, seconds: float) -> None:
        """A stand-in for `time.sleep` to hand to a polling loop under test: the emulator clock
        moves `seconds`, and what falls due is processed, instead of the test waiting."""
        self.advance(seconds)

    def use_scenario(self, name_or_path: str | Path) -> None:
        """Run this test's tenant under a bundled scenario, a YAML file, or inline YAML text (one
        line too: `{faults: [...]}`, `name: x`). A refused scenario raises `EmulatorRefused`
        with the server's message."""
        ref = str(name_or_path)
        body = {"yaml": ref} if looks_like_yaml(ref) else {"name": ref}
        self._call("PUT", f"/tenants/{self.tenant_id}/scenario", json=body)

    def wait_for(self, batch_id: str, status: str) -> dict[str, Any]:
        """The batch once it has `status`. Processes what is due now; it never waits on time:
        if the batch needs later instants to get there, advance the clock first."""
        self.advance(0)
        # the test's own look, not the client's: the verdict does not judge it
        resp = self.client.get(f"/v1/inference/batch/{batch_id}", headers=PROBE)
        resp.raise_for_status()
        batch: dict[str, Any] = resp.json()["data"]
        if batch["status"] != status:
            raise AssertionError(
                f"batch {batch_id} is {batch['status']}, not {status}, at emulator time "
                f"{self.now()}; advance the clock if it is waiting on time"
            )
        return batch

    def now(self) -> str:
        now: str = self._call("GET", "/clock")["now"]
        return now

    def journal(self, **filters: Any) -> list[dict[str, Any]]:
        """This test's requests, oldest first, as the server's journal has them (filters: method,
        path (a glob, or a prefix), status (404 or 4xx), since, until, limit)."""
        params = {"tenant_id": self.tenant_id, **filters}
        items: list[dict[str, Any]] = self._call("GET", "/journal", params=params)["items"]
        return items

    def requests(
        self, method: str | None = None, path: str | None = None, status: int | str | None = None
    ) -> list[dict[str, Any]]:
        """This test's requests, oldest first, in the style of respx's `calls`: each a journal
        entry whose `request` and `response` also have `json` (the body parsed, or None when it
        is not JSON or was truncated; `request` and `response` are None once the journal no
        longer holds them). `path` is an fnmatch glob (`/v1/inference/batch/*`)."""
        filters = {k: v for k, v in (("method", method), ("status", status)) if v is not None}
        items = self.journal(**filters)
        if path is not None:
            items = [e for e in items if fnmatch.fnmatchcase(e["path"], path)]
        for entry in items:
            for side in ("request", "response"):
                part = entry[side]
                if part is None:
                    continue
                part["json"] = None
                if part["body"] and not part["truncated"]:
                    with contextlib.suppress(ValueError):
                        part["json"] = json.loads(part["body"])
        return items

    def assert_called(self, method: str, path_glob: str, times: int | None = None) -> None:
        """This test called `method` on a path matching `path_glob` (`times` times exactly, or
        at least once); else an AssertionError listing what it called instead."""
        calls = self.requests()
        matched = [
            e
            for e in calls
            if e["method"] == method.upper() and fnmatch.fnmatchcase(e["path"], path_glob)
        ]
        if (len(matched) == times) if times is not None else matched:
            return
        wanted = (
            f"{times} time{'s' if times != 1 else ''}" if times is not None else "at least once"
        )
        listed = "\n".join(
            f"  {e['method']} {e['path']}{'?' + e['query'] if e['query'] else ''} -> {e['status']}"
            for e in calls
        )
        raise AssertionError(
            f"expected {method.upper()} {path_glob} {wanted}, called {len(matched)} "
            f"time{'s' if len(matched) != 1 else ''}; this test's requests:\n"
            + (listed or "  (none)")
        )

    def verdict(self, **thresholds: float) -> list[dict[str, Any]]:
        """Findings on how this test's client used the service (`GET /_emulator/verdict` for
        this tenant): each has `check`, `subject`, `message` and `evidence` (request ids and
        times). `thresholds` (`min_poll_interval`, `rate_limit`) override the server's."""
        params = {"tenant_id": self.tenant_id, **thresholds}
        findings: list[dict[str, Any]] = self._call("GET", "/verdict", params=params)["findings"]
        return findings

    def sink(
        self,
        name: str = "webhooks",
        secret: str | None = None,
        *,
        status: int | None = None,
        count: int | None = None,
    ) -> Sink:
        """A built-in webhook receiver of this test. `status` (for the first `count` posts, or
        all of them) makes it answer with that status instead of 200, to see retries. Without
        a `secret`, one derived from the key and the name: the same in every run."""
        query = {k: v for k, v in (("status", status), ("count", count)) if v is not None}
        if secret is None:
            secret = "whsec_" + hashlib.sha256(f"{self.api_key}:{name}".encode()).hexdigest()[:48]
        return Sink(self, name, secret, query)

    def close(self) -> None:
        self.client.close()
        self._control.close()


MARKER_KEYS = ("seed", "scenario", "tenants", "clock_start", "verdict")
#: the verdict's modes: `strict` fails a test at teardown on any finding of its tenants
VERDICT_MODES = ("off", "strict")
#: sent by the fixture's own looks at the state (`wait_for`): the verdict does not judge them
PROBE = {"X-Emulator-Probe": "scaigrid-fixture"}
INI_OPTIONS = {
    "scaigrid_seed": "seed of the session's emulator (ids, fake inference, every random draw)",
    "scaigrid_scenario": "global scenario of the session's emulator: a bundled name or a file",
    "scaigrid_tenants": "how many tenants each test gets (default 1; `scaigrid.tenants`)",
    "scaigrid_clock_start": "ISO-8601 instant the session's frozen clock starts at",
    "scaigrid_verdict": "off (default) or strict: fail a test at teardown on verdict findings",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    for name, help_text in INI_OPTIONS.items():
        parser.addini(name, help_text, default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "scaigrid(seed=None, scenario=None, tenants=None, verdict=None): this test's emulator "
        "seed (for the test's duration), its tenants' scenario, how many tenants it gets, and "
        "verdict='strict' to fail it on verdict findings; clock_start is refused per test (one "
        "clock per session: use the scaigrid_clock_start ini option)",
    )


def _ini(config: pytest.Config, name: str) -> str | None:
    value = config.getini(name)
    text = str(value).strip() if value is not None else ""
    return text or None


SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}


def _session_settings(config: pytest.Config, db: Path) -> Settings:
    """The session server's settings: a frozen clock, seed 0, and the ini options. Without
    `scaigrid_clock_start` the clock starts now, to the second (an instant it can be put back
    to exactly)."""
    changes: dict[str, Any] = {}
    for name in ("seed", "scenario", "clock_start"):  # parsed as `serve` parses its flags
        raw = _ini(config, f"scaigrid_{name}")
        if raw is not None:
            try:
                changes[name] = SETTINGS_BY_NAME[name].parse(raw)
            except (ValueError, ConfigError) as exc:
                raise pytest.UsageError(f"ini option scaigrid_{name}: {raw!r}: {exc}") from None
    _tenant_count(_ini(config, "scaigrid_tenants") or "1", "ini option scaigrid_tenants")
    now = datetime.now(UTC).replace(microsecond=0)
    return Settings(db=str(db), clock="frozen", seed=0, clock_start=now).replace(**changes)


def _tenant_count(value: Any, where: str) -> int:
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = 0
    if isinstance(value, bool) or count < 1:
        raise pytest.UsageError(f"{where}: tenants must be a whole number >= 1, got {value!r}")
    return count


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The test's `@pytest.mark.scaigrid(...)` options (the closest marker wins, key by key),
    checked: an unknown key, a positional argument or a per-test clock start is an error."""
    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("scaigrid"))):
        if marker.args:
            raise pytest.UsageError(
                f"@pytest.mark.scaigrid takes keyword arguments only ({', '.join(MARKER_KEYS)})"
            )
        unknown = sorted(set(marker.kwargs) - set(MARKER_KEYS))
        if unknown:
            raise pytest.UsageError(
                f"@pytest.mark.scaigrid: unknown option(s) {', '.join(unknown)} "
                f"(known: {', '.join(MARKER_KEYS)})"
            )
        options.update(marker.kwargs)
    if options.get("clock_start") is not None:
        raise pytest.UsageError(
            "@pytest.mark.scaigrid(clock_start=...) cannot apply per test: the session's "
            "emulator has one clock that every test shares. Set the ini option "
            "scaigrid_clock_start for the session, or move the clock with scaigrid.advance()"
        )
    return options


def _handle(
    request: pytest.FixtureRequest, server: EmulatorServer | InProcessServer
) -> Iterator[Scaigrid]:
    options = _options(request)
    ini_tenants = _ini(request.config, "scaigrid_tenants") or "1"
    count = _tenant_count(
        options.get("tenants", ini_tenants),
        "@pytest.mark.scaigrid" if "tenants" in options else "ini option scaigrid_tenants",
    )
    keys = [server.session.key(request.node.nodeid, i) for i in range(count)]
    handle = Scaigrid(server, keys[0])
    handle.tenants = [handle, *(Scaigrid(server, key) for key in keys[1:])]
    seed = options.get("seed")
    previous_seed = None
    try:
        _start_at_the_session_start(handle, server)
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise pytest.UsageError(f"@pytest.mark.scaigrid: seed must be an int, got {seed!r}")
            previous_seed = server.core.settings.seed
            handle._call("PUT", "/seed", json={"seed": seed})
        scenario = options.get("scenario")
        if scenario is not None:
            for tenant in handle.tenants:
                tenant.use_scenario(scenario)
        mode = _verdict_mode(request, options)
        yield handle
        _judge(handle, mode)
    finally:
        try:
            _forget(handle, server.session)
        finally:
            if previous_seed is not None:
                handle._call("PUT", "/seed", json={"seed": previous_seed})
            for tenant in handle.tenants:
                tenant.close()


def _reset(handle: Scaigrid, **body: Any) -> None:
    handle._call(
        "POST", "/reset", json={"tenant_ids": [t.tenant_id for t in handle.tenants], **body}
    )


def _start_at_the_session_start(handle: Scaigrid, server: EmulatorServer | InProcessServer) -> None:
    """Free as a rule: the last test's teardown put the clock back. Whatever moved it since (a
    session fixture, a test without this fixture) is undone here, or refused as at teardown."""
    clock = server.core.clock
    if not clock.frozen or iso(clock.now()) != server.session.start:
        _reset(handle, clock=server.session.start)


def _forget(handle: Scaigrid, session: Session) -> None:
    """One control call: the test's tenants are forgotten, so their leftover batches and
    deliveries never run inside another test, and the clock is frozen at the session's start
    again. With another tenant's work in progress the clock cannot go back: the tenants are
    forgotten all the same, and the server's refusal (naming that tenant) fails the test."""
    try:
        _reset(handle, clock=session.start)
    except EmulatorRefused:
        _reset(handle)
        raise


def _verdict_mode(request: pytest.FixtureRequest, options: dict[str, Any]) -> str:
    where = "@pytest.mark.scaigrid(verdict=...)" if "verdict" in options else "scaigrid_verdict"
    mode = options.get("verdict") or _ini(request.config, "scaigrid_verdict") or "off"
    if mode not in VERDICT_MODES:
        raise pytest.UsageError(f"{where}: {mode!r} is not one of {', '.join(VERDICT_MODES)}")
    return str(mode)


def _judge(handle: Scaigrid, mode: str) -> None:
    """In strict mode, fail the test (at teardown) on any finding of its tenants, listed."""
    if mode != "strict":
        return
    findings = [f for tenant in handle.tenants for f in tenant.verdict()]
    if not findings:
        return
    lines = [f"scaigrid verdict (strict): {len(findings)} finding(s) on this test's client"]
    for f in findings:
        lines.append(f"- {f['check']}: {f['message']}")
        for e in f["evidence"][:5]:
            lines.append(f"    {e['time']} {e.get('method', '')} {e.get('path', '')} "
                         f"{e.get('status', '')} {e['request_id'] or ''}".rstrip())  # fmt: skip
        if f["evidence_count"] > 5:
            lines.append(f"    ... {f['evidence_count'] - 5} more")
    pytest.fail("\n".join(lines), pytrace=False)


@pytest.fixture(scope="session")
def scaigrid_server(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[EmulatorServer]:
    """One emulator on loopback for the session: frozen clock, seed 0 (or the ini options), a
    database in a temporary folder."""
    db = tmp_path_factory.mktemp("scaigrid") / "emulator.db"
    server = EmulatorServer(_session_settings(pytestconfig, db))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def scaigrid(request: pytest.FixtureRequest, scaigrid_server: EmulatorServer) -> Iterator[Scaigrid]:
    """A fresh tenant on the session's emulator."""
    yield from _handle(request, scaigrid_server)


@pytest.fixture(scope="session")
def scaigrid_inprocess_server(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[InProcessServer]:
    """One emulator in this process for the session, with no socket (same settings)."""
    db = tmp_path_factory.mktemp("scaigrid-inprocess") / "emulator.db"
    server = InProcessServer(_session_settings(pytestconfig, db))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def scaigrid_inprocess(
    request: pytest.FixtureRequest, scaigrid_inprocess_server: InProcessServer
) -> Iterator[Scaigrid]:
    """`scaigrid`, served in this process through `httpx.ASGITransport`: no socket, no port.
    Only clients the handle builds reach it (`client`, `async_client()`, `openai_client()`)."""
    yield from _handle(request, scaigrid_inprocess_server)
