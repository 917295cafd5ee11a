"""The database's tables, the schema version, and the adoption of older databases."""

from __future__ import annotations

import marshal

import aiosqlite

SCHEMA_VERSION = 2
PAGE_SIZE = 65536

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


async def adopt_journal_rows(db: aiosqlite.Connection) -> None:
    """A database from before journal pages keeps its entries a row each in `journal`: they
    become the first page, and the old table goes."""
    async with db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'journal'"
    ) as cursor:
        if not await cursor.fetchall():
            return
    async with db.execute(
        "SELECT time, method, path, query, status, tenant_id, request_id FROM journal ORDER BY seq"
    ) as cursor:
        rows = [(r[0], r[1], r[2], bytes(r[3]), *r[4:]) for r in await cursor.fetchall()]
    if rows:
        await db.execute(
            "INSERT INTO journal_pages (count, last_time, entries) VALUES (?, ?, ?)",
            (len(rows), max(r[0] for r in rows), marshal.dumps(rows)),
        )
    await db.execute("DROP TABLE journal")
