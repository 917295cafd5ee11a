"""The store: sole owner of the SQLite database. No SQL lives anywhere else.

One aiosqlite connection in WAL mode. Write transactions are serialised by one lock so that two
coroutines never interleave inside a transaction, and every multi-row write is one `executemany`:
a thread hop per row would cost ~100 µs each (50,000 rows = 5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import aiosqlite
import orjson

from emulator.errors import ConfigError
from emulator.records import BatchRecord, FileRecord, RequestRecord, RequestRow, ResultRecord
from emulator.status import ACTIVE

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, tenant_id TEXT NOT NULL,
    filename TEXT NOT NULL, purpose TEXT NOT NULL, bytes INTEGER NOT NULL,
    line_count INTEGER NOT NULL, sha256 TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_tenant ON files (tenant_id, seq);
CREATE TABLE IF NOT EXISTS file_chunks (
    file_seq INTEGER NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (file_seq, n)
);
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, tenant_id TEXT NOT NULL,
    status TEXT NOT NULL, completion_window TEXT NOT NULL, input_file_id TEXT NOT NULL,
    input_file_url TEXT NOT NULL, metadata TEXT NOT NULL, total_count INTEGER NOT NULL,
    completed_count INTEGER NOT NULL DEFAULT 0, failed_count INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL, started_at REAL, completed_at REAL, cancelled_at REAL,
    failed_at REAL, expires_at REAL NOT NULL, error TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_live TEXT NOT NULL DEFAULT '0', cost_amount TEXT NOT NULL DEFAULT '0',
    scenario TEXT, extra TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS batches_by_tenant ON batches (tenant_id, seq);
CREATE INDEX IF NOT EXISTS batches_by_status ON batches (status);
CREATE TABLE IF NOT EXISTS requests (
    batch_seq INTEGER NOT NULL, idx INTEGER NOT NULL, line INTEGER NOT NULL,
    custom_id TEXT NOT NULL, url TEXT NOT NULL, raw BLOB NOT NULL, PRIMARY KEY (batch_seq, idx)
);
CREATE TABLE IF NOT EXISTS results (
    batch_seq INTEGER NOT NULL, idx INTEGER NOT NULL, custom_id TEXT NOT NULL,
    ok INTEGER NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (batch_seq, idx)
);
"""

_BATCH_COLUMNS = (
    "seq", "id", "tenant_id", "status", "completion_window", "input_file_id", "input_file_url",
    "metadata",
    "total_count", "completed_count", "failed_count", "created_at", "started_at", "completed_at",
    "cancelled_at", "failed_at", "expires_at", "error", "input_tokens", "output_tokens",
    "cost_live", "cost_amount", "scenario", "extra",
)  # fmt: skip
_BATCH_SELECT = "SELECT " + ", ".join(_BATCH_COLUMNS) + " FROM batches"
_COUNTERS = (
    "completed_count", "failed_count", "input_tokens", "output_tokens", "cost_live", "cost_amount",
)  # fmt: skip
_FILE_COLUMNS = "seq, id, tenant_id, filename, purpose, bytes, line_count, sha256, created_at"
_JSON_FIELDS = ("metadata", "error", "extra")
_DECIMAL_FIELDS = ("cost_live", "cost_amount")
_PAGE = 2000
_ACTIVE = tuple(sorted(ACTIVE))
_IN_ACTIVE = f"status IN ({', '.join('?' * len(_ACTIVE))})"


class StoreClosed(RuntimeError):
    """The store was used after `close()`."""


