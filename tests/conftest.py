"""Shared fixtures: an in-process emulator (httpx.ASGITransport) whose core the fixture starts,
on a frozen clock, so tests move time explicitly and never sleep."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import orjson
import pytest
from s3_fixtures import aws_creds, moto_server, no_aws_env  # noqa: F401  (shared fixtures)
from standin_upstream import standin  # noqa: F401  (a shared fixture)

from emulator import control
from emulator.api.app import create_app
from emulator.core import Emulator
from emulator.pytest_plugin import EmulatorServer
from emulator.settings import Settings

# Property tests draw the same cases on every run (a failure reproduces as it is), keep no example
# database in the tree, and have no deadline: the machine running them may be busy.
hypothesis.settings.register_profile("emulator", derandomize=True, database=None, deadline=None)
hypothesis.settings.load_profile("emulator")

START = datetime(2026, 1, 1, tzinfo=UTC)
KEY = "sgk_test_" + "a" * 32
OTHER_KEY = "sgk_test_" + "b" * 32

CHAT = "/v1/inference/chat"
EMBED = "/v1/inference/embed"


REQUEST_ID = re.compile(r"req_[0-9a-f]{20}")

#: where the browser tests saved their screenshots this session (printed at the end)
SCREENSHOTS = pytest.StashKey[Path]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if SCREENSHOTS in config.stash:
        terminalreporter.write_line(f"dashboard screenshots: {config.stash[SCREENSHOTS]}")


def error_envelope(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The whole error envelope, after checking it is exactly ScaiGrid's shape for `code`."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body: dict[str, Any] = resp.json()
    assert set(body) == {"status", "error", "meta"}
    assert body["status"] == "error"
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert REQUEST_ID.fullmatch(body["meta"]["request_id"])
    assert body["meta"]["request_id"] == resp.headers["x-request-id"]
    return body


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The `error` object of a checked error envelope."""
    error: dict[str, Any] = error_envelope(resp, status, code)["error"]
    return error


def key(name: str) -> str:
    """A well-formed API key for a named tenant (open mode: one key, one tenant)."""
    return f"sgk_{name}_" + "k" * 32


def chat_line(custom_id: str, content: str = "Summarize: ...", **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": CHAT,
        "body": {
            "model": "scailabs/poolnoodle-omni",
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 100,
            **body,
        },
    }


def embed_line(custom_id: str, texts: list[str] | None = None) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": EMBED,
        "body": {
            "model": "openai/text-embedding-3-small",
            "input": texts or ["First text", "Second text"],
        },
    }


def jsonl(lines: list[Any]) -> bytes:
    return b"".join((x if isinstance(x, bytes) else orjson.dumps(x)) + b"\n" for x in lines)


def b64(lines: list[Any]) -> str:
    return base64.b64encode(jsonl(lines)).decode()


class Harness:
    """An emulator core plus a client for it, with the few verbs tests repeat."""

    def __init__(self, core: Emulator, app: Any, api_key: str = KEY) -> None:
        self.core = core
        self.app = app
        self.api_key = api_key
        self.client = self.client_for(api_key)
        # webhook deliveries reach this same in-process app (its sink), whatever host a URL names
        self.outbound = self.client_for(None)
        core.sender.use(self.outbound)

    def client_for(self, api_key: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(self.app),
            base_url="http://emulator.test",
            headers=headers,
        )

    async def settle(self) -> None:
        await control.settle(self.core)

    async def advance(self, seconds: float) -> None:
        self.core.clock.advance(seconds)
        await control.settle(self.core)

    async def submit(
        self, lines: list[Any], client: httpx.AsyncClient | None = None, **body: Any
    ) -> dict[str, Any]:
        resp = await (client or self.client).post(
            "/v1/inference/batch", json={"input_file_base64": b64(lines), **body}
        )
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()["data"]
        return data

    async def batch(self, batch_id: str, client: httpx.AsyncClient | None = None) -> dict[str, Any]:
        resp = await (client or self.client).get(f"/v1/inference/batch/{batch_id}")
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()["data"]
        return data

    async def results(self, batch_id: str) -> list[dict[str, Any]]:
        url = (await self.batch(batch_id))["results_url"]
        assert url, "batch has no results_url yet"
        async with self.client_for(None) as anon:
            resp = await anon.get(url)
        assert resp.status_code == 200, resp.text
        return [orjson.loads(line) for line in resp.content.splitlines()]

    async def close(self) -> None:
        await self.client.aclose()
        await self.outbound.aclose()


async def _start(**overrides: Any) -> Harness:
    settings = Settings(db=":memory:", clock="frozen", clock_start=START, seed=0).replace(
        **overrides
    )
    core = Emulator(settings)
    await core.start()
    return Harness(core, create_app(core=core))


@pytest.fixture
async def emu() -> AsyncIterator[Harness]:
    h = await _start()
    yield h
    await h.close()
    await h.core.stop()


@pytest.fixture
async def make_emu() -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    """A factory for emulators with other settings; everything it builds is stopped at the end."""
    built: list[Harness] = []

    async def make(**overrides: Any) -> Harness:
        h = await _start(**overrides)
        built.append(h)
        return h

    yield make
    for h in built:
        await h.close()
        await h.core.stop()


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[EmulatorServer]:
    """An emulator of its own with an admin token (`t0ken`), served by uvicorn on loopback."""
    settings = Settings(db=str(tmp_path / "e.db"), clock="frozen", admin_token="t0ken")
    server = EmulatorServer(settings)
    server.start()
    yield server
    server.stop()
