"""Files: the one store behind `/v1/files` and `scaigrid://file/{id}` inputs.

Content is streamed into SQLite in 1 MiB chunks as it arrives, hashed and line-counted on the way,
so an upload of any size is never held in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
from collections.abc import AsyncIterator
from typing import NamedTuple

from emulator.clock import Clock
from emulator.errors import FileNotFound, QuotaExceeded
from emulator.ids import Ids
from emulator.records import FileRecord
from emulator.settings import Settings
from emulator.store import Store

CHUNK_BYTES = 1 << 20
CHUNKS_PER_WRITE = 8
PURPOSES = ("batch", "batch_output", "user_data", "assistants", "fine-tune", "vision", "evals")


class LineCounter:
    """Counts lines that hold something other than white space, across chunk boundaries."""

    def __init__(self) -> None:
        self.count = 0
        self._open = False  # the current (unterminated) line has content

    def feed(self, chunk: bytes) -> None:
        lines = chunk.split(b"\n")
        for i, line in enumerate(lines):
            if line.strip():
                self._open = True
            if i < len(lines) - 1:  # a newline ends the current line
                self.count += self._open
                self._open = False

    def total(self) -> int:
        return self.count + self._open


class Content(NamedTuple):
    """A file's bytes in the store, before (or without) a file record."""

    seq: int
    size: int
    lines: int
    sha256: str


class Files:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        ids: Ids | None = None,
        max_input_bytes: int = Settings.max_input_bytes,
    ) -> None:
        self.store, self.clock = store, clock
        self.ids = ids or Ids(0, store)
        self.max_input_bytes = max_input_bytes
        self._seq = itertools.count(1)

    async def start(self) -> None:
        # An upload cut off by a crash left chunks under the next sequence number: without this
        # the first upload after the restart would collide with them.
        await self.store.delete_orphan_chunks()
        self._seq = itertools.count(await self.store.max_seq("files") + 1)

    def reset_sequence(self) -> None:
        self._seq = itertools.count(1)

    async def create_file(
        self,
        tenant_id: str,
        filename: str,
        purpose: str,
        chunks: AsyncIterator[bytes],
        max_bytes: int | None = None,
    ) -> FileRecord:
        """Stream `chunks` into a new file; past `max_bytes`: `QUOTA_EXCEEDED`, nothing stored."""
        content = await self.store_content(chunks, max_bytes)
        return await self.add_file(tenant_id, filename, purpose, content)

    async def store_content(
        self, chunks: AsyncIterator[bytes], max_bytes: int | None = None
    ) -> Content:
        """Stream `chunks` into the store, hashed and line-counted on the way; the content
        belongs to no file until `add_file` (a restart drops it, as `discard` does now)."""
        limit = self.max_input_bytes if max_bytes is None else max_bytes
        seq = next(self._seq)
        digest, lines, size = hashlib.sha256(), LineCounter(), 0
        pending: list[bytes] = []  # less than CHUNK_BYTES not yet stored, in order
        held, batch, n = 0, [], 0
        # One write in flight while the next chunks are read: the database works in its own
        # thread, so reading (and hashing) the body and writing it to the store overlap instead
        # of taking turns. At most two writes' worth of chunks are held.
        writing: asyncio.Task[None] | None = None
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise QuotaExceeded(f"Input file is over the {limit}-byte limit.")
                digest.update(chunk)
                lines.feed(chunk)
                pending.append(chunk)
                held += len(chunk)
                if held >= CHUNK_BYTES:  # cut whole chunks: one join, one slice each
                    joined = b"".join(pending)
                    whole = len(joined) - len(joined) % CHUNK_BYTES
                    for at in range(0, whole, CHUNK_BYTES):
                        batch.append((n, joined[at : at + CHUNK_BYTES]))
                        n += 1
                    pending = [joined[whole:]] if whole < len(joined) else []
                    held = len(joined) - whole
                if len(batch) >= CHUNKS_PER_WRITE:
                    if writing is not None:
                        await writing
                    writing = asyncio.create_task(self.store.insert_file_chunks(seq, batch))
                    batch = []
            if pending:
                batch.append((n, b"".join(pending)))
            if writing is not None:
                await writing
            if batch:
                await self.store.insert_file_chunks(seq, batch)
        except BaseException:
            if writing is not None:  # let it end before its chunks are deleted
                with contextlib.suppress(BaseException):
                    await asyncio.shield(writing)
            await self.store.delete_file_chunks(seq)
            raise
        return Content(seq, size, lines.total(), digest.hexdigest())

    async def discard(self, content: Content) -> None:
        """Content stored for a file that will not be made."""
        await self.store.delete_file_chunks(content.seq)

    async def add_file(
        self, tenant_id: str, filename: str, purpose: str, content: Content
    ) -> FileRecord:
        record = await self.new_record(tenant_id, filename, purpose, content)
        await self.store.insert_file(record)
        return record

    async def new_record(
        self, tenant_id: str, filename: str, purpose: str, content: Content
    ) -> FileRecord:
        """The record of a file of `content`, with its id, not stored yet (a submit stores its
        input's with the batch)."""
        return FileRecord(
            seq=content.seq,
            id=await self.ids.mint("file-", "file", tenant_id),
            tenant_id=tenant_id,
            filename=filename,
            purpose=purpose,
            bytes=content.size,
            line_count=content.lines,
            sha256=content.sha256,
            created_at=self.clock.now(),
        )

    async def get_file(self, tenant_id: str, file_id: str) -> FileRecord:
        found = await self.store.get_file(tenant_id, file_id)
        if found is None:
            raise FileNotFound(f"File '{file_id}' not found.")
        return found

    async def list_files(
        self, tenant_id: str, limit: int, before_seq: int | None, purpose: str | None = None
    ) -> tuple[list[FileRecord], bool]:
        rows = await self.store.list_files(tenant_id, limit + 1, before_seq, purpose)
        return rows[:limit], len(rows) > limit

    async def delete_file(self, tenant_id: str, file_id: str) -> FileRecord:
        found = await self.get_file(tenant_id, file_id)
        await self.store.delete_file(found)
        return found

    def content(self, f: FileRecord) -> AsyncIterator[bytes]:
        return self.store.iter_file_chunks(f.seq)
