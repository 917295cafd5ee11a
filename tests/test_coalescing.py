"""The server's coalescing transport: an answer's head and body leave in one write.

`emulator.api.transport.Coalescing` sits between uvicorn and the connection. These tests drive
it with a recording transport (what it asks of the connection, call by call), and once over a
real socket, counting the system calls that carry an answer.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import httpx
import pytest

from emulator.api.transport import Coalescing


class Recording(asyncio.Transport):
    """A connection that records what it is asked to do."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any]] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.calls.append(("write", bytes(data)))

    def writelines(self, list_of_data: Any) -> None:
        self.calls.append(("writelines", [bytes(d) for d in list_of_data]))

    def close(self) -> None:
        self.closing = True
        self.calls.append(("close", None))

    def abort(self) -> None:
        self.closing = True
        self.calls.append(("abort", None))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


async def turn() -> None:
    """Let the loop run what was scheduled with call_soon."""
    await asyncio.sleep(0)


async def test_a_head_and_a_body_go_out_in_one_call() -> None:
    wire = Recording()
    coalescing = Coalescing(wire, asyncio.get_running_loop())
    coalescing.write(b"HTTP/1.1 200 OK\r\n\r\n")
    coalescing.write(b'{"status":"ok"}')
    await turn()
    assert wire.calls == [("writelines", [b"HTTP/1.1 200 OK\r\n\r\n", b'{"status":"ok"}'])]


async def test_a_head_with_no_body_yet_goes_out_on_the_next_turn() -> None:
    wire = Recording()
    coalescing = Coalescing(wire, asyncio.get_running_loop())
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"
    coalescing.write(head)
    assert wire.calls == []
    assert coalescing.get_write_buffer_size() == 7 + len(head)
    await turn()
    assert wire.calls == [("write", head)]
    coalescing.write(b"data: 1\n\n")  # held again, alone: the head has gone
    await turn()
    assert wire.calls[-1] == ("write", b"data: 1\n\n")


async def test_a_large_write_is_not_held() -> None:
    wire = Recording()
    coalescing = Coalescing(wire, asyncio.get_running_loop())
    big = b"x" * (Coalescing.HOLD + 1)
    coalescing.write(big)
    assert wire.calls == [("write", big)]


async def test_closing_sends_what_is_held_first_and_aborting_drops_it() -> None:
    loop = asyncio.get_running_loop()
    wire = Recording()
    coalescing = Coalescing(wire, loop)
    coalescing.write(b"head")
    coalescing.close()
    assert wire.calls == [("write", b"head"), ("close", None)]
    await turn()  # the scheduled flush finds nothing held
    assert len(wire.calls) == 2

    wire = Recording()
    coalescing = Coalescing(wire, loop)
    coalescing.write(b"head")
    coalescing.abort()
    await turn()
    assert wire.calls == [("abort", None)]


async def test_nothing_is_held_or_written_once_the_connection_is_closing() -> None:
    wire = Recording()
    coalescing = Coalescing(wire, asyncio.get_running_loop())
    coalescing.write(b"head")
    wire.closing = True  # the client went away before the loop's next turn
    await turn()
    assert wire.calls == []
    coalescing.write(b"late")
    assert wire.calls == [("write", b"late")]  # the connection's own rules apply (it drops it)


async def test_the_rest_is_the_connections_own() -> None:
    wire = Recording()
    coalescing = Coalescing(wire, asyncio.get_running_loop())
    assert coalescing.get_extra_info("peername") == ("127.0.0.1", 1)
    assert coalescing.get_extra_info("socket", "none") == "none"
    assert not coalescing.is_closing()


#: where `tcpi_segs_in` sits in Linux's `struct tcp_info` (after 8 bytes of flags, 24 u32s and
#: 4 u64s); a stable kernel ABI since Linux 4.2
_SEGS_IN = struct.Struct("=I")
_SEGS_IN_OFFSET = 8 + 24 * 4 + 4 * 8 + 4


def segments_in(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(_SEGS_IN.unpack_from(info, _SEGS_IN_OFFSET)[0])


@pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="TCP_INFO is Linux's")
@pytest.mark.parametrize("route", ["/v1/models", "/_emulator/health"])
def test_over_a_socket_each_answer_is_one_segment(scaigrid: Any, route: str) -> None:
    """A real `serve` socket: the client's kernel counts the TCP segments that arrive. With
    the head and the body written apart, each answer is two segments."""
    url = httpx.URL(scaigrid.base_url)
    request = (
        f"GET {route} HTTP/1.1\r\nhost: {url.host}\r\n"
        f"authorization: Bearer {scaigrid.api_key}\r\n\r\n"
    ).encode()
    answers = 20
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        before = segments_in(sock)
        for _ in range(answers):
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(1 << 20)
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            while len(body) < length:
                body += sock.recv(1 << 20)
        arrived = segments_in(sock) - before
    # one segment per answer, and now and then a bare ACK; two writes would give 40 or more
    assert answers <= arrived < answers * 1.5, arrived
