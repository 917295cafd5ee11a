"""Hostile connections, over a real socket to uvicorn: a client that sends its body a byte at a
time (or stops sending) holds neither the server nor the batch worker, and many connections at
once are all answered. No sleeps: a stalled client is the slowest client there is, and the test
moves on while it stalls, then sends the rest a byte at a time."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import httpx
import orjson
import pytest
from conftest import CHAT, KEY, b64, chat_line

from emulator.pytest_plugin import EmulatorServer
from emulator.settings import Settings

pytestmark = pytest.mark.slow

BODY = orjson.dumps(
    {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 20}
)
HEADERS = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    srv = EmulatorServer(Settings(db=":memory:", clock="frozen"))
    srv.start()
    yield srv
    srv.stop()


def _stalled(srv: EmulatorServer, sent: int) -> socket.socket:
    """A connection that sent its request's head and the first `sent` bytes of the body."""
    host, port = srv.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = (
        f"POST {CHAT} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    )
    sock.sendall(head.encode() + BODY[:sent])
    return sock


def _finish_a_byte_at_a_time(sock: socket.socket, sent: int) -> bytes:
    """Send the rest of the body one byte per write, then read the whole answer."""
    for i in range(sent, len(BODY)):
        sock.sendall(BODY[i : i + 1])
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    sock.close()
    return answer


def test_a_slow_body_holds_neither_the_server_nor_the_worker(server: EmulatorServer) -> None:
    slow = [_stalled(server, sent) for sent in (0, 1, 10, 40)]
    with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=30) as client:
        # other clients are answered while the slow ones have sent part of their bodies
        for _ in range(20):
            assert client.post(CHAT, content=BODY).status_code == 200
        # and the batch worker runs: a batch submitted now completes on the next clock move
        resp = client.post("/v1/inference/batch", json={"input_file_base64": b64([chat_line("a")])})
        batch_id = resp.json()["data"]["id"]
        client.post("/_emulator/clock/advance", json={"seconds": 1})
        status = client.get(f"/v1/inference/batch/{batch_id}").json()["data"]["status"]
        assert status == "completed"
    # the slow clients, once they have sent everything a byte at a time, get their answers too
    for sock, sent in zip(slow, (0, 1, 10, 40), strict=True):
        answer = _finish_a_byte_at_a_time(sock, sent)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        assert b'"status":"ok"' in answer


def test_many_connections_at_once_are_all_answered(server: EmulatorServer) -> None:
    """300 requests in flight at once on 300 connections, beside 200 connections that connect
    and send nothing: every request answered, and the server answers after."""
    host, port = server.base_url.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port)), timeout=30) for _ in range(200)]

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=300, max_keepalive_connections=0)
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=HEADERS, limits=limits, timeout=60
        ) as client:
            answers = await asyncio.gather(
                *[client.post(CHAT, content=BODY) for _ in range(300)], return_exceptions=True
            )
        return [a.status_code if isinstance(a, httpx.Response) else -1 for a in answers]

    try:
        codes = asyncio.run(burst())
    finally:
        for sock in idle:
            sock.close()
    assert codes == [200] * 300
    assert httpx.get(server.base_url + "/health", timeout=30).status_code == 200
