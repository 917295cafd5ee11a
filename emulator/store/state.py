"""The emulator's own state, kept so a restart continues where it stopped: the clock and the
global scenario (`emulator_state`), the tenant scenarios (`tenant_scenarios`), and the request
journal (`journal_pages`, `journal_forgotten`)."""

from __future__ import annotations

import marshal
from collections.abc import Sequence
from typing import Any

import orjson

from .base import StoreBase

#: journal entries per saved page: encoded one page at a time, the event loop runs between pages
JOURNAL_PAGE = 500


class StateRows(StoreBase):
    """The tables `emulator_state`, `tenant_scenarios`, `journal_pages` and `journal_forgotten`
    (`latest_instant` also reads the times of every other table)."""

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
        """Add journal entries (time, method, path, query, status, tenant, request id) as
        pages of up to `JOURNAL_PAGE`, and drop the oldest pages the last `keep` entries do not
        reach into."""
        if not entries:
            return
        async with self._write() as db:
            # page by page: a second of live load is thousands of entries, and encoding them
            # at once held the event loop for milliseconds; it runs between pages now
            for at in range(0, len(entries), JOURNAL_PAGE):
                page = list(entries[at : at + JOURNAL_PAGE])
                await db.execute(
                    "INSERT INTO journal_pages (count, last_time, entries) VALUES (?, ?, ?)",
                    # plain tuples of str, bytes, int, float, None
                    (len(page), max(e[0] for e in page), marshal.dumps(page)),
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
