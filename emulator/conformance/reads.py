"""The read-only checks: GET requests only, on the models, the lists, ids that do not exist and a
malformed key."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import quote

from emulator import errors, wire
from emulator.conformance.probe import (
    OK_KEYS,
    PAGINATION_KEYS,
    REQUEST_ID_PREFIX,
    Mismatch,
    Probe,
    Skipped,
    body_of,
    error_of,
    keys,
    need,
    ok_data,
    page_of,
    same_keys,
)
from emulator.conformance.shapes import BAD_KEY, MISSING, RATE_LIMIT_HEADERS, decimal_of, equal
from emulator.inference.catalogue import MODALITIES, STATUSES
from emulator.windows import WINDOWS

# --- read-only checks -----------------------------------------------------------------------------


async def _first_slug(p: Probe) -> str:
    items, _ = page_of(await p.get("/v1/models", params={"limit": 1}))
    if not items:
        raise Skipped("the key sees no model")
    slug: str = need(items[0], "slug", str, "data.items[0]")
    return slug


async def envelope(p: Probe) -> str:
    slug = await _first_slug(p)
    data = ok_data(await p.get(f"/v1/models/{quote(slug, safe='')}"))
    need(data, "slug", str, "data")
    resp = await p.get("/v1/models/conformance%2Fno-such-model")
    error_of(resp, errors.ModelNotFound)
    return f"success {keys(OK_KEYS)}, list and error envelopes on /v1/models"


async def auth_codes(p: Probe) -> str:
    error_of(await p.get("/v1/models", auth=False), errors.AuthTokenMissing)
    bad = {"Authorization": f"Bearer {BAD_KEY}"}
    error_of(await p.get("/v1/models", headers=bad), errors.AuthTokenInvalid)
    return "no key: 401 AUTH_TOKEN_MISSING; a malformed key: 401 AUTH_TOKEN_INVALID"


def _request_id(resp: Any, target: str) -> str:
    header: str | None = resp.headers.get("x-request-id")
    if not header or not header.startswith(REQUEST_ID_PREFIX):
        expected = f"an X-Request-ID header {REQUEST_ID_PREFIX}... on GET {target}"
        raise Mismatch(expected, repr(header))
    return header


async def request_id_header(p: Probe) -> str:
    _request_id(await p.get("/v1/models"), "/v1/models")
    target = f"/v1/inference/batch/{MISSING['batch']}"
    resp = await p.get(target)
    header = _request_id(resp, target)
    body = body_of(resp)
    meta = body.get("meta") if isinstance(body, dict) else None
    request_id = meta.get("request_id") if isinstance(meta, dict) else None
    equal("meta.request_id equal to X-Request-ID", header, request_id)
    return "X-Request-ID on a success and an error, equal to meta.request_id"


#: (target, the error it must answer)
NOT_FOUND: tuple[tuple[str, type[errors.EmulatorError]], ...] = (
    (f"/v1/inference/batch/{MISSING['batch']}", errors.BatchNotFound),
    (f"/v1/files/{MISSING['file']}", errors.FileNotFound),
    (f"/v1/webhooks/{MISSING['webhook']}", errors.WebhookNotFound),
    ("/v1/models/conformance%2Fno-such-model", errors.ModelNotFound),
    ("/v1/conformance-no-such-route", errors.RouteNotFound),
)


async def not_found_codes(p: Probe) -> str:
    for target, err in NOT_FOUND:
        error_of(await p.get(target), err)
    return ", ".join(f"{err.status} {err.code}" for _, err in NOT_FOUND)


def _pagination(pagination: dict[str, Any], where: str) -> tuple[bool, str | None]:
    same_keys(pagination, PAGINATION_KEYS, where)
    has_more: bool = need(pagination, "has_more", bool, where)
    cursor: str | None = need(pagination, "next_cursor", (str, type(None)), where)
    if has_more and cursor is None:
        raise Mismatch(f"{where}.next_cursor a string when has_more", "null")
    return has_more, cursor


async def pagination(p: Probe) -> str:
    items, page = page_of(await p.get("/v1/models"))
    more, _ = _pagination(page, "pagination")
    if len(items) > wire.DEFAULT_LIMIT or (more and len(items) != wire.DEFAULT_LIMIT):
        raise Mismatch(f"a default page of {wire.DEFAULT_LIMIT} items", f"{len(items)} items")
    first, page = page_of(await p.get("/v1/models", params={"limit": 1}))
    more, cursor = _pagination(page, "pagination")
    if len(first) > 1:
        raise Mismatch("at most 1 item with limit=1", f"{len(first)} items")
    followed = "no second page"
    if more:
        second, page = page_of(await p.get("/v1/models", params={"limit": 1, "cursor": cursor}))
        _pagination(page, "pagination")
        if not second or second[0] == first[0]:
            raise Mismatch("the next model after following next_cursor", repr(second)[:120])
        followed = "next_cursor leads to the next model"
    for target in ("/v1/inference/batch", "/v1/webhooks"):
        _pagination(page_of(await p.get(target, params={"limit": 1}))[1], f"{target} pagination")
    return (
        f"data.items and pagination {{has_more, next_cursor}} on models, batches and webhooks; "
        f"default limit {wire.DEFAULT_LIMIT}; {followed}"
    )


async def _models(p: Probe) -> list[Any]:
    items, _ = page_of(await p.get("/v1/models", params={"limit": wire.MAX_LIMIT}))
    if not items:
        raise Skipped("the key sees no model")
    return items


async def model_object(p: Probe) -> str:
    items = await _models(p)
    for i, item in enumerate(items):
        where = f"model {item.get('slug', i) if isinstance(item, dict) else i}"
        need(item, "slug", str, where)
        need(item, "display_name", str, where)
        if need(item, "modality", str, where) not in MODALITIES:
            raise Mismatch(f"{where}.modality one of {', '.join(MODALITIES)}", item["modality"])
        if need(item, "status", str, where) not in STATUSES:
            raise Mismatch(f"{where}.status one of {', '.join(STATUSES)}", item["status"])
        need(item, "context_window", int, where)
        for optional in ("max_output_tokens", "dimensions"):
            if optional in item:
                need(item, optional, int, where)
    return f"{len(items)} models: slug, display_name, modality, status, context_window typed"


async def pricing(p: Probe) -> str:
    items = await _models(p)
    for item in items:
        where = f"model {item.get('slug')}"
        decimal_of(item, "input_price_per_mtok", where)
        decimal_of(item, "output_price_per_mtok", where)
        discounts = need(item, "batch_discount", dict, where)
        same_keys(discounts, frozenset(WINDOWS), f"{where}.batch_discount")
        for window in WINDOWS:
            if not Decimal(0) <= decimal_of(discounts, window, f"{where}.batch_discount") < 1:
                raise Mismatch(f"{where}.batch_discount.{window} in [0, 1)", discounts[window])
    windows = keys(set(WINDOWS))
    return f"{len(items)} models: decimal-string prices, batch_discount per window {windows}"


async def rate_limit_headers(p: Probe) -> str:
    resp = await p.get("/v1/models")
    sent = {name: resp.headers.get(name) for name in RATE_LIMIT_HEADERS}
    if not any(sent.values()):
        return "no X-Scaigrid-Ratelimit-* headers on a success (ScaiGrid documents them on a 429)"
    if not all(v and v.isdigit() for v in sent.values()):
        raise Mismatch("all three X-Scaigrid-Ratelimit-* headers, integers", repr(sent))
    limit, remaining, reset = (int(v or 0) for v in sent.values())
    if remaining > limit or reset < 1_000_000_000:
        raise Mismatch("Remaining <= Limit and Reset a Unix time", repr(sent))
    return f"Limit {limit}, Remaining {remaining}, Reset {reset}"
