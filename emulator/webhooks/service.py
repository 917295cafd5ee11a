"""Webhooks: register, list, read, update, delete, test, and the deliveries of one.

Each tenant sees only its own webhooks: another tenant's is `WEBHOOK_NOT_FOUND`, as if it did not
exist. The secret is write-only: it is stored (the sender signs with it after a restart) and
never shown.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from emulator.clock import Clock, parse_instant
from emulator.errors import ValidationError, WebhookNotFound
from emulator.ids import Ids
from emulator.records import DeliveryRecord, WebhookRecord
from emulator.schema import Schema, array, enum, integer, nullable, obj, string
from emulator.store import Store
from emulator.tenancy import Principal
from emulator.webhooks import policy
from emulator.webhooks.events import DEFAULT_EVENTS, EVENT_TYPES
from emulator.webhooks.sender import Sender

STATUSES = ("active", "inactive")
MAX_URL = 2048
MAX_SECRET = 512


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError(
        f"Invalid {field}: {message}.", details=[{"field": field, "message": message}]
    )


#: what RFC 3986 lets a URI hold (its reserved and unreserved characters, and %-escapes): no
#: spaces, controls or non-ASCII letters, which a sender would have to guess how to encode
_URI_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")


def check_url(value: Any) -> str:
    """http(s) with a host. `http://` is allowed: receivers under test are usually local."""
    if not isinstance(value, str) or len(value) > MAX_URL:
        raise _invalid("url", f"must be a string of at most {MAX_URL} characters")
    if not _URI_CHARACTERS.fullmatch(value):
        raise _invalid("url", "has characters a URL cannot (an international host: its xn-- form)")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise _invalid("url", "is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid("url", "must be an http:// or https:// URL with a host")
    return value


def check_events(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _invalid("events", "must be a non-empty list of event types")
    for i, name in enumerate(value):
        if not isinstance(name, str) or name not in EVENT_TYPES:  # (unhashable: a TypeError)
            raise ValidationError(
                f"Unknown event type {name!r}.",
                details=[
                    {"field": f"events[{i}]", "message": f"must be one of {', '.join(EVENT_TYPES)}"}
                ],
            )
    return list(dict.fromkeys(value))


def check_secret(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_SECRET:
        raise _invalid("secret", f"must be a non-empty string of at most {MAX_SECRET} characters")
    return value


def check_status(value: Any) -> str:
    if value not in STATUSES:
        raise _invalid("status", f"must be one of {', '.join(STATUSES)}")
    return str(value)


def check_max_retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        value = -1
    if not 0 <= value <= policy.MAX_RETRIES:
        raise _invalid("max_retries", f"must be an integer from 0 to {policy.MAX_RETRIES}")
    return int(value)


#: field -> its check and its JSON Schema; the fields a create or an update may give
FIELDS: dict[str, tuple[Callable[[Any], Any], Schema]] = {
    "url": (check_url, string(format="uri", pattern="^https?://", maxLength=MAX_URL)),
    "events": (check_events, array(enum(EVENT_TYPES), minItems=1)),
    "secret": (check_secret, string(minLength=1, maxLength=MAX_SECRET)),
    "status": (check_status, enum(STATUSES)),
    "max_retries": (check_max_retries, integer(0, policy.MAX_RETRIES)),
}
#: what a create must give
REQUIRED = ("url", "secret")


def check_body(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise _invalid(unknown[0], "is not a webhook field")
    if creating:
        for required in REQUIRED:
            if body.get(required) is None:
                raise _invalid(required, "is required")
    return {
        name: check(body[name]) for name, (check, _) in FIELDS.items() if body.get(name) is not None
    }


def body_schema(*, creating: bool) -> Schema:
    """The JSON Schema of a create (or update) body: a null is the same as leaving a field out."""
    needed = REQUIRED if creating else ()
    return obj(
        {name: FIELDS[name][1] for name in needed},
        {name: nullable(schema) for name, (_, schema) in FIELDS.items() if name not in needed},
    )


class Webhooks:
    def __init__(self, store: Store, clock: Clock, ids: Ids, sender: Sender) -> None:
        self.store, self.clock, self.ids, self.sender = store, clock, ids, sender
        self._seq = itertools.count(1)

    async def start(self) -> None:
        webhooks, _, _ = await self.store.webhook_max_seqs()
        self._seq = itertools.count(webhooks + 1)

    def reset_sequence(self) -> None:
        self._seq = itertools.count(1)

    async def create(self, principal: Principal, body: dict[str, Any]) -> WebhookRecord:
        given = check_body(body, creating=True)
        webhook_id = await self.ids.mint("wh_", "webhook", principal.tenant_id)
        seq, now = next(self._seq), self.clock.now()
        w = WebhookRecord(
            seq=seq,
            id=webhook_id,
            tenant_id=principal.tenant_id,
            partner_id=principal.partner_id,
            url=given["url"],
            events=given.get("events", list(DEFAULT_EVENTS)),
            secret=given["secret"],
            status=given.get("status", "active"),
            max_retries=given.get("max_retries", policy.DEFAULT_MAX_RETRIES),
            created_at=now,
            updated_at=now,
        )
        await self.store.insert_webhook(w)
        return w

    async def get(self, tenant_id: str, webhook_id: str) -> WebhookRecord:
        found = await self.store.get_webhook(tenant_id, webhook_id)
        if found is None:
            raise WebhookNotFound(f"Webhook '{webhook_id}' not found.")
        return found

    async def list_webhooks(
        self, tenant_id: str, limit: int, before_seq: int | None
    ) -> tuple[list[WebhookRecord], bool]:
        rows = await self.store.list_webhooks(tenant_id, limit + 1, before_seq)
        return rows[:limit], len(rows) > limit

    async def update(self, tenant_id: str, webhook_id: str, body: dict[str, Any]) -> WebhookRecord:
        w = await self.get(tenant_id, webhook_id)
        given = check_body(body, creating=False)
        for name, value in given.items():
            setattr(w, name, value)
        changed = [*given, "updated_at"]
        w.updated_at = self.clock.now()
        if given.get("status") == "active":  # re-enabled: a fresh start
            w.consecutive_failures, w.disabled_at = 0, None
            changed += ["consecutive_failures", "disabled_at"]
        await self.store.update_webhook(w, changed)
        self.sender.kick()  # held deliveries of a re-enabled webhook may be due
        return w

    async def delete(self, tenant_id: str, webhook_id: str) -> WebhookRecord:
        """Gone at once, with its in-flight deliveries."""
        w = await self.get(tenant_id, webhook_id)
        await self.store.delete_webhook(w)
        return w

    async def test(self, tenant_id: str, webhook_id: str) -> DeliveryRecord:
        return await self.sender.send_test(await self.get(tenant_id, webhook_id))

    async def deliveries(
        self,
        tenant_id: str,
        webhook_id: str,
        *,
        limit: int,
        before_seq: int | None,
        status: str | None,
        since: str | None,
    ) -> tuple[list[DeliveryRecord], bool]:
        w = await self.get(tenant_id, webhook_id)
        if status is not None and status not in policy.DELIVERY_STATUSES:
            raise _invalid("status", f"must be one of {', '.join(policy.DELIVERY_STATUSES)}")
        rows = await self.store.list_deliveries(
            w.seq, limit + 1, before_seq, status, _instant("since", since)
        )
        return rows[:limit], len(rows) > limit


def _instant(field: str, raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return parse_instant(raw).timestamp()
    except ValueError:
        raise _invalid(field, "must be an ISO-8601 instant") from None
