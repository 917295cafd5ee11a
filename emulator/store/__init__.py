"""The store: sole owner of the SQLite database. No SQL lives anywhere else.

One module per concept, each a class of the rows of its tables (`files`, `batches`, `webhooks`,
`state`), over `base` (the connections and the write lock) and `schema` (the tables). `Store` is
all of them, with what spans them: opening (and the checks before serving), the numbers behind
the ids, and the reset of batches and files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3

import aiosqlite

from emulator.errors import ConfigError

from .base import StoreClosed
from .batches import BatchRows
from .schema import PAGE_SIZE, SCHEMA, SCHEMA_VERSION, adopt_journal_rows
from .state import StateRows
from .webhooks import WebhookRows

__all__ = ["PAGE_SIZE", "SCHEMA", "SCHEMA_VERSION", "Store", "StoreClosed"]


class Store(BatchRows, WebhookRows, StateRows):
    """All persistent state: files, batches, their parsed requests and their results. Its own
    tables: `meta` (the schema version) and `id_numbers`."""

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
        await adopt_journal_rows(self._db)
        await self._db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        await self._db.commit()
        if self.path != ":memory:":
            self._reader = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
            self._reader.execute("PRAGMA query_only=1")
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

    # --- across concepts -----------------------------------------------------------------------

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
