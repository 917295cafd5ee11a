"""What the checks expect, as the emulator writes it (`wire`, `errors`, `status`, `windows`), and
the small readers that compare an answer with it."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from emulator import wire
from emulator.clock import parse_instant
from emulator.conformance.probe import Mismatch, Probe, need
from emulator.records import BatchRecord, DeliveryRecord, FileRecord, WebhookRecord
from emulator.windows import DEFAULT_WINDOW

# --- the shapes, as the emulator writes them ------------------------------------------------------

_BATCH = wire.batch(
    BatchRecord(0, "batch_", "", "pending", DEFAULT_WINDOW, "", "", {}, 0, 0.0, 0.0), None, None
)
BATCH_KEYS = frozenset(_BATCH)
USAGE_KEYS = frozenset(_BATCH["usage"])
COST_KEYS = frozenset(_BATCH["cost"])
FILE_KEYS = frozenset(wire.file(FileRecord(0, "file-", "", "", "batch", 0, 0, "", 0.0)))
WEBHOOK_KEYS = frozenset(wire.webhook(WebhookRecord(0, "wh_", "", "", "", [], "")))
TEST_ANSWER_KEYS = frozenset(wire.test_delivery(DeliveryRecord(0, "del_", 0, 0, 0.0)))
EVENT_KEYS = frozenset(orjson.loads(wire.event("", "", "", "", "", {}, 0.0)))
RESULT_OK_KEYS = frozenset(orjson.loads(wire.result_line("x", True, b"{}")))
RESULT_ERROR_KEYS = frozenset(orjson.loads(wire.result_line("x", False, b"{}")))
RATE_LIMIT_HEADERS = ("x-scaigrid-ratelimit-limit", "x-scaigrid-ratelimit-remaining",
                      "x-scaigrid-ratelimit-reset")  # fmt: skip
#: the id prefixes the README's table states
PREFIX = {"batch": "batch_", "file": "file-", "webhook": "wh_", "delivery": "del_"}
TEST_EVENT = "webhook.test"
#: ids no account has: the not-found checks read them
MISSING = {kind: f"{prefix}conformance0missing" for kind, prefix in PREFIX.items()}
#: a key that is not well formed: refused by any ScaiGrid, the emulator's open mode included
BAD_KEY = "sgk_not-a-valid-key"
METADATA = {"purpose": "scaigrid-emulator conformance"}


def one_line(custom_id: str, model: str) -> bytes:
    """One cheap request: a chat of a few tokens."""
    body = {"model": model, "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 5}
    return orjson.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/inference/chat", "body": body}
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- small readers --------------------------------------------------------------------------------


def instant(obj: Any, name: str, where: str, nullable: bool = False) -> str | None:
    value: str | None = need(obj, name, (str, type(None)) if nullable else str, where)
    if value is not None:
        try:
            if not value.endswith("Z"):
                raise ValueError
            parse_instant(value)
        except ValueError:
            expected = f"{where}.{name} an ISO-8601 UTC instant ending in Z"
            raise Mismatch(expected, repr(value)) from None
    return value


def decimal_of(obj: Any, name: str, where: str) -> Decimal:
    value = need(obj, name, str, where)
    try:
        return Decimal(value)
    except InvalidOperation:
        raise Mismatch(f"{where}.{name} a decimal string", repr(value)) from None


def prefixed(obj: Any, name: str, kind: str, where: str) -> str:
    value: str = need(obj, name, str, where)
    if not value.startswith(PREFIX[kind]):
        raise Mismatch(f"{where}.{name} starting {PREFIX[kind]}", repr(value))
    return value


def equal(what: str, expected: Any, got: Any) -> None:
    if expected != got:
        raise Mismatch(f"{what} {expected!r}", repr(got)[:120])


async def once(p: Probe, key: str, what: str, make: Callable[[Probe], Awaitable[Any]]) -> Any:
    """What `make` gives, made once per run; a failure is remembered and told to every check
    that needs it."""
    if key not in p.shared:
        try:
            p.shared[key] = await make(p)
        except Mismatch as exc:
            p.shared[key] = Mismatch(f"{what}: {exc.expected}", exc.got)
    value = p.shared[key]
    if isinstance(value, Exception):
        raise value
    return value
