"""Transport faults over HTTP: what each fault on the wire a scenario names (the table in
`emulator.scenario.transport_faults`) does to the answer of a call, and the server protocol that
lets the app reach the socket.

The gate (`emulator.api.gate`) hands a faulted call here with whatever would answer it (the
route, or an injected error). A fault that drops the connection needs the socket: uvicorn serves
the app through `protocol`, which puts the connection's asyncio transport in the scope's
`extensions`. A reset aborts it with SO_LINGER 0, so the kernel sends a real RST; a truncation
or a cut stream closes it once the bytes sent are flushed, so the client reads a short answer
and then the end of the stream. In process (`httpx.ASGITransport`) there is no socket: the app
raises `ConnectionDropped` (a `ConnectionResetError`) where the connection would drop, and the
client gets that exception from its call (the `scaigrid_inprocess` fixture's transport turns it
into the httpx error a socket would give). A hang, a dribble and a malformed body need no socket
and behave the same in both.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.api.http import ConnectionDropped, receive_body, replayed
from emulator.scenario.model import Transport

#: the scope extension that holds the connection's asyncio transport (absent in process)
EXTENSION = "scaigrid_emulator.transport"
#: how long a dropped connection may take to be seen closed before the app moves on
_CLOSE_WAIT = 5.0


class _Cut(Exception):
    """Raised from a fault's `send` to stop the answer where the fault cuts it."""


Act = Callable[[Transport, ASGIApp, Scope, Receive, Send], Awaitable[None]]


