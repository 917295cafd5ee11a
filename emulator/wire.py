"""Wire shapes of the native API, in one place: envelopes, pagination, models, files, batches,
webhooks, their events and deliveries, and the sink's items.

An assumption about the real service's shapes (see the README's assumptions table) is corrected by
editing this module alone. Inference response bodies are built by `emulator.inference.engine`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson

from emulator.clock import iso, iso_or_none
from emulator.errors import EmulatorError, ValidationError
from emulator.records import BatchRecord, DeliveryRecord, FileRecord, Model, WebhookRecord
from emulator.schema import (
    Components,
    Param,
    Schema,
    array,
    boolean,
    const,
    enum,
    instant,
    integer,
    mapping,
    nullable,
    obj,
    string,
)
from emulator.status import BatchStatus

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_SEQ = 2**63 - 1  # SQLite's largest integer
_MONEY = Decimal("0.000001")
_FRACTION = Decimal("0.01")

#: the named schemas of this module's shapes, each declared beside the function that builds it
COMPONENTS = Components()


# --- envelopes -----------------------------------------------------------------------------------


def ok(data: Any) -> dict[str, Any]:
    return {"status": "ok", "data": data}


def page(items: Sequence[Any], has_more: bool, next_cursor: str | None) -> dict[str, Any]:
    return {
        "status": "ok",
        "data": {"items": list(items)},
        "pagination": {"has_more": has_more, "next_cursor": next_cursor},
    }


def seq_page(items: Sequence[Any], rows: Sequence[Any], has_more: bool) -> dict[str, Any]:
    """A page of stored `rows` (newest first, each with a `seq`) rendered as `items`: the next
    cursor points below the last row shown."""
    cursor = encode_cursor(rows[-1].seq) if has_more and rows else None
    return page(items, has_more, cursor)


def error(err: EmulatorError, request_id: str) -> dict[str, Any]:
    return {"status": "error", "error": err.to_dict(), "meta": {"request_id": request_id}}


def ok_of(data: Schema) -> Schema:
    """The schema of `ok(data)`."""
    return obj({"status": const("ok"), "data": data})


PAGINATION = COMPONENTS.add(
    "Pagination",
    obj({"has_more": boolean(), "next_cursor": nullable(string("the next page's `cursor`"))}),
)


def page_of(item: Schema) -> Schema:
    """The schema of `page(items, ...)`."""
    return obj(
        {"status": const("ok"), "data": obj({"items": array(item)}), "pagination": PAGINATION}
    )


def items_of(item: Schema) -> Schema:
    """The schema of `{"items": [...]}`, a whole list with no pages (control routes' data)."""
    return obj({"items": array(item)})


#: one problem of an error's `details`: the field or input line it is about, and what is wrong
_DETAIL = obj({"message": string()}, {"field": string(), "line": integer(1)}, extra=True)
ERROR_OBJECT = COMPONENTS.add(
    "ErrorObject",
    obj(
        {"code": string("a ScaiGrid error code (VALIDATION_ERROR, BATCH_NOT_FOUND, ...)"),
         "message": string()},
        {"retry_after": integer(0, description="seconds to wait before retrying"),
         "details": array(_DETAIL)},
    ),
)  # fmt: skip
ERROR = COMPONENTS.add(
    "Error",
    obj({"status": const("error"), "error": ERROR_OBJECT, "meta": obj({"request_id": string()})}),
)


# --- pagination --------------------------------------------------------------------------------


LIMIT = Param(
    "limit",
    integer(1, MAX_LIMIT, default=DEFAULT_LIMIT),
    f"an integer from 1 to {MAX_LIMIT}: the page size",
)
CURSOR = Param("cursor", string(), "the `next_cursor` of the previous page")
#: the query of a plain paged list
PAGED = (LIMIT, CURSOR)
#: the query of a pre-signed link (results, an image): both are required, and checked
SIGNED = (
    Param("expires", string(pattern="^[0-9]+$"), "Unix seconds the link expires at", True),
    Param("signature", string(minLength=1), "the link's HMAC signature", True),
)


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise ValidationError(
            "Invalid limit.",
            details=[{"field": "limit", "message": f"must be an integer from 1 to {MAX_LIMIT}"}],
        )
    return value


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_cursor(raw: str | None) -> int | None:
    """The position a cursor stands for; a cursor this emulator did not issue is a 422."""
    if raw is None or raw == "":
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        kind, _, seq = text.partition(":")
        if kind == "seq" and seq.isascii() and seq.isdigit() and int(seq) <= MAX_SEQ:
            return int(seq)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ValidationError(
        "Invalid cursor.", details=[{"field": "cursor", "message": "not a cursor from this list"}]
    )


# --- resources ---------------------------------------------------------------------------------


_PRICE = string("a decimal amount of USD", pattern=r"^\d+(\.\d+)?$")
MODEL = COMPONENTS.add(
    "Model",
    obj(
        {"slug": string(), "display_name": string(), "modality": string(),
         "context_window": integer(0), "status": string(),
         "input_price_per_mtok": _PRICE, "output_price_per_mtok": _PRICE,
         "batch_discount": mapping(string(), description="completion window -> discount")},
        {"max_output_tokens": integer(1), "dimensions": integer(1), "price_per_image": _PRICE},
        extra=True,  # a catalogue entry's own fields (health_status, ...) are shown as they are
    ),
)  # fmt: skip


def model(m: Model) -> dict[str, Any]:
    out: dict[str, Any] = {
        "slug": m.slug,
        "display_name": m.display_name,
        "modality": m.modality,
        "context_window": m.context_window,
    }
    if m.max_output_tokens is not None:
        out["max_output_tokens"] = m.max_output_tokens
    if m.dimensions is not None:
        out["dimensions"] = m.dimensions
    out["status"] = m.status
    out.update(m.extra)
    out["input_price_per_mtok"] = str(m.input_price_per_mtok)
    out["output_price_per_mtok"] = str(m.output_price_per_mtok)
    if m.price_per_image is not None:
        out["price_per_image"] = str(m.price_per_image)
    out["batch_discount"] = {w: str(d) for w, d in m.batch_discount.items()}
    return out


FILE = COMPONENTS.add(
    "File",
    obj(
        {"id": string(), "object": const("file"), "filename": string(), "bytes": integer(0),
         "purpose": string(), "line_count": integer(0), "sha256": string(pattern="^[0-9a-f]{64}$"),
         "created_at": instant(), "url": string("scaigrid://file/{id}")}
    ),
)  # fmt: skip
DELETED = COMPONENTS.add(
    "Deleted",
    obj({"id": string(), "object": enum(("file", "webhook")), "deleted": const(True)}),
)


def file(f: FileRecord) -> dict[str, Any]:
    return {
        "id": f.id,
        "object": "file",
        "filename": f.filename,
        "bytes": f.bytes,
        "purpose": f.purpose,
        "line_count": f.line_count,
        "sha256": f.sha256,
        "created_at": iso(f.created_at),
        "url": f"scaigrid://file/{f.id}",
    }


_TOKENS = obj({"input_tokens": integer(0), "output_tokens": integer(0),
               "total_tokens": integer(0)})  # fmt: skip
_MONEY_TEXT = string(pattern=r"^\d+\.\d{6}$")
COST = obj(
    {"currency": const("USD"), "live": _MONEY_TEXT, "discount": string(), "amount": _MONEY_TEXT}
)
#: a batch's metadata: at most this many keys, key length, value length (as OpenAI's)
METADATA_LIMITS = (16, 64, 512)
METADATA = mapping(
    string(maxLength=METADATA_LIMITS[2]),
    maxProperties=METADATA_LIMITS[0],
    propertyNames={"maxLength": METADATA_LIMITS[1]},
)
BATCH = COMPONENTS.add(
    "Batch",
    obj(
        {"id": string(pattern="^batch_"), "object": const("batch"),
         "status": enum(s.value for s in BatchStatus),
         "endpoint_completion_window": string(), "input_file_url": nullable(string()),
         "input_file_id": nullable(string()), "metadata": METADATA,
         "total_count": integer(0), "completed_count": integer(0), "failed_count": integer(0),
         "created_at": instant(), "started_at": nullable(instant()),
         "completed_at": nullable(instant()), "cancelled_at": nullable(instant()),
         "failed_at": nullable(instant()), "expires_at": instant(),
         "error": nullable(ERROR_OBJECT), "results_url": nullable(string(format="uri")),
         "results_expires_at": nullable(instant()), "usage": _TOKENS, "cost": COST}
    ),
)  # fmt: skip


def batch(
    b: BatchRecord, results_url: str | None, results_expires_at: float | None
) -> dict[str, Any]:
    return {
        "id": b.id,
        "object": "batch",
        "status": b.status,
        "endpoint_completion_window": b.completion_window,
        "input_file_url": b.input_file_url,
        "input_file_id": b.input_file_id,
        "metadata": b.metadata,
        "total_count": b.total_count,
        "completed_count": b.completed_count,
        "failed_count": b.failed_count,
        "created_at": iso(b.created_at),
        "started_at": iso_or_none(b.started_at),
        "completed_at": iso_or_none(b.completed_at),
        "cancelled_at": iso_or_none(b.cancelled_at),
        "failed_at": iso_or_none(b.failed_at),
        "expires_at": iso(b.expires_at),
        "error": b.error,
        "results_url": results_url,
        "results_expires_at": iso_or_none(results_expires_at),
        "usage": {
            "input_tokens": b.input_tokens,
            "output_tokens": b.output_tokens,
            "total_tokens": b.input_tokens + b.output_tokens,
        },
        "cost": cost(b),
    }


def cost(b: BatchRecord) -> dict[str, str]:
    """Live cost, the discount actually applied, and the amount charged (Decimal, 6 places)."""
    discount = b.extra.get("discount", "0.50")
    if b.cost_live > 0:
        discount = str(((b.cost_live - b.cost_amount) / b.cost_live).quantize(_FRACTION))
    return {
        "currency": "USD",
        "live": str(b.cost_live.quantize(_MONEY)),
        "discount": discount,
        "amount": str(b.cost_amount.quantize(_MONEY)),
    }


def result_line(custom_id: str, ok_: bool, payload: bytes) -> bytes:
    """One line of the results file; `payload` is already JSON, so no re-encoding is needed."""
    key = b'","status":"ok","response":' if ok_ else b'","status":"error","error":'
    return b'{"custom_id":"' + orjson.dumps(custom_id)[1:-1] + key + payload + b"}\n"


#: a page of batch lines (the control plane's view of a batch) holds at most this many
MAX_LINES = 500
#: what a batch line's `status` may be, and the lines query filters by
LINE_STATUSES = ("ok", "error", "pending")

BATCH_LINE = COMPONENTS.add(
    "BatchLine",
    obj(
        {"index": integer(0), "line": integer(1), "custom_id": string(), "url": string(),
         "body": {}, "status": enum(LINE_STATUSES)},
        {"response": {}, "error": {}},
    ),
)  # fmt: skip
BATCH_LINES = COMPONENTS.add(
    "BatchLines",
    obj(
        {"batch_id": string(), "total_count": integer(0), "offset": integer(0),
         "limit": integer(1), "status": nullable(enum(LINE_STATUSES)),
         "next_offset": nullable(integer(0)), "items": array(BATCH_LINE)}
    ),
)  # fmt: skip


def batch_line(
    idx: int,
    line: int,
    custom_id: str,
    url: str,
    raw: bytes,
    ok: bool | None,
    payload: bytes | None,
) -> dict[str, Any]:
    """One request of a batch as the control plane shows it: where it stood in the input, its
    body, and its result (`response` or `error`) once it has one."""
    status = "pending" if ok is None else "ok" if ok else "error"
    out: dict[str, Any] = {"index": idx, "line": line, "custom_id": custom_id, "url": url,
                           "body": orjson.loads(raw).get("body"), "status": status}  # fmt: skip
    if payload is not None:
        out["response" if ok else "error"] = orjson.Fragment(payload)
    return out


# --- webhooks ----------------------------------------------------------------------------------


WEBHOOK = COMPONENTS.add(
    "Webhook",
    obj(
        {"id": string(pattern="^wh_"), "object": const("webhook"), "url": string(format="uri"),
         "events": array(string()), "status": string(), "max_retries": integer(0),
         "consecutive_failures": integer(0), "disabled_at": nullable(instant()),
         "created_at": instant(), "updated_at": instant()}
    ),
)  # fmt: skip


def webhook(w: WebhookRecord) -> dict[str, Any]:
    """A webhook as its owner sees it: never its secret (write-only)."""
    return {
        "id": w.id,
        "object": "webhook",
        "url": w.url,
        "events": list(w.events),
        "status": w.status,
        "max_retries": w.max_retries,
        "consecutive_failures": w.consecutive_failures,
        "disabled_at": iso_or_none(w.disabled_at),
        "created_at": iso(w.created_at),
        "updated_at": iso(w.updated_at),
    }


DELIVERY = COMPONENTS.add(
    "Delivery",
    obj(
        {"id": string(pattern="^del_"), "object": const("webhook_delivery"),
         "webhook_id": string(), "event_id": string(), "event_type": string(),
         "status": string(), "attempts": integer(0), "status_code": nullable(integer()),
         "error_message": nullable(string()), "duration_ms": nullable(integer(0)),
         "created_at": instant(), "last_attempt_at": nullable(instant()),
         "next_attempt_at": nullable(instant())}
    ),
)  # fmt: skip


def delivery(d: DeliveryRecord) -> dict[str, Any]:
    return {
        "id": d.id,
        "object": "webhook_delivery",
        "webhook_id": d.webhook_id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "status_code": d.status_code,
        "error_message": d.error_message,
        "duration_ms": d.duration_ms,
        "created_at": iso(d.created_at),
        "last_attempt_at": iso_or_none(d.last_attempt_at),
        "next_attempt_at": iso_or_none(d.next_attempt_at),
    }


TEST_DELIVERY = COMPONENTS.add(
    "TestDelivery",
    obj({"delivery_id": string(), "status_code": nullable(integer()),
         "duration_ms": nullable(integer(0)), "error": nullable(string())}),
)  # fmt: skip


def test_delivery(d: DeliveryRecord) -> dict[str, Any]:
    """The answer of `POST /v1/webhooks/{id}/test`, as ScaiGrid documents it."""
    return {
        "delivery_id": d.id,
        "status_code": d.status_code,
        "duration_ms": d.duration_ms,
        "error": d.error_message,
    }


def event(
    event_type: str,
    event_id: str,
    source: str,
    tenant_id: str,
    partner_id: str,
    payload: dict[str, Any],
    at: float,
) -> bytes:
    """An event envelope, as the exact bytes every attempt sends and signs."""
    return orjson.dumps(
        {
            "event_type": event_type,
            "event_id": event_id,
            "source": source,
            "tenant_id": tenant_id,
            "partner_id": partner_id,
            "payload": payload,
            "timestamp": iso(at),
        }
    )


def batch_event_payload(
    b: BatchRecord, results_url: str | None, results_expires_at: float | None
) -> dict[str, Any]:
    return {
        "batch_id": b.id,
        "status": b.status,
        "total_count": b.total_count,
        "completed_count": b.completed_count,
        "failed_count": b.failed_count,
        "results_url": results_url,
        "results_expires_at": iso_or_none(results_expires_at),
        "metadata": b.metadata,
        "error": b.error,
    }


SINK_ITEM = COMPONENTS.add(
    "SinkItem",
    obj({"received_at": instant(), "headers": mapping(string()), "body": string(),
         "status": integer(100, 599)}),
)  # fmt: skip
SINK_ACK = obj({"received": const(True)})


def sink_item(
    received_at: float, headers: dict[str, str], body: str, status: int
) -> dict[str, Any]:
    """One post the built-in receiver got; `body` is the raw text, `status` what it answered."""
    return {"received_at": iso(received_at), "headers": headers, "body": body, "status": status}
