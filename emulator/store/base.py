"""The store's connections and its one write lock, which every concept's rows go through.

One aiosqlite connection in WAL mode. Write transactions are serialised by one lock so that two
coroutines never interleave inside a transaction, and every multi-row write is one `executemany`:
a thread hop per row would cost ~100 µs each (50,000 rows = 5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiosqlite

# aiosqlite logs every statement with its parameters at DEBUG: that would put webhook secrets
# (and every request body) in the log of a `--log-level debug` run.
logging.getLogger("aiosqlite").setLevel(logging.INFO)


class StoreClosed(RuntimeError):
    """The store was used after `close()`."""


class StoreBase:
    """What every concept's rows are read and written through: the connections, the write lock
    and the claim on the database file (`Store.open` and `Store.claim` set them up)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        # Reads of a file database go through a second connection: in WAL mode it sees only
        # committed rows, so a read neither waits for the writer nor sees what a crash can
        # still lose. It is a plain sqlite3 connection used on the event loop's own thread:
        # a read is tens of microseconds, while a hop to a connection thread waits for the GIL
        # behind whatever the loop is doing (milliseconds per read under load). Pages of large
        # reads are kept small for the same reason. An in-memory database has one connection,
        # and reads take the write lock.
        self._reader: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()  # made again in open(), inside the loop that uses it
        self._claim: int | None = None  # the lock file's descriptor while this process serves
        # commits so far: a change mark (`GET /_emulator/changes`) that costs nothing to read
        self.writes = 0

    async def close(self) -> None:
        """Release the connections (and the claim); calling it twice is harmless."""
        if self._claim is not None:
            fd, self._claim = self._claim, None
            os.close(fd)
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreClosed("the store is closed")
        return self._db

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            db = self.db
            try:
                yield db
            except BaseException:
                await db.rollback()
                raise
            await db.commit()
            self.writes += 1

    async def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        self.db  # noqa: B018 - raises StoreClosed before open() and after close()
        if self._reader is not None:
            return self._reader.execute(sql, args).fetchall()
        # The one connection of an in-memory database: a read between a write's statements and
        # its commit would see rows that are not committed yet, so it waits for the commit.
        async with self._lock:
            return list(await self.db.execute_fetchall(sql, args))