async def act(
    fault: Transport, answer: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """Answer the call through `fault`: `answer` is what would answer it unharmed."""
    await ACTS[fault.fault](fault, answer, scope, receive, send)


async def _reset(
    fault: Transport, answer: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """No answer: the request is read whole (so the client fails reading, not writing) and
    dropped as it comes (an upload is not held), the call is not run, and the connection is
    reset."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if not message.get("more_body", False):
            break
    await _drop(scope, receive, reset=True)


async def _hang(
    fault: Transport, answer: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """The request is read (and held), then real time passes before the call is run, frozen
    clock or not: a client's timeout is real. `transport_faults.MAX_WAIT` bounds it. The call
    is run after it even if the client has given up (its request was read before it left), as
    a slow server's would be: a POST retried on a timeout may be made twice."""
    try:
        body = await receive_body(receive)
    except ClientDisconnect:
        return
    await asyncio.sleep(fault.params["for"])
    await answer(scope, replayed(body, receive), send)


async def _truncate(
    fault: Transport, answer: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """The head and `bytes` bytes of the body (default: half the declared `Content-Length`,
    or of the first part of a body of no declared length), then the connection closes. An
    answer no longer than that is sent whole."""
    limit: int | None = fault.params["bytes"]
    sent = 0

    async def cutting(message: Message) -> None:
        nonlocal limit, sent
        if message["type"] == "http.response.start":
            length = _header(message, b"content-length")
            if limit is None and length is not None:
                limit = int(length) // 2
            await send(message)
            return
        body = message.get("body", b"")
        if limit is None:
            limit = len(body) // 2
        room = limit - sent
        if len(body) < room or (len(body) == room and not message.get("more_body", False)):
            sent += len(body)
            await send(message)
            return
        await send({"type": "http.response.body", "body": body[:room], "more_body": True})
        raise _Cut

    await _cut_with(answer, scope, receive, cutting)


async def _dribble(
    fault: Transport, answer: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """The whole answer, its body sent `bytes` at a time with a pause of `every` real
    seconds between two sends. A client that gives up (a read timeout) ends it: the rest
    would go nowhere."""
    size, pause = fault.params["bytes"], fault.params["every"]
    wire: asyncio.Transport | None = scope.get("extensions", {}).get(EXTENSION)
    first = True

    async def dribbling(message: Message) -> None:
        nonlocal first
        if message["type"] != "http.response.body":
            await send(message)
            return
        body = message.get("body", b"")
        for at in range(0, len(body), size):
            if not first:
                await asyncio.sleep(pause)
                if wire is not None and wire.is_closing():
                    raise _Cut
            first = False
            await send(
                {"type": "http.response.body", "body": body[at : at + size], "more_body": True}
            )
        if not message.get("more_body", False):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    try:
        await answer(scope, receive, dribbling)
    except _Cut:
        pass  # the client has gone: nothing to close, nothing to raise


async def _cut_stream(
    fault: Transport, answer: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """An event stream (`text/event-stream`) closed after `events` events, so the client
    never reads the terminating one; an answer that is no event stream is sent whole."""
    left: int = fault.params["events"]
    streaming = False
    carry = b""  # a last part's closing newline: an event's blank line may straddle two parts

    async def cutting(message: Message) -> None:
        nonlocal left, streaming, carry
        if message["type"] == "http.response.start":
            streaming = (_header(message, b"content-type") or b"").startswith(b"text/event-stream")
            await send(message)
            return
        if not streaming:
            await send(message)
            return
        body = message.get("body", b"")
        data, at = carry + body, 0
        while left > 0 and (found := data.find(b"\n\n", at)) >= 0:
            at, left = found + 2, left - 1
        if left > 0:
            carry = b"\n" if len(data) > at and data.endswith(b"\n") else b""
            await send(message)
            return
        if at > len(carry):  # the part's events up to the last one the client is to read
            await send(
                {"type": "http.response.body", "body": body[: at - len(carry)], "more_body": True}
            )
        raise _Cut

    await _cut_with(answer, scope, receive, cutting)


async def _malformed(
    fault: Transport, answer: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """A 200 `application/json` whose body is not JSON: the answer's first half, cut inside a
    value, with its length declared (the HTTP is well formed; the JSON is not)."""
    start: Message = {}
    parts: list[bytes] = []

    async def holding(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    await answer(scope, receive, holding)
    body = spoilt(b"".join(parts))
    dropped = (b"content-length", b"content-type", b"transfer-encoding")
    headers = [(k, v) for k, v in start.get("headers", ()) if k.lower() not in dropped]
    headers += [
        (b"content-length", str(len(body)).encode()),
        (b"content-type", b"application/json"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def spoilt(body: bytes) -> bytes:
    """`body`'s first half, never valid JSON: a prefix of a JSON object is not JSON unless it
    ends with a whole value, and then its closing bracket goes."""
    cut = body[: len(body) // 2].rstrip()
    return (cut[:-1] if cut.endswith((b"}", b"]")) else cut) or b"{"


#: what each transport fault does: the same names as the schema's table (a test holds them equal)
ACTS: dict[str, Act] = {
    "reset": _reset,
    "hang": _hang,
    "truncate": _truncate,
    "dribble": _dribble,
    "cut_stream": _cut_stream,
    "malformed": _malformed,
}


async def _cut_with(answer: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run the answer through a `send` that raises `_Cut` where the fault cuts it; then drop
    the connection. An answer the fault never cut has gone out whole."""
    try:
        await answer(scope, receive, send)
    except _Cut:
        await _drop(scope, receive, reset=False)


async def _drop(scope: Scope, receive: Receive, *, reset: bool) -> None:
    """Drop the connection: reset (RST) or closed (FIN after the bytes sent), then raise
    `ConnectionDropped` for the request context, once the server has seen it closed (so it
    neither answers nor logs an answer left unfinished)."""
    wire: asyncio.Transport | None = scope.get("extensions", {}).get(EXTENSION)
    how = "reset" if reset else "closed"
    if wire is None:
        raise ConnectionDropped(
            f"The connection was {how} (a scenario's transport fault).", reset=reset
        )
    if reset:
        sock = wire.get_extra_info("socket")
        if sock is not None:  # linger 0: close() sends RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        wire.abort()
    else:
        wire.close()
    try:
        async with asyncio.timeout(_CLOSE_WAIT):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        pass
    raise ConnectionDropped(f"The connection was {how}.", reset=reset, on_socket=True)


def _header(message: Message, name: bytes) -> bytes | None:
    for key, value in message.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def protocol(**options: Any) -> asyncio.Protocol:
    """uvicorn's HTTP protocol (`Config(http=protocol)`: uvicorn calls it with its options), whose
    app finds the connection's transport in the scope's `extensions` under `EXTENSION`, and
    whose answers go out through `Coalescing` (one write per small answer, not two)."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    server: Any = AutoHTTPProtocol(**options)
    app = server.app
    made = server.connection_made

    def connection_made(transport: asyncio.Transport) -> None:
        made(Coalescing(transport, asyncio.get_running_loop()))

    async def with_transport(scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("extensions", {})[EXTENSION] = server.transport
        await app(scope, receive, send)

    server.app = with_transport
    server.connection_made = connection_made
    result: asyncio.Protocol = server
    return result


class Coalescing(asyncio.Transport):
    """A connection's transport that sends an answer's head and body in one write.

    uvicorn writes a response's head when the app sends `http.response.start` and its body when
    the app sends the body: two writes, two TCP segments and, on loopback, two wake-ups of the
    client for every answer, which cost the server more than the rest of a small answer's
    sending. A small write (the head) is held instead, and goes out with the next write in one
    system call (`writelines`: no copy of the body), or on the loop's next turn if no write
    follows at once (a streamed answer's head, before its first event). Closing sends what is
    held first; aborting drops it, as a reset drops whatever was unsent.
    """

    __slots__ = ("_wire", "_loop", "_held")

    #: writes up to this size are held for the next one (an answer's head is a few hundred bytes)
    HOLD = 16 * 1024

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._wire = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._wire.writelines((held, data))
        elif len(data) <= self.HOLD and not self._wire.is_closing():
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._wire.write(data)

    def flush(self) -> None:
        """Send what is held, if the connection is still open."""
        held, self._held = self._held, None
        if held is not None and not self._wire.is_closing():
            self._wire.write(held)

    def close(self) -> None:
        self.flush()
        self._wire.close()

    def abort(self) -> None:
        self._held = None
        self._wire.abort()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def get_write_buffer_size(self) -> int:
        return self._wire.get_write_buffer_size() + len(self._held or b"")

    # the rest is the connection's own

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._wire.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._wire.is_closing()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._wire.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._wire.get_protocol()

    def is_reading(self) -> bool:
        return self._wire.is_reading()

    def pause_reading(self) -> None:
        self._wire.pause_reading()

    def resume_reading(self) -> None:
        self._wire.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._wire.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._wire.get_write_buffer_limits()

    def can_write_eof(self) -> bool:
        return self._wire.can_write_eof()

    def write_eof(self) -> None:
        self.flush()
        self._wire.write_eof()
