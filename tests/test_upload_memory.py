"""Uploads stream: a large file goes into the store chunk by chunk and is never held in memory.

Python's own allocations are traced while a file many times the allowed peak passes through, both
straight into the files store and as a multipart upload over the ASGI app.
"""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import AsyncIterator

import pytest
from conftest import Harness

MIB = 1 << 20
SIZE = 64 * MIB  # twice the allowed peak: held in memory, it could not pass
PEAK = 32 * MIB  # the store buffers up to 8 MiB of chunks per write; the rest is overhead
LINE = b'{"custom_id": "x", "method": "POST", "url": "/v1/inference/chat", "body": {}}\n'
BLOCK = LINE * (MIB // len(LINE))


async def blocks(total: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield BLOCK
        sent += len(BLOCK)


def expected(total: int) -> tuple[int, str, int]:
    count = -(-total // len(BLOCK))
    digest = hashlib.sha256()
    for _ in range(count):
        digest.update(BLOCK)
    return count * len(BLOCK), digest.hexdigest(), count * (len(BLOCK) // len(LINE))


@pytest.mark.slow
async def test_a_large_file_goes_into_the_store_without_being_held(emu: Harness) -> None:
    size, sha, lines = expected(SIZE)
    tracemalloc.start()
    try:
        record = await emu.core.files.create_file(
            "tenant_x", "big.jsonl", "batch", blocks(SIZE), max_bytes=SIZE * 2
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (record.bytes, record.sha256, record.line_count) == (size, sha, lines)
    assert peak < PEAK, f"peak {peak / MIB:.1f} MiB for a {size / MIB:.0f} MiB file"


async def multipart(total: int, boundary: bytes) -> AsyncIterator[bytes]:
    yield (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="big.jsonl"\r\n'
        b"Content-Type: application/jsonl\r\n\r\n"
    )
    async for block in blocks(total):
        yield block
    yield b"\r\n--" + boundary + b"--\r\n"


@pytest.mark.slow
async def test_a_large_multipart_upload_streams_through_the_api(emu: Harness) -> None:
    size, sha, _ = expected(SIZE)
    boundary = b"emulator-test-boundary"
    tracemalloc.start()
    try:
        resp = await emu.client.post(
            "/v1/files",
            content=multipart(SIZE, boundary),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"},
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert resp.status_code == 200, resp.text
    assert (resp.json()["data"]["bytes"], resp.json()["data"]["sha256"]) == (size, sha)
    assert peak < PEAK, f"peak {peak / MIB:.1f} MiB for a {size / MIB:.0f} MiB upload"
