"""Batches (`batches`), their parsed requests (`requests`) and their results (`results`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import aiosqlite
import orjson

from emulator.records import BatchRecord, FileRecord, RequestRecord, RequestRow, ResultRecord
from emulator.status import ACTIVE

from .files import FileRows

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
_JSON_FIELDS = ("metadata", "error", "extra")
_DECIMAL_FIELDS = ("cost_live", "cost_amount")
_PAGE = 500
_ACTIVE = tuple(sorted(ACTIVE))
_IN_ACTIVE = f"status IN ({', '.join('?' * len(_ACTIVE))})"


class BatchRows(FileRows):
    """The tables `batches`, `requests` and `results`. A batch's input file is written in the
    batch's own transaction, hence the file rows beneath; `work_in_progress` also counts the
    pending rows of `webhook_deliveries`."""

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
