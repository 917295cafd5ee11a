"""The store: sole owner of the SQLite database. No SQL lives anywhere else.

One aiosqlite connection in WAL mode. Write transactions are serialised by one lock so that two
coroutines never interleave inside a transaction, and every multi-row write is one `executemany`:
a thread hop per row would cost ~100 µs each (50,000 rows = 5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import aiosqlite
import orjson

from emulator.errors import ConfigError
from emulator.records import (
    BatchRecord,
    DeliveryRecord,
    EventRecord,
    FileRecord,
    RequestRecord,
    RequestRow,
    ResultRecord,
    WebhookRecord,
)
from emulator.status import ACTIVE, FINAL

SCHEMA_VERSION = 2
PAGE_SIZE = 65536

# aiosqlite logs every statement with its parameters at DEBUG: that would put webhook secrets
# (and every request body) in the log of a `--log-level debug` run.
logging.getLogger("aiosqlite").setLevel(logging.INFO)

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
-- webhooks: a batch's event row is unique per batch_seq, so enqueueing it twice is harmless
CREATE TABLE IF NOT EXISTS webhooks (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, tenant_id TEXT NOT NULL,
    partner_id TEXT NOT NULL, url TEXT NOT NULL, events TEXT NOT NULL, secret TEXT NOT NULL,
    status TEXT NOT NULL, max_retries INTEGER NOT NULL, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, consecutive_failures INTEGER NOT NULL DEFAULT 0, disabled_at REAL
);
CREATE INDEX IF NOT EXISTS webhooks_by_tenant ON webhooks (tenant_id, seq);
CREATE TABLE IF NOT EXISTS webhook_events (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, tenant_id TEXT NOT NULL, type TEXT NOT NULL,
    body BLOB NOT NULL, created_at REAL NOT NULL, batch_seq INTEGER UNIQUE
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, webhook_seq INTEGER NOT NULL,
    event_seq INTEGER NOT NULL, created_at REAL NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL, next_attempt_at REAL, first_failed_at REAL, last_attempt_at REAL,
    status_code INTEGER, error_message TEXT, duration_ms INTEGER, chaos TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_webhook ON webhook_deliveries (webhook_seq, seq);
CREATE INDEX IF NOT EXISTS deliveries_due ON webhook_deliveries (status, next_attempt_at);
-- the emulator's own state, kept so a restart continues where it stopped: the clock and the
-- global scenario (one JSON value per key), the tenant scenarios, and the request journal
CREATE TABLE IF NOT EXISTS emulator_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tenant_scenarios (
    tenant_id TEXT PRIMARY KEY, name TEXT NOT NULL, source TEXT NOT NULL, text TEXT NOT NULL
);
-- the numbers behind each tenant's ids: the last one given per (tenant, kind of object)
CREATE TABLE IF NOT EXISTS id_numbers (
    tenant_id TEXT NOT NULL, kind TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (tenant_id, kind)
);
-- the journal is saved a page at a time (the entries since the last save, one marshal blob): a
-- row per request cost the live path more than the request itself under load. A tenant's reset
-- leaves its entries in the pages and hides them: forgotten up to the page seq noted here.
CREATE TABLE IF NOT EXISTS journal_pages (
    seq INTEGER PRIMARY KEY, count INTEGER NOT NULL, last_time REAL NOT NULL,
    entries BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS journal_forgotten (
    tenant_id TEXT PRIMARY KEY, through_page INTEGER NOT NULL
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
_PAGE = 500
_ACTIVE = tuple(sorted(ACTIVE))
_IN_ACTIVE = f"status IN ({', '.join('?' * len(_ACTIVE))})"
_WEBHOOK_COLUMNS = (
    "seq", "id", "tenant_id", "partner_id", "url", "events", "secret", "status", "max_retries",
    "created_at", "updated_at", "consecutive_failures", "disabled_at",
)  # fmt: skip
_WEBHOOK_SELECT = "SELECT " + ", ".join(_WEBHOOK_COLUMNS) + " FROM webhooks"
_EVENT_COLUMNS = ("seq", "id", "tenant_id", "type", "body", "created_at", "batch_seq")
_DELIVERY_COLUMNS = (
    "seq", "id", "webhook_seq", "event_seq", "created_at", "status", "attempts",
    "next_attempt_at", "first_failed_at", "last_attempt_at", "status_code", "error_message",
    "duration_ms", "chaos",
)  # fmt: skip
#: what an attempt changes on its delivery
_ATTEMPT_FIELDS = _DELIVERY_COLUMNS[5:13]
_FINAL = tuple(sorted(FINAL))


class StoreClosed(RuntimeError):
    """The store was used after `close()`."""


class Store:
    """All persistent state: files, batches, their parsed requests and their results."""

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

    # --- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        self._lock = asyncio.Lock()
        self._db = await aiosqlite.connect(self.path)
        # 64 KiB pages (a new database only; an existing one keeps its own): a 1 MiB file chunk
        # is 16 overflow pages instead of 256, so uploads write about twice as fast, and the
        # batch tables' ~1 KB rows lose nothing measurable (benchmarks/batch_e2e.py).
        await self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")
        await self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (kill -9); only an OS crash may lose the
        # last commits, which is the trade every WAL deployment makes.
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute("PRAGMA foreign_keys=OFF")
        await self._db.executescript(SCHEMA)
        await self._adopt_journal_rows()
        await self._db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        await self._db.commit()
        if self.path != ":memory:":
            self._reader = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
            self._reader.execute("PRAGMA query_only=1")
        await self._check_version()

    async def _adopt_journal_rows(self) -> None:
        """A database from before journal pages keeps its entries a row each in `journal`: they
        become the first page, and the old table goes."""
        assert self._db is not None
        async with self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'journal'"
        ) as cursor:
            if not await cursor.fetchall():
                return
        async with self._db.execute(
            "SELECT time, method, path, query, status, tenant_id, request_id FROM journal"
            " ORDER BY seq"
        ) as cursor:
            rows = [(r[0], r[1], r[2], bytes(r[3]), *r[4:]) for r in await cursor.fetchall()]
        if rows:
            await self._db.execute(
                "INSERT INTO journal_pages (count, last_time, entries) VALUES (?, ?, ?)",
                (len(rows), max(r[0] for r in rows), marshal.dumps(rows)),
            )
        await self._db.execute("DROP TABLE journal")

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

    def claim(self) -> None:
        """Before serving (and announcing a URL): make this process the only server of the
        database file, or raise a ConfigError naming the process that serves it.

        The claim is an exclusive `flock` on `PATH.lock`, which the OS releases when the process
        ends however it ends: a server killed with `kill -9` leaves no stale claim behind, and
        the file (with the last holder's pid) is simply claimed again. Held until `close()`."""
        if self.path == ":memory:" or self._claim is not None:
            return
        try:
            import fcntl
        except ImportError:  # pragma: no cover - no flock (Windows): no claim
            return
        lock_path = self.path + ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"{lock_path}: cannot create the lock file: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"{self.path}: another emulator (pid {holder}) is serving this database; stop "
                "it, or give this one another --db file"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._claim = fd

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

    # --- meta ----------------------------------------------------------------------------------

    async def max_seq(self, table: str) -> int:
        assert table in ("files", "batches")
        rows = await self._all(f"SELECT COALESCE(MAX(seq), 0) FROM {table}")
        return int(rows[0][0])

    async def claim_number(self, tenant_id: str, kind: str) -> int:
        """The tenant's next number for objects of `kind` (1, 2, ...). Committed before the
        object is: a crash in between skips a number, and never gives one twice."""
        async with self._write() as db:
            rows = await db.execute_fetchall(
                "INSERT INTO id_numbers (tenant_id, kind, n) VALUES (?, ?, 1)"
                " ON CONFLICT (tenant_id, kind) DO UPDATE SET n = n + 1 RETURNING n",
                (tenant_id, kind),
            )
        return int(next(iter(rows))[0])

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
            await self._insert_file(db, f)

    @staticmethod
    async def _insert_file(db: aiosqlite.Connection, f: FileRecord) -> None:
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
                "SELECT n, data FROM file_chunks WHERE file_seq = ? AND n > ? ORDER BY n LIMIT 2",
                (file_seq, n),
            )
            if not rows:
                return
            n = rows[-1][0]
            for _, data in rows:
                yield bytes(data)

    # --- batches -------------------------------------------------------------------------------

    async def insert_batch(self, b: BatchRecord, input_file: FileRecord | None = None) -> None:
        """Store a new batch, and with it, in the same transaction, the input file made for it
        (inline or fetched): a crash cannot leave the one without the other."""
        row = _batch_row(b)
        async with self._write() as db:
            if input_file is not None:
                await self._insert_file(db, input_file)
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

    async def holds(self, tenant_id: str) -> bool:
        """Whether anything of the tenant is stored, but for journal entries (saved in pages,
        which the journal itself knows of): a reset of a tenant that holds nothing, as most
        tests' at their end, then costs one read instead of a few writes."""
        tables = ("batches", "files", "webhooks", "webhook_events", "id_numbers",
                  "tenant_scenarios")  # fmt: skip
        exists = " OR ".join(
            f"EXISTS (SELECT 1 FROM {table} WHERE tenant_id = ?)" for table in tables
        )
        rows = await self._all(f"SELECT {exists}", (tenant_id,) * len(tables))
        return bool(rows[0][0])

    async def work_in_progress(self) -> dict[str, tuple[int, int]]:
        """Per tenant with any: its batches pending or processing, and its webhook deliveries
        still to attempt (what runs when the clock moves)."""
        rows = await self._all(
            f"SELECT tenant_id, COUNT(*), 0 FROM batches WHERE {_IN_ACTIVE} GROUP BY tenant_id"
            " UNION ALL SELECT w.tenant_id, 0, COUNT(*) FROM webhook_deliveries d"
            " JOIN webhooks w ON w.seq = d.webhook_seq WHERE d.status = 'pending'"
            " GROUP BY w.tenant_id",
            _ACTIVE,
        )
        found: dict[str, tuple[int, int]] = {}
        for tenant, batches, deliveries in rows:
            had = found.get(tenant, (0, 0))
            found[tenant] = (had[0] + batches, had[1] + deliveries)
        return found

    async def all_batches(self, tenant_id: str | None = None) -> list[BatchRecord]:
        if tenant_id is None:
            return [_batch(r) for r in await self._all(_BATCH_SELECT + " ORDER BY seq")]
        rows = await self._all(_BATCH_SELECT + " WHERE tenant_id = ? ORDER BY seq", (tenant_id,))
        return [_batch(r) for r in rows]

    async def batch_census(self) -> list[tuple[str, int, int]]:
        """(status, batches, requests not yet run) for each status any batch has (metrics)."""
        sql = (
            "SELECT status, COUNT(*), SUM(MAX(total_count - completed_count - failed_count, 0))"
            " FROM batches GROUP BY status"
        )
        return [(str(s), int(n), int(left or 0)) for s, n, left in await self._all(sql)]

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

    async def batch_lines(
        self, batch_seq: int, offset: int, limit: int, status: str | None
    ) -> list[tuple[int, int, str, str, bytes, bool | None, bytes | None]]:
        """A page of a batch's parsed requests from position `offset`, each with its result
        (ok and payload; None while it has none): (idx, line, custom_id, url, raw, ok, payload).
        `status` keeps only `ok`, `error` or `pending` ones. Both tables are keyed by
        (batch_seq, idx), so a page costs the same anywhere in a 50,000-line batch."""
        where = {None: "", "ok": " AND r.ok = 1", "error": " AND r.ok = 0",
                 "pending": " AND r.idx IS NULL"}[status]  # fmt: skip
        rows = await self._all(
            "SELECT q.idx, q.line, q.custom_id, q.url, q.raw, r.ok, r.payload FROM requests q"
            " LEFT JOIN results r ON r.batch_seq = q.batch_seq AND r.idx = q.idx"
            f" WHERE q.batch_seq = ? AND q.idx >= ?{where} ORDER BY q.idx LIMIT ?",
            (batch_seq, offset, limit),
        )
        return [
            (idx, line, cid, url, bytes(raw), None if ok is None else bool(ok),
             None if payload is None else bytes(payload))
            for idx, line, cid, url, raw, ok, payload in rows
        ]  # fmt: skip

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

    # --- webhooks, their events and deliveries -------------------------------------------------

    async def webhook_max_seqs(self) -> tuple[int, int, int]:
        """The highest seq of webhooks, events and deliveries (0 when empty)."""
        out = []
        for table in ("webhooks", "webhook_events", "webhook_deliveries"):
            rows = await self._all(f"SELECT COALESCE(MAX(seq), 0) FROM {table}")
            out.append(int(rows[0][0]))
        return out[0], out[1], out[2]

    async def insert_webhook(self, w: WebhookRecord) -> None:
        row = _webhook_row(w)
        async with self._write() as db:
            await db.execute(
                f"INSERT INTO webhooks ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )

    async def update_webhook(self, w: WebhookRecord, changed: Sequence[str]) -> None:
        if not changed:
            return
        row = _webhook_row(w)
        async with self._write() as db:
            await db.execute(
                f"UPDATE webhooks SET {', '.join(f'{n} = ?' for n in changed)} WHERE seq = ?",
                (*(row[n] for n in changed), w.seq),
            )

    async def get_webhook(self, tenant_id: str, webhook_id: str) -> WebhookRecord | None:
        rows = await self._all(
            _WEBHOOK_SELECT + " WHERE id = ? AND tenant_id = ?", (webhook_id, tenant_id)
        )
        return _webhook(rows[0]) if rows else None

    async def get_webhook_by_seq(self, seq: int) -> WebhookRecord | None:
        rows = await self._all(_WEBHOOK_SELECT + " WHERE seq = ?", (seq,))
        return _webhook(rows[0]) if rows else None

    async def list_webhooks(
        self, tenant_id: str, limit: int, before_seq: int | None = None
    ) -> list[WebhookRecord]:
        sql, args = _WEBHOOK_SELECT + " WHERE tenant_id = ?", list[Any]([tenant_id])
        if before_seq is not None:
            sql, args = sql + " AND seq < ?", [*args, before_seq]
        rows = await self._all(sql + " ORDER BY seq DESC LIMIT ?", [*args, limit])
        return [_webhook(r) for r in rows]

    async def all_webhooks(self, tenant_id: str | None = None) -> list[WebhookRecord]:
        if tenant_id is None:
            return [_webhook(r) for r in await self._all(_WEBHOOK_SELECT + " ORDER BY seq")]
        rows = await self._all(_WEBHOOK_SELECT + " WHERE tenant_id = ? ORDER BY seq", (tenant_id,))
        return [_webhook(r) for r in rows]

    async def delete_webhook(self, w: WebhookRecord) -> None:
        """The webhook and every delivery to it, in-flight ones included."""
        async with self._write() as db:
            await db.execute("DELETE FROM webhook_deliveries WHERE webhook_seq = ?", (w.seq,))
            await db.execute("DELETE FROM webhooks WHERE seq = ?", (w.seq,))

    async def final_batches_without_event(self) -> list[int]:
        """Batches that are final but whose event was never made (a crash between the two)."""
        rows = await self._all(
            f"SELECT seq FROM batches WHERE status IN ({', '.join('?' * len(_FINAL))})"
            " AND seq NOT IN (SELECT batch_seq FROM webhook_events WHERE batch_seq IS NOT NULL)"
            " ORDER BY seq",
            _FINAL,
        )
        return [int(r[0]) for r in rows]

    async def insert_event(self, e: EventRecord, deliveries: Sequence[DeliveryRecord]) -> bool:
        """The event and its deliveries, in one transaction; False (and nothing written) if the
        event's batch already has one."""
        async with self._write() as db:
            cur = await db.execute(
                f"INSERT OR IGNORE INTO webhook_events ({', '.join(_EVENT_COLUMNS)})"
                f" VALUES ({', '.join('?' * len(_EVENT_COLUMNS))})",
                (e.seq, e.id, e.tenant_id, e.type, e.body, e.created_at, e.batch_seq),
            )
            if cur.rowcount == 0:
                return False
            await self._insert_deliveries(db, deliveries)
            return True

    async def _insert_deliveries(
        self, db: aiosqlite.Connection, deliveries: Sequence[DeliveryRecord]
    ) -> None:
        await db.executemany(
            f"INSERT INTO webhook_deliveries ({', '.join(_DELIVERY_COLUMNS)})"
            f" VALUES ({', '.join('?' * len(_DELIVERY_COLUMNS))})",
            [tuple(_delivery_row(d).values()) for d in deliveries],
        )

    async def due_webhooks(self, now: float) -> list[int]:
        """Active webhooks with a pending delivery due by `now`."""
        rows = await self._all(
            "SELECT DISTINCT d.webhook_seq FROM webhook_deliveries d"
            " JOIN webhooks w ON w.seq = d.webhook_seq"
            " WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND w.status = 'active'"
            " ORDER BY d.webhook_seq",
            (now,),
        )
        return [int(r[0]) for r in rows]

    async def due_deliveries(
        self, webhook_seq: int, now: float, limit: int
    ) -> list[tuple[DeliveryRecord, EventRecord]]:
        """A webhook's pending deliveries due by `now`, oldest due first, with their events."""
        cols = ", ".join(
            [*(f"d.{c}" for c in _DELIVERY_COLUMNS), *(f"e.{c}" for c in _EVENT_COLUMNS)]
        )
        rows = await self._all(
            f"SELECT {cols} FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq"
            " WHERE d.webhook_seq = ? AND d.status = 'pending' AND d.next_attempt_at <= ?"
            " ORDER BY d.next_attempt_at, d.seq LIMIT ?",
            (webhook_seq, now, limit),
        )
        n = len(_DELIVERY_COLUMNS)
        return [(_delivery(r[:n]), EventRecord(*r[n:])) for r in rows]

    async def next_delivery_due(self, exclude: Sequence[int] = ()) -> float | None:
        """When the next pending delivery of an active webhook not in `exclude` is due."""
        rows = await self._all(
            "SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d"
            " JOIN webhooks w ON w.seq = d.webhook_seq"
            " WHERE d.status = 'pending' AND w.status = 'active'"
            f" AND w.seq NOT IN ({', '.join('?' * len(exclude))})",
            tuple(exclude),
        )
        return None if rows[0][0] is None else float(rows[0][0])

    async def record_attempt(self, d: DeliveryRecord, success: bool) -> int:
        """An attempt's outcome on its delivery and its webhook's run of failures, in one
        transaction; that run afterwards (0 after a success; -1 if the webhook is gone)."""
        row = _delivery_row(d)
        async with self._write() as db:
            await db.execute(
                f"UPDATE webhook_deliveries SET {', '.join(f'{n} = ?' for n in _ATTEMPT_FIELDS)}"
                " WHERE seq = ?",
                (*(row[n] for n in _ATTEMPT_FIELDS), d.seq),
            )
            await db.execute(
                "UPDATE webhooks SET consecutive_failures ="
                " CASE WHEN ? THEN 0 ELSE consecutive_failures + 1 END WHERE seq = ?",
                (int(success), d.webhook_seq),
            )
            found = await db.execute_fetchall(
                "SELECT consecutive_failures FROM webhooks WHERE seq = ?", (d.webhook_seq,)
            )
        rows = list(found)
        return int(rows[0][0]) if rows else -1

    async def disable_webhook(
        self, w: WebhookRecord, event: EventRecord, deliveries: Sequence[DeliveryRecord]
    ) -> bool:
        """Mark an active webhook inactive (`w.status`, `w.disabled_at`) and store the event that
        says so, in one transaction; False if it was not active any more."""
        async with self._write() as db:
            cur = await db.execute(
                "UPDATE webhooks SET status = ?, disabled_at = ?, updated_at = ?"
                " WHERE seq = ? AND status = 'active'",
                (w.status, w.disabled_at, w.updated_at, w.seq),
            )
            if cur.rowcount == 0:
                return False
            await db.execute(
                f"INSERT INTO webhook_events ({', '.join(_EVENT_COLUMNS)})"
                f" VALUES ({', '.join('?' * len(_EVENT_COLUMNS))})",
                (event.seq, event.id, event.tenant_id, event.type, event.body, event.created_at,
                 event.batch_seq),
            )  # fmt: skip
            await self._insert_deliveries(db, deliveries)
            return True

    async def list_deliveries(
        self,
        webhook_seq: int,
        limit: int,
        before_seq: int | None = None,
        status: str | None = None,
        since: float | None = None,
    ) -> list[DeliveryRecord]:
        """A webhook's deliveries, newest first, with their webhook's and event's ids."""
        cols = ", ".join(f"d.{c}" for c in _DELIVERY_COLUMNS)
        sql = (
            f"SELECT {cols}, w.id, e.id, e.type FROM webhook_deliveries d"
            " JOIN webhooks w ON w.seq = d.webhook_seq JOIN webhook_events e ON e.seq = d.event_seq"
            " WHERE d.webhook_seq = ?"
        )
        args: list[Any] = [webhook_seq]
        for clause, value in (("d.seq < ?", before_seq), ("d.status = ?", status),
                              ("d.created_at >= ?", since)):  # fmt: skip
            if value is not None:
                sql, args = f"{sql} AND {clause}", [*args, value]
        rows = await self._all(sql + " ORDER BY d.seq DESC LIMIT ?", [*args, limit])
        n = len(_DELIVERY_COLUMNS)
        return [_delivery(r[:n], *r[n:]) for r in rows]

    async def reset_webhooks(self, tenant_id: str | None = None) -> None:
        async with self._write() as db:
            if tenant_id is None:
                for table in ("webhooks", "webhook_events", "webhook_deliveries"):
                    await db.execute(f"DELETE FROM {table}")
                return
            await db.execute(
                "DELETE FROM webhook_deliveries"
                " WHERE webhook_seq IN (SELECT seq FROM webhooks WHERE tenant_id = ?)",
                (tenant_id,),
            )
            await db.execute("DELETE FROM webhook_events WHERE tenant_id = ?", (tenant_id,))
            await db.execute("DELETE FROM webhooks WHERE tenant_id = ?", (tenant_id,))

    # --- emulator state: clock, scenarios, journal ---------------------------------------------

    async def put_state(self, key: str, value: dict[str, Any] | None) -> None:
        """Keep one JSON value of the emulator's own state (None forgets it)."""
        async with self._write() as db:
            if value is None:
                await db.execute("DELETE FROM emulator_state WHERE key = ?", (key,))
            else:
                await db.execute(
                    "INSERT OR REPLACE INTO emulator_state (key, value) VALUES (?, ?)",
                    (key, orjson.dumps(value).decode()),
                )

    async def get_state(self, key: str) -> dict[str, Any] | None:
        rows = await self._all("SELECT value FROM emulator_state WHERE key = ?", (key,))
        if not rows:
            return None
        value: dict[str, Any] = orjson.loads(rows[0][0])
        return value

    async def put_tenant_scenario(
        self, tenant_id: str, scenario: tuple[str, str, str] | None
    ) -> None:
        """A tenant's scenario as (name, source, YAML text); None drops it."""
        async with self._write() as db:
            await db.execute("DELETE FROM tenant_scenarios WHERE tenant_id = ?", (tenant_id,))
            if scenario is not None:
                await db.execute(
                    "INSERT INTO tenant_scenarios (tenant_id, name, source, text)"
                    " VALUES (?, ?, ?, ?)",
                    (tenant_id, *scenario),
                )

    async def tenant_scenarios(self) -> dict[str, tuple[str, str, str]]:
        rows = await self._all("SELECT tenant_id, name, source, text FROM tenant_scenarios")
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    async def append_journal(self, entries: Sequence[tuple[Any, ...]], keep: int) -> None:
        """Add journal entries (time, method, path, query, status, tenant, request id) as one
        page, and drop the oldest pages the last `keep` entries do not reach into."""
        if not entries:
            return
        page = marshal.dumps(list(entries))  # plain tuples of str, bytes, int, float, None
        async with self._write() as db:
            await db.execute(
                "INSERT INTO journal_pages (count, last_time, entries) VALUES (?, ?, ?)",
                (len(entries), max(e[0] for e in entries), page),
            )
            await db.execute(
                "DELETE FROM journal_pages WHERE seq < (SELECT seq FROM (SELECT seq, SUM(count)"
                " OVER (ORDER BY seq DESC) AS newer FROM journal_pages) WHERE newer >= ?"
                " ORDER BY seq DESC LIMIT 1)",
                (keep,),
            )
            await db.execute(
                "DELETE FROM journal_forgotten WHERE through_page <"
                " (SELECT MIN(seq) FROM journal_pages)"
            )

    async def load_journal(self, limit: int) -> list[tuple[Any, ...]]:
        """The last `limit` journal entries, oldest first."""
        forgotten = dict(await self._all("SELECT tenant_id, through_page FROM journal_forgotten"))
        out: list[tuple[Any, ...]] = []
        for seq, blob in await self._all("SELECT seq, entries FROM journal_pages ORDER BY seq"):
            entries = marshal.loads(blob)
            if forgotten:
                entries = [e for e in entries if forgotten.get(e[5], -1) < seq]
            out.extend(entries)
        return out[-limit:]

    async def reset_state(self, tenant_id: str | None = None) -> None:
        """Forget the journal and the tenant scenarios (everyone's, or one tenant's); the clock
        and the global scenario are not a tenant's, and a reset keeps them."""
        async with self._write() as db:
            if tenant_id is None:
                for table in ("journal_pages", "journal_forgotten", "tenant_scenarios"):
                    await db.execute(f"DELETE FROM {table}")
                return
            await db.execute(
                "INSERT OR REPLACE INTO journal_forgotten (tenant_id, through_page)"
                " SELECT ?, COALESCE(MAX(seq), 0) FROM journal_pages",
                (tenant_id,),
            )
            await db.execute("DELETE FROM tenant_scenarios WHERE tenant_id = ?", (tenant_id,))

    async def latest_instant(self) -> float | None:
        """The latest emulator instant anything stored was written at (None: nothing is): a
        restarted clock never starts before it. (A webhook's `disabled_at` is its
        `updated_at`.)"""
        rows = await self._all(
            "SELECT MAX(t) FROM ("
            " SELECT MAX(MAX(created_at, COALESCE(started_at, 0), COALESCE(completed_at, 0),"
            "  COALESCE(cancelled_at, 0), COALESCE(failed_at, 0))) AS t FROM batches"
            " UNION ALL SELECT MAX(created_at) FROM files"
            " UNION ALL SELECT MAX(MAX(created_at, updated_at)) FROM webhooks"
            " UNION ALL SELECT MAX(created_at) FROM webhook_events"
            " UNION ALL SELECT MAX(COALESCE(last_attempt_at, created_at)) FROM webhook_deliveries"
            " UNION ALL SELECT MAX(last_time) FROM journal_pages)"
        )
        return None if rows[0][0] is None else float(rows[0][0])

    # --- reset ---------------------------------------------------------------------------------

    async def reset(self, tenant_id: str | None = None) -> None:
        """Forget the batches and files (and the numbers behind the ids) of one tenant, or of
        everyone; webhooks are `reset_webhooks`'s."""
        async with self._write() as db:
            if tenant_id is None:
                tables = ("files", "file_chunks", "batches", "requests", "results", "id_numbers")
                for table in tables:
                    await db.execute(f"DELETE FROM {table}")
                return
            await db.execute("DELETE FROM id_numbers WHERE tenant_id = ?", (tenant_id,))
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


def _webhook_row(w: WebhookRecord) -> dict[str, Any]:
    row: dict[str, Any] = {name: getattr(w, name) for name in _WEBHOOK_COLUMNS}
    row["events"] = orjson.dumps(w.events).decode()
    return row


def _webhook(row: Sequence[Any]) -> WebhookRecord:
    values = dict(zip(_WEBHOOK_COLUMNS, row, strict=True))
    values["events"] = orjson.loads(values["events"])
    return WebhookRecord(**values)


def _delivery_row(d: DeliveryRecord) -> dict[str, Any]:
    row: dict[str, Any] = {name: getattr(d, name) for name in _DELIVERY_COLUMNS}
    row["chaos"] = orjson.dumps(d.chaos).decode()
    return row


def _delivery(row: Sequence[Any], *joined: str) -> DeliveryRecord:
    values = dict(zip(_DELIVERY_COLUMNS, row, strict=True))
    values["chaos"] = orjson.loads(values["chaos"])
    d = DeliveryRecord(**values)
    if joined:
        d.webhook_id, d.event_id, d.event_type = joined
    return d