class Store:
    """All persistent state: files, batches, their parsed requests and their results."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        # Reads of a file database go through a second connection: in WAL mode it sees only
        # committed rows, so a read neither waits for the writer nor sees what a crash can
        # still lose. An in-memory database has one connection, and reads take the write lock.
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()  # made again in open(), inside the loop that uses it

    # --- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        self._lock = asyncio.Lock()
        self._db = await aiosqlite.connect(self.path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (kill -9); only an OS crash may lose the
        # last commits, which is the trade every WAL deployment makes.
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute("PRAGMA foreign_keys=OFF")
        await self._db.executescript(SCHEMA)
        await self._db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        await self._db.commit()
        if self.path != ":memory:":
            self._reader = await aiosqlite.connect(self.path)
            await self._reader.execute("PRAGMA query_only=1")
        await self._check_version()

    async def _check_version(self) -> None:
        """Refuse a database written by an incompatible version now, not with a failure later."""
        found = await self.get_meta("schema_version")
        if found != str(SCHEMA_VERSION):
            await self.close()
            raise self._wrong_version(found)

    def _wrong_version(self, found: str | None) -> ConfigError:
        return ConfigError(
            f"{self.path}: the database has schema version {found}, and this emulator "
            f"uses version {SCHEMA_VERSION}; give another --db file, or delete this one"
        )

    def preflight(self) -> None:
        """Before serving (and announcing a URL): the database file opens, and is of this
        schema version if it is one of ours already. Blocking, so only for startup."""
        if self.path == ":memory:":
            return
        try:
            with contextlib.closing(sqlite3.connect(self.path)) as db:
                has_meta = db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
                ).fetchall()
                rows = (
                    db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
                    if has_meta
                    else []
                )
        except sqlite3.Error as exc:
            raise ConfigError(f"{self.path}: cannot open the database: {exc}") from None
        if rows and rows[0][0] != str(SCHEMA_VERSION):
            raise self._wrong_version(rows[0][0])

    async def close(self) -> None:
        """Release the connections; calling it twice is harmless."""
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.close()
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

    async def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        self.db  # noqa: B018 - raises StoreClosed before open() and after close()
        if self._reader is not None:
            return list(await self._reader.execute_fetchall(sql, args))
        # The one connection of an in-memory database: a read between a write's statements and
        # its commit would see rows that are not committed yet, so it waits for the commit.
        async with self._lock:
            return list(await self.db.execute_fetchall(sql, args))

    # --- meta ----------------------------------------------------------------------------------

    async def max_seq(self, table: str) -> int:
        assert table in ("files", "batches")
        rows = await self._all(f"SELECT COALESCE(MAX(seq), 0) FROM {table}")
        return int(rows[0][0])

    async def get_meta(self, key: str) -> str | None:
        rows = await self._all("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    # --- files ---------------------------------------------------------------------------------

    async def insert_file_chunks(self, file_seq: int, chunks: Sequence[tuple[int, bytes]]) -> None:
        async with self._write() as db:
            await db.executemany(
                "INSERT INTO file_chunks (file_seq, n, data) VALUES (?, ?, ?)",
                [(file_seq, n, data) for n, data in chunks],
            )

    async def insert_file(self, f: FileRecord) -> None:
        async with self._write() as db:
            await db.execute(
                f"INSERT INTO files ({_FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (f.seq, f.id, f.tenant_id, f.filename, f.purpose, f.bytes, f.line_count,
                 f.sha256, f.created_at),
            )  # fmt: skip

    async def delete_orphan_chunks(self) -> None:
        """Drop chunks no file owns: what a crash in the middle of an upload leaves behind."""
        async with self._write() as db:
            await db.execute(
                "DELETE FROM file_chunks WHERE file_seq NOT IN (SELECT seq FROM files)"
            )

    async def delete_file_chunks(self, file_seq: int) -> None:
        async with self._write() as db:
            await db.execute("DELETE FROM file_chunks WHERE file_seq = ?", (file_seq,))

    async def get_file(self, tenant_id: str, file_id: str) -> FileRecord | None:
        rows = await self._all(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE id = ? AND tenant_id = ?",
            (file_id, tenant_id),
        )
        return FileRecord(*rows[0]) if rows else None

    async def list_files(
        self, tenant_id: str, limit: int, before_seq: int | None, purpose: str | None = None
    ) -> list[FileRecord]:
        sql = f"SELECT {_FILE_COLUMNS} FROM files WHERE tenant_id = ?"
        args: list[Any] = [tenant_id]
        if before_seq is not None:
            sql, args = sql + " AND seq < ?", [*args, before_seq]
        if purpose is not None:
            sql, args = sql + " AND purpose = ?", [*args, purpose]
        rows = await self._all(sql + " ORDER BY seq DESC LIMIT ?", [*args, limit])
        return [FileRecord(*r) for r in rows]

    async def delete_file(self, f: FileRecord) -> None:
        async with self._write() as db:
            await db.execute("DELETE FROM files WHERE seq = ?", (f.seq,))
            await db.execute("DELETE FROM file_chunks WHERE file_seq = ?", (f.seq,))

    async def iter_file_chunks(self, file_seq: int) -> AsyncIterator[bytes]:
        n = -1
        while True:
            rows = await self._all(
                "SELECT n, data FROM file_chunks WHERE file_seq = ? AND n > ? ORDER BY n LIMIT 16",
                (file_seq, n),
            )
            if not rows:
                return
            n = rows[-1][0]
            for _, data in rows:
                yield bytes(data)

    # --- batches -------------------------------------------------------------------------------

    async def insert_batch(self, b: BatchRecord) -> None:
        row = _batch_row(b)
        async with self._write() as db:
            await db.execute(
                f"INSERT INTO batches ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )

    async def update_batch(self, b: BatchRecord, changed: Sequence[str]) -> None:
        """Write the fields of `b` named in `changed` (what `BatchRecord.move` returns)."""
        async with self._write() as db:
            await self._update(db, b, changed)

    async def get_batch(self, tenant_id: str, batch_id: str) -> BatchRecord | None:
        rows = await self._all(
            _BATCH_SELECT + " WHERE id = ? AND tenant_id = ?", (batch_id, tenant_id)
        )
        return _batch(rows[0]) if rows else None

    async def get_batch_by_seq(self, seq: int) -> BatchRecord | None:
        rows = await self._all(_BATCH_SELECT + " WHERE seq = ?", (seq,))
        return _batch(rows[0]) if rows else None

    async def get_batch_any(self, batch_id: str) -> BatchRecord | None:
        """A batch by id whatever its tenant: only for pre-signed links, whose signature vouches."""
        rows = await self._all(_BATCH_SELECT + " WHERE id = ?", (batch_id,))
        return _batch(rows[0]) if rows else None

    async def list_batches(
        self, tenant_id: str, limit: int, before_seq: int | None, status: str | None
    ) -> list[BatchRecord]:
        sql, args = _BATCH_SELECT + " WHERE tenant_id = ?", list[Any]([tenant_id])
        if before_seq is not None:
            sql, args = sql + " AND seq < ?", [*args, before_seq]
        if status is not None:
            sql, args = sql + " AND status = ?", [*args, status]
        rows = await self._all(sql + " ORDER BY seq DESC LIMIT ?", [*args, limit])
        return [_batch(r) for r in rows]

    async def count_active_batches(self, tenant_id: str) -> int:
        rows = await self._all(
            f"SELECT COUNT(*) FROM batches WHERE tenant_id = ? AND {_IN_ACTIVE}",
            (tenant_id, *_ACTIVE),
        )
        return int(rows[0][0])

    async def active_batches(self) -> list[BatchRecord]:
        rows = await self._all(f"{_BATCH_SELECT} WHERE {_IN_ACTIVE} ORDER BY seq", _ACTIVE)
        return [_batch(r) for r in rows]

    async def all_batches(self, tenant_id: str | None = None) -> list[BatchRecord]:
        if tenant_id is None:
            return [_batch(r) for r in await self._all(_BATCH_SELECT + " ORDER BY seq")]
        rows = await self._all(_BATCH_SELECT + " WHERE tenant_id = ? ORDER BY seq", (tenant_id,))
        return [_batch(r) for r in rows]

    async def all_files(self, tenant_id: str | None = None) -> list[FileRecord]:
        sql, args = f"SELECT {_FILE_COLUMNS} FROM files", []
        if tenant_id is not None:
            sql, args = sql + " WHERE tenant_id = ?", [tenant_id]
        return [FileRecord(*r) for r in await self._all(sql + " ORDER BY seq", args)]

    # --- requests and results ------------------------------------------------------------------

    async def clear_requests(self, batch_seq: int) -> None:
        """Drop a batch's parsed requests (a parse cut off by a crash starts again from none)."""
        async with self._write() as db:
            await db.execute("DELETE FROM requests WHERE batch_seq = ?", (batch_seq,))

    async def insert_requests(self, batch_seq: int, rows: Sequence[RequestRow]) -> None:
        """A chunk of parsed requests: (idx, line, custom_id, url, the input line's raw bytes)."""
        async with self._write() as db:
            await db.executemany(
                "INSERT INTO requests (batch_seq, idx, line, custom_id, url, raw)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(batch_seq, *row) for row in rows],
            )

    async def fetch_requests(self, batch_seq: int, idxs: Sequence[int]) -> list[RequestRecord]:
        """The requests at positions `idxs`, in that order (callers pass at most ~500)."""
        if not idxs:
            return []
        lo, hi = min(idxs), max(idxs)
        if hi - lo + 1 == len(idxs):  # the common case: a contiguous run
            sql, args = "idx BETWEEN ? AND ?", [lo, hi]
        else:
            sql, args = f"idx IN ({', '.join('?' * len(idxs))})", list(idxs)
        rows = await self._all(
            f"SELECT idx, line, custom_id, url, raw FROM requests WHERE batch_seq = ? AND {sql}",
            [batch_seq, *args],
        )
        by_idx = {
            r[0]: RequestRecord(r[0], r[1], r[2], r[3], orjson.loads(r[4])["body"]) for r in rows
        }
        return [by_idx[i] for i in idxs if i in by_idx]

    async def done_indexes(self, batch_seq: int) -> set[int]:
        rows = await self._all("SELECT idx FROM results WHERE batch_seq = ?", (batch_seq,))
        return {r[0] for r in rows}

    async def record_results(
        self, b: BatchRecord, results: Sequence[ResultRecord], changed: Sequence[str] = ()
    ) -> None:
        """Insert a chunk of results and write the batch's counters (and the fields `changed`)
        in the same transaction.

        `INSERT OR IGNORE` makes a replayed chunk (after a crash between compute and commit)
        harmless: each request has exactly one result.
        """
        names = (*_COUNTERS, *changed)
        async with self._write() as db:
            await db.executemany(
                "INSERT OR IGNORE INTO results (batch_seq, idx, custom_id, ok, payload)"
                " VALUES (?, ?, ?, ?, ?)",
                [(b.seq, r.idx, r.custom_id, int(r.ok), r.payload) for r in results],
            )
            await self._update(db, b, names)

    async def _update(self, db: aiosqlite.Connection, b: BatchRecord, names: Sequence[str]) -> None:
        if not names:
            return
        row = _batch_row(b)
        await db.execute(
            f"UPDATE batches SET {', '.join(f'{n} = ?' for n in names)} WHERE seq = ?",
            (*(row[n] for n in names), b.seq),
        )

    async def iter_results(self, batch_seq: int) -> AsyncIterator[list[tuple[str, bool, bytes]]]:
        """Pages of (custom_id, ok, payload) in input order."""
        idx = -1
        while True:
            rows = await self._all(
                "SELECT idx, custom_id, ok, payload FROM results WHERE batch_seq = ? AND idx > ?"
                " ORDER BY idx LIMIT ?",
                (batch_seq, idx, _PAGE),
            )
            if not rows:
                return
            idx = rows[-1][0]
            yield [(cid, bool(ok), bytes(payload)) for _, cid, ok, payload in rows]

    # --- reset ---------------------------------------------------------------------------------

    async def reset(self, tenant_id: str | None = None) -> None:
        async with self._write() as db:
            if tenant_id is None:
                for table in ("files", "file_chunks", "batches", "requests", "results"):
                    await db.execute(f"DELETE FROM {table}")
                return
            for table in ("requests", "results"):
                await db.execute(
                    f"DELETE FROM {table} WHERE batch_seq IN"
                    " (SELECT seq FROM batches WHERE tenant_id = ?)",
                    (tenant_id,),
                )
            await db.execute(
                "DELETE FROM file_chunks"
                " WHERE file_seq IN (SELECT seq FROM files WHERE tenant_id = ?)",
                (tenant_id,),
            )
            await db.execute("DELETE FROM batches WHERE tenant_id = ?", (tenant_id,))
            await db.execute("DELETE FROM files WHERE tenant_id = ?", (tenant_id,))


def _batch_row(b: BatchRecord) -> dict[str, Any]:
    row: dict[str, Any] = {name: getattr(b, name) for name in _BATCH_COLUMNS}
    for name in _JSON_FIELDS:
        row[name] = None if row[name] is None else orjson.dumps(row[name]).decode()
    for name in _DECIMAL_FIELDS:
        row[name] = str(row[name])
    return row


def _batch(row: Sequence[Any]) -> BatchRecord:
    values = dict(zip(_BATCH_COLUMNS, row, strict=True))
    for name in _JSON_FIELDS:
        values[name] = None if values[name] is None else orjson.loads(values[name])
    for name in _DECIMAL_FIELDS:
        values[name] = Decimal(values[name])
    return BatchRecord(**values)
