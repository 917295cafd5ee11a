"""Webhooks (`webhooks`), their events (`webhook_events`) and deliveries (`webhook_deliveries`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiosqlite
import orjson

from emulator.records import DeliveryRecord, EventRecord, WebhookRecord
from emulator.status import FINAL

from .base import StoreBase

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


class WebhookRows(StoreBase):
    """The tables `webhooks`, `webhook_events` and `webhook_deliveries`
    (`final_batches_without_event` also reads `batches`)."""

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
