"""Wire shapes of the native API, in one place: envelopes, pagination, models, files, batches,
webhooks, their events and deliveries, and the sink's items.

An assumption about the real service's shapes (see the README's assumptions table) is corrected by
editing this module alone. Inference response bodies are built by `emulator.inference.engine`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from emulator.clock import iso, iso_or_none
from emulator.errors import EmulatorError, ValidationError
from emulator.records import BatchRecord, DeliveryRecord, FileRecord, Model, WebhookRecord

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_SEQ = 2**63 - 1  # SQLite's largest integer
_MONEY = Decimal("0.000001")
_FRACTION = Decimal("0.01")


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


# --- pagination --------------------------------------------------------------------------------


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


def sink_item(
    received_at: float, headers: dict[str, str], body: str, status: int
) -> dict[str, Any]:
    """One post the built-in receiver got; `body` is the raw text, `status` what it answered."""
    return {"received_at": iso(received_at), "headers": headers, "body": body, "status": status}


# --- control-plane bodies ------------------------------------------------------------------------
# Every body a control route takes, as a table: its keys, each key's JSON type, and which keys
# exclude each other. A key not in the table, a null, or a value of another type is a 422 that
# names the key, so a misspelling is never read as "not given" (a reset never widens to "all").


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a control body: the JSON types it takes and how the error describes them."""

    types: tuple[type, ...]
    expected: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Body:
    """The keys a control route's body may have; `one_of`: at most one of them (exactly one
    with `need_one`)."""

    keys: dict[str, Key]
    one_of: tuple[str, ...] = ()
    need_one: bool = False


_STR = (str,)
_NUMBER = (int, float)
_AMOUNT = Key(_NUMBER, "a number")

CONTROL_BODIES: dict[str, Body] = {
    "reset": Body(
        {
            "tenant_id": Key(_STR, "a tenant id string"),
            "api_key": Key(_STR, "an sgk_ key string"),
            "tenant_ids": Key((list,), "an array of tenant id strings"),
            "clock": Key(_STR, "an ISO-8601 instant string"),
        },
        one_of=("tenant_id", "api_key", "tenant_ids"),
    ),
    "clock": Body(
        {
            "mode": Key(_STR, "one of real, scaled, frozen"),
            "scale": Key(_NUMBER, "a number > 0"),
            "start": Key(_STR, "an ISO-8601 instant string"),
        }
    ),
    "clock/advance": Body({"seconds": _AMOUNT, "minutes": _AMOUNT, "hours": _AMOUNT}),
    "seed": Body({"seed": Key((int,), "an integer", required=True)}),
    "scenario": Body(
        {
            "name": Key(_STR, "a bundled scenario name or a .yaml file path"),
            "yaml": Key(_STR, "scenario YAML text"),
        },
        one_of=("name", "yaml"),
        need_one=True,
    ),
    "tenants/{tenant}/batches/{batch_id}/cancel": Body({}),
}

#: the query parameters of the control routes that read with filters
CONTROL_QUERIES: dict[str, frozenset[str]] = {
    "journal": frozenset({"method", "path", "status", "tenant_id", "since", "until", "limit"}),
    "verdict": frozenset({"tenant_id", "min_poll_interval", "rate_limit"}),
    "state": frozenset({"tenant_id"}),
    "tenants/{tenant}/batches/{batch_id}/lines": frozenset({"offset", "limit", "status"}),
    "tenants/{tenant}/webhooks/{webhook_id}/deliveries": frozenset({"status", "limit"}),
    "changes": frozenset(),
}

_JSON_TYPES = {
    bool: "a boolean", int: "a number", float: "a number", str: "a string",
    list: "an array", dict: "an object", type(None): "null",
}  # fmt: skip


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _is(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def control_body(route: str, body: dict[str, Any]) -> dict[str, Any]:
    """`body` if it is exactly what the control route `route` takes; else a 422 naming every
    key that is unknown, missing or of the wrong type."""
    shape = CONTROL_BODIES[route]
    known = ", ".join(shape.keys) or "none"
    problems: list[dict[str, Any]] = []
    for name in body:
        if name not in shape.keys:
            problems.append({"field": name, "message": f"unknown key (known keys: {known})"})
    for name, key in shape.keys.items():
        if name in body:
            if not _is(body[name], key.types):
                got = _json_type(body[name])
                problems.append({"field": name, "message": f"must be {key.expected}, got {got}"})
        elif key.required:
            problems.append({"field": name, "message": f"is required ({key.expected})"})
    given = [name for name in shape.one_of if name in body]
    if len(given) > 1:
        problems.append(
            {"field": given[1], "message": f"give only one of {', '.join(shape.one_of)}"}
        )
    elif shape.need_one and not given and not problems:
        problems.append(
            {"field": shape.one_of[0], "message": f"give one of {', '.join(shape.one_of)}"}
        )
    if problems:
        raise _invalid_keys(f"/_emulator/{route} body", problems)
    return body


def control_query(route: str, params: Sequence[str]) -> None:
    """A 422 naming every query parameter the control route `route` does not know."""
    allowed = CONTROL_QUERIES[route]
    known = ", ".join(sorted(allowed))
    problems: list[dict[str, Any]] = [
        {"field": name, "message": f"unknown query parameter (known: {known})"}
        for name in params
        if name not in allowed
    ]
    if problems:
        raise _invalid_keys(f"/_emulator/{route} query", problems)


def _invalid_keys(where: str, problems: list[dict[str, Any]]) -> ValidationError:
    listed = "; ".join(f"'{p['field']}' {p['message']}" for p in problems)
    return ValidationError(f"Invalid {where}: {listed}.", details=problems)
