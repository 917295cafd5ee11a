"""The journal's byte budget bounds the memory its held exchanges really take, as tracemalloc
sees it, and its summaries are bounded by their count.

Each exchange is built the way a server hands one over: fresh bytes objects for every header name
and value and the request body, and a response body made by orjson (whose buffer is far larger
than the body: the journal keeps an exact-size copy). The memory held is the difference between a
journal fed the exchanges and one fed the same requests without them (summaries only).

tracemalloc counts what was asked of the allocator; the charge also covers the allocator's
rounding (`OBJECT_COST`), and charges the objects an exchange shares with others (the constant
names of response headers) as its own, so the memory traced sits under the charge: 75% of it for
a status poll, whose headers are most of what it holds, 90% and more for the others.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from conftest import Harness, chat_line

from emulator.journal import BODY_CAP, Exchange, Journal, weight

KIB = 1024
BUDGET = 4 * 1024 * KIB
#: how far the memory traced may pass the budget
TOLERANCE = 0.15
#: what one summary may cost at most (the README's figure: about 360 bytes, so 10,000 of them
#: take under 4 MB)
SUMMARY_AT_MOST = 400

Build = Callable[[int], tuple[dict[str, Any], Exchange]]


def fresh(data: bytes) -> bytes:
    """A new bytes object, as a server makes one for each header and body it reads."""
    return bytes(bytearray(data))


def request_headers(extra: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    sent = [
        (b"host", b"127.0.0.1:8080"),
        (b"accept", b"*/*"),
        (b"accept-encoding", b"gzip, deflate"),
        (b"connection", b"keep-alive"),
        (b"user-agent", b"python-httpx/0.28.1"),
        (b"authorization", b"Bearer sgk_" + b"a" * 32),
        *extra,
    ]
    return [(fresh(name), fresh(value)) for name, value in sent]


def answer(exchange: Exchange, n: int, data: Any) -> None:
    content = orjson.dumps({"status": "ok", "data": data})  # over-allocated, as every answer
    exchange.response_headers = [
        (b"content-length", str(len(content)).encode()),
        (b"content-type", b"application/json"),
        (b"x-request-id", f"req_{n:024x}".encode()),
        (b"date", fresh(b"Fri, 27 Nov 2026 16:00:00 GMT")),
    ]
    exchange.response_body(content)


def status_get(n: int) -> tuple[dict[str, Any], Exchange]:
    """A status poll: no request body, a batch of ~400 bytes back."""
    path = f"/v1/inference/batch/batch_{n:08d}"
    exchange = Exchange(request_headers([]))
    counts = {"total": 5000, "completed": n % 5000, "failed": 0}
    batch = {"id": f"batch_{n:08d}", "status": "processing", "request_counts": counts}
    answer(exchange, n, {**batch, "created_at": "2026-01-01T00:00:00Z", "metadata": {}})
    return {"method": "GET", "path": path, "query_string": b""}, exchange


def chat_post(n: int) -> tuple[dict[str, Any], Exchange]:
    """A live chat: ~1 KB in, ~700 bytes out."""
    body = fresh(orjson.dumps(chat_line("x", f"{n} " + "word " * 180)["body"]))
    extra = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    exchange = Exchange(request_headers(extra))
    exchange.request_body(body)
    message = {"role": "assistant", "content": "text " * 100}
    answer(exchange, n, {"id": f"chatcmpl_{n}", "choices": [{"index": 0, "message": message}]})
    return {"method": "POST", "path": "/v1/inference/chat", "query_string": b""}, exchange


def large_post(n: int) -> tuple[dict[str, Any], Exchange]:
    """An upload past the cap, in 16 KiB chunks, with its answer: the request body is held up
    to `BODY_CAP`."""
    extra = [(b"content-type", b"application/jsonl")]
    exchange = Exchange(request_headers(extra))
    chunk = b"x" * (16 * KIB)
    for _ in range(6):
        exchange.request_body(fresh(chunk))
    answer(exchange, n, {"id": f"file_{n}", "bytes": 96 * KIB})
    return {"method": "POST", "path": "/v1/files", "query_string": b""}, exchange


def realistic(n: int) -> tuple[dict[str, Any], Exchange]:
    """Of every 40 requests, 30 status polls, 9 chats and one large upload."""
    k = n % 40
    return large_post(n) if k == 39 else chat_post(n) if k >= 30 else status_get(n)


@contextmanager
def traced() -> Iterator[list[int]]:
    """The memory allocated (and still held) inside the block, in `out[0]`."""
    out: list[int] = []
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        yield out
        gc.collect()
        out.append(tracemalloc.get_traced_memory()[0] - before)
    finally:
        tracemalloc.stop()


def fill(build: Build, count: int, *, exchanges: bool, **journal: Any) -> tuple[Journal, int]:
    """A journal fed `count` requests (with their exchanges or without), and what it holds."""
    with traced() as held:
        j = Journal(lambda: 1_800_000_000.0, **journal)
        for n in range(count):
            scope, exchange = build(n)
            j.record(scope, 200, "tenant_1", f"req_{n:024x}", exchange if exchanges else None)
            del scope, exchange
    return j, held[0]


def exchanges_memory(build: Build, count: int, **journal: Any) -> tuple[Journal, int]:
    """A journal fed `count` requests, and the memory its held exchanges take (beyond what the
    same journal's summaries take)."""
    full, with_exchanges = fill(build, count, exchanges=True, **journal)
    _, summaries_only = fill(build, count, exchanges=False, **journal)
    return full, with_exchanges - summaries_only


def test_the_budget_bounds_the_memory_the_held_exchanges_take() -> None:
    count = 9000  # ~3 times what the budget holds
    j, held = exchanges_memory(realistic, count, budget=BUDGET)
    kept = sum(e[7] is not None for e in j.select())
    assert len(j) == count and kept < count / 2  # filled well past the budget
    assert BUDGET - 2 * BODY_CAP < j._held_bytes <= BUDGET  # the budget is spent
    assert held <= BUDGET * (1 + TOLERANCE), f"{held / BUDGET:.2f} of the budget"
    # and is not wasted: the charge is close to what the exchanges take
    assert held >= BUDGET * 0.8, f"{held / BUDGET:.2f} of the budget"


@pytest.mark.parametrize(
    ("build", "least"), [(status_get, 0.7), (chat_post, 0.85), (large_post, 0.95)]
)
def test_each_kind_of_exchange_is_charged_what_it_takes(build: Build, least: float) -> None:
    count = 2000
    j, held = exchanges_memory(build, count, budget=1 << 40)
    charged = j._held_bytes
    assert charged == sum(weight(h) for h in j._held.values())
    assert least * charged <= held <= charged, f"{held / charged:.2f} of the charge"


def test_a_response_body_is_held_as_an_exact_size_copy() -> None:
    """Not the answer's own bytes object, whose buffer may be larger than it shows."""
    contents = [orjson.dumps({"status": "ok", "data": {"id": n}}) for n in range(2000)]
    with traced() as held:
        kept = []
        for content in contents:
            exchange = Exchange([])
            exchange.response_body(content)
            kept += exchange.response_chunks
    assert kept == contents and not any(a is b for a, b in zip(kept, contents, strict=True))
    exact = sum(sys.getsizeof(chunk) + 8 for chunk in kept)  # each object and its list slot
    # within a quarter of exact: other threads of the test process may allocate meanwhile
    assert exact <= held[0] < exact * 1.25, f"{held[0] / exact:.2f} of the exact size"


def test_summaries_are_bounded_by_their_count_and_outlive_the_bodies() -> None:
    """The last `capacity` summaries are kept, each with its time, method, path, query, status,
    tenant and request id; the oldest of them have lost their headers and bodies (null), the
    newest keep theirs; and the summaries' memory stops growing once `capacity` are kept."""
    capacity = 2000
    _, at_capacity = fill(status_get, capacity, exchanges=False, capacity=capacity)
    assert at_capacity <= capacity * SUMMARY_AT_MOST, f"{at_capacity / capacity:.0f} B each"
    _, past_it = fill(status_get, 4 * capacity, exchanges=False, capacity=capacity)
    assert past_it <= at_capacity * 1.05
    j, _ = fill(realistic, 3 * capacity, exchanges=True, capacity=capacity, budget=256 * KIB)
    entries = j.entries()
    assert len(entries) == capacity
    assert [e["request_id"] for e in entries] == [
        f"req_{n:024x}" for n in range(2 * capacity, 3 * capacity)
    ]
    held = [e["request"] is not None for e in entries]
    assert held == sorted(held) and held[-1] and not held[0]  # the oldest lost theirs first
    dropped = entries[0]
    assert (dropped["method"], dropped["status"], dropped["tenant_id"]) == ("GET", 200, "tenant_1")
    assert dropped["request"] is None and dropped["response"] is None


async def test_through_the_app_the_held_exchanges_stay_within_the_budget(make_emu: Any) -> None:
    """The same bound for what the app itself journals: status reads and live chats answered
    by the general and the fast path, with their real headers and orjson-made answers."""
    budget = 512 * KIB
    h: Harness = await make_emu(journal_bytes=budget)
    for n in range(600):
        await h.client.get(f"/v1/inference/batch/batch_{n:06d}")
        await h.client.post("/v1/inference/chat", json=chat_line("x", f"{n} " + "y" * 900)["body"])
    j = h.core.journal
    assert sum(e[7] is None for e in j.select()) > 0  # past the budget
    with traced() as freed:  # what letting go of the held exchanges gives back
        j._held.clear()
    assert -freed[0] <= budget * (1 + TOLERANCE), f"{-freed[0] / budget:.2f} of the budget"
