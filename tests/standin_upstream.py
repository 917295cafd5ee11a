"""A minimal OpenAI-compatible upstream on loopback that misbehaves on request.

A bare HTTP/1.1 server on asyncio streams (one request per connection, `Connection: close`), so
it can do what a framework would not let it: hang, answer garbage, or drop the connection with
no answer at all. What the last message (or the prompt, or the first input) says decides:

* `fail:500`, `fail:429` (with `Retry-After: 7`): that status with an OpenAI error body;
* `fail:slow`: no answer until the stand-in is closed (the caller's timeout fires);
* `fail:drop`: the connection is closed after the request is read, with no answer;
* `fail:garbage`: a 200 whose body is not JSON; `fail:shape`: a 200 JSON of the wrong shape;
* `nousage`: a good answer without `usage`;
* anything else: a good answer, `echo: <text>` with usage 11 prompt and 5 completion tokens.

It counts calls and keeps what it was sent, and `hold()` parks every request until `release()`,
counting how many are parked at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class StandIn:
    url: str = ""  # set by `start`
    seen: list[Seen] = field(default_factory=list)
    parked: int = 0
    most_parked: int = 0
    _server: asyncio.Server | None = None
    _hold: asyncio.Event | None = None
    _closed: asyncio.Event = field(default_factory=asyncio.Event)
    _change: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self.url

    async def close(self) -> None:
        self._closed.set()
        self.release()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def calls(self) -> int:
        return len(self.seen)

    def hold(self) -> None:
        self._hold = asyncio.Event()

    def release(self) -> None:
        if self._hold is not None:
            self._hold.set()
            self._hold = None

    async def until_parked(self, n: int) -> None:
        async with self._change:
            await self._change.wait_for(lambda: self.parked >= n)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode().split("\r\n")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines if line)
            }
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
            body = orjson.loads(raw)
            path = request_line.split()[1]
            self.seen.append(Seen(path, headers, body))
            if self._hold is not None:
                await self._park(self._hold)
            answer = await self._answer(path, body)
            if answer is not None:
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _park(self, hold: asyncio.Event) -> None:
        async with self._change:
            self.parked += 1
            self.most_parked = max(self.most_parked, self.parked)
            self._change.notify_all()
        await hold.wait()
        async with self._change:
            self.parked -= 1

    async def _answer(self, path: str, body: dict[str, Any]) -> bytes | None:
        text = _text(body)
        if "fail:slow" in text:
            await self._closed.wait()
            return None
        if "fail:drop" in text:
            return None
        if "fail:500" in text:
            return _http(500, {"error": {"message": "the model is overloaded"}})
        if "fail:429" in text:
            return _http(429, {"error": {"message": "slow down"}}, b"Retry-After: 7\r\n")
        if "fail:garbage" in text:
            return _http(200, b"<html>gateway</html>")
        if "fail:shape" in text:
            return _http(200, {"result": "no choices here"})
        answer = _good(path, body, text)
        if "nousage" in text:
            answer.pop("usage")
        return _http(200, answer)


def _text(body: dict[str, Any]) -> str:
    if "messages" in body:
        return str(body["messages"][-1].get("content"))
    value = body.get("prompt", body.get("input", ""))
    return str(value[0] if isinstance(value, list) else value)


def _good(path: str, body: dict[str, Any], text: str) -> dict[str, Any]:
    usage = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
    if path.endswith("/embeddings"):
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [0.5, -0.25]}
            for i, _ in enumerate(inputs)
        ]
        return {"object": "list", "data": data, "model": body["model"], "usage": usage}
    base = {"id": "upstream-id", "created": 1, "model": body["model"], "system_fingerprint": "x"}
    if path.endswith("/completions") and "messages" not in body:
        choice = {"index": 0, "text": f"echo: {text}", "finish_reason": "stop", "logprobs": None}
        return {**base, "object": "text_completion", "choices": [choice], "usage": usage}
    message = {"role": "assistant", "content": f"echo: {text}", "refusal": None}
    choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
    return {**base, "object": "chat.completion", "choices": [choice], "usage": usage}


def _http(status: int, body: Any, extra: bytes = b"") -> bytes:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(content)}\r\nConnection: close\r\n"
    ).encode()
    return head + extra + b"\r\n" + content


@pytest.fixture
async def standin() -> AsyncIterator[StandIn]:
    """A stand-in upstream on loopback, closed after the test."""
    server = StandIn()
    await server.start()
    yield server
    await server.close()
