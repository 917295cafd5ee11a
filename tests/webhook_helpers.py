"""Shared by the webhook tests: registering, reading sinks, an independent signature check, and
a real HTTP receiver on a loopback socket."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
from conftest import Harness

SECRET = "whsec_" + "0123456789abcdef" * 2
#: deliveries of the in-process harness reach its own app, whatever the host
SINK = "http://emulator.test/_emulator/sink/"


def expected_signature(secret: str, body: bytes) -> str:
    """Written here from ScaiGrid's documentation, not taken from the emulator's code."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def register(h: Harness, url: str, **body: Any) -> dict[str, Any]:
    resp = await h.client.post("/v1/webhooks", json={"url": url, "secret": SECRET, **body})
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()["data"]
    return data


async def sink_items(h: Harness, name: str) -> list[dict[str, Any]]:
    resp = await h.client.get(f"/_emulator/sink/{name}")
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["data"]["items"]
    return items


def events_of(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [orjson.loads(item["body"]) for item in items]


async def deliveries(h: Harness, webhook_id: str, **params: Any) -> list[dict[str, Any]]:
    resp = await h.client.get(f"/v1/webhooks/{webhook_id}/deliveries", params=params)
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["data"]["items"]
    return items


class Received:
    """What a real receiver got: (headers, raw body) per post, in arrival order."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        self.arrived = threading.Event()

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [orjson.loads(body) for _, body in self.posts]


Answer = Callable[[int, dict[str, str], bytes], int]


def verifying(secret: str = SECRET) -> Answer:
    """200 to a post whose signature checks out, 401 otherwise (as a careful receiver does)."""

    def answer(n: int, headers: dict[str, str], body: bytes) -> int:
        given = headers.get("X-ScaiGrid-Signature", "")
        return 200 if hmac.compare_digest(given, expected_signature(secret, body)) else 401

    return answer


def failing_first(count: int, status: int = 500) -> Answer:
    return lambda n, headers, body: status if n <= count else 200


@contextmanager
def receiver(answer: Answer) -> Iterator[tuple[str, Received]]:
    """A real HTTP server on 127.0.0.1; `answer(n, headers, body)` is the status of the n-th
    post (1-based)."""
    got = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = dict(self.headers)
            with got.lock:
                got.posts.append((headers, body))
                n = len(got.posts)
            got.arrived.set()
            self.send_response(answer(n, headers, body))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@asynccontextmanager
async def over_sockets(h: Harness) -> AsyncIterator[None]:
    """Deliveries leave through a real client (the harness's own goes to its ASGI app)."""
    async with httpx.AsyncClient(trust_env=False) as real:
        h.core.sender.use(real)
        yield


def verified(got: Received) -> list[bool]:
    with got.lock:
        return [
            h.get("X-ScaiGrid-Signature") == expected_signature(SECRET, body)
            for h, body in got.posts
        ]
