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

The parts live in `emulator.plugin`: `servers` (the session's server, on a socket or in-process),
`handle` (the `Scaigrid` handle and its `Sink`s) and `options` (the ini options and the marker);
this module holds the hooks and the fixtures, and names every public class users import.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from emulator.clock import iso
from emulator.errors import ConfigError
from emulator.plugin.handle import PROBE, EmulatorRefused, Scaigrid, SignatureMismatch, Sink
from emulator.plugin.options import (
    INI_OPTIONS,
    MARKER_KEYS,
    VERDICT_MODES,
    ini,
    marker_options,
    refused,
    session_settings,
    tenant_count,
    verdict_mode,
)
from emulator.plugin.servers import INPROCESS_URL, EmulatorServer, InProcessServer, Session

__all__ = [
    "INI_OPTIONS",
    "INPROCESS_URL",
    "MARKER_KEYS",
    "PROBE",
    "VERDICT_MODES",
    "EmulatorRefused",
    "EmulatorServer",
    "InProcessServer",
    "Scaigrid",
    "Session",
    "SignatureMismatch",
    "Sink",
]


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


def _handle(
    request: pytest.FixtureRequest, server: EmulatorServer | InProcessServer
) -> Iterator[Scaigrid]:
    options = marker_options(request)
    ini_tenants = ini(request.config, "scaigrid_tenants") or "1"
    count = tenant_count(
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
        mode = verdict_mode(request, options)
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


Server = TypeVar("Server", EmulatorServer, InProcessServer)


def _built(kind: type[Server], config: pytest.Config, db: Path) -> Server:
    """The session's server, from the ini options; settings it refuses are a usage error."""
    try:
        return kind(session_settings(config, db))
    except ConfigError as exc:
        raise refused(exc) from None


@pytest.fixture(scope="session")
def scaigrid_server(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[EmulatorServer]:
    """One emulator on loopback for the session: frozen clock, seed 0 (or the ini options), a
    database in a temporary folder."""
    db = tmp_path_factory.mktemp("scaigrid") / "emulator.db"
    server = _built(EmulatorServer, pytestconfig, db)
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
    server = _built(InProcessServer, pytestconfig, db)
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
