"""Files: their rows (`files`) and their content in 1 MiB chunks (`file_chunks`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiosqlite

from emulator.records import FileRecord

from .base import StoreBase

_FILE_COLUMNS = "seq, id, tenant_id, filename, purpose, bytes, line_count, sha256, created_at"


class FileRows(StoreBase):
    """The tables `files` and `file_chunks`."""

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

    async def all_files(self, tenant_id: str | None = None) -> list[FileRecord]:
        sql, args = f"SELECT {_FILE_COLUMNS} FROM files", []
        if tenant_id is not None:
            sql, args = sql + " WHERE tenant_id = ?", [tenant_id]
        return [FileRecord(*r) for r in await self._all(sql + " ORDER BY seq", args)]
