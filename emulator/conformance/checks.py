"""The checks: one per row of the README's assumptions table (named by the row's id), each a
function of a `Probe` that returns what it saw, or raises `Mismatch` with what it expected.

The expected shapes come from the emulator's own declarations (`wire`, `errors`, `status`,
`windows`, the catalogue's vocabularies), so a corrected assumption changes the check with it;
every request goes over HTTP, so the same checks run against the real service.

A check that sends anything but a GET is declared `writes`: it creates data or may cost money,
and runs only with `--allow-writes`. What it creates and can delete, it deletes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import orjson

from emulator import errors, wire
from emulator.clock import parse_instant
from emulator.conformance.probe import (
    OK_KEYS,
    PAGINATION_KEYS,
    REQUEST_ID_PREFIX,
    Mismatch,
    Probe,
    Skipped,
    body_of,
    error_of,
    expect_status,
    keys,
    need,
    ok_data,
    page_of,
    same_keys,
)
from emulator.conformance.receiver import Received, Receiver
from emulator.inference.catalogue import MODALITIES, STATUSES
from emulator.records import BatchRecord, DeliveryRecord, FileRecord, WebhookRecord
from emulator.status import TRANSITIONS, BatchStatus, is_final
from emulator.windows import DEFAULT_WINDOW, WINDOWS

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


def _line(custom_id: str, model: str) -> bytes:
    """One cheap request: a chat of a few tokens."""
    body = {"model": model, "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 5}
    return orjson.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/inference/chat", "body": body}
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- small readers --------------------------------------------------------------------------------


def _instant(obj: Any, name: str, where: str, nullable: bool = False) -> str | None:
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


def _decimal(obj: Any, name: str, where: str) -> Decimal:
    value = need(obj, name, str, where)
    try:
        return Decimal(value)
    except InvalidOperation:
        raise Mismatch(f"{where}.{name} a decimal string", repr(value)) from None


def _prefixed(obj: Any, name: str, kind: str, where: str) -> str:
    value: str = need(obj, name, str, where)
    if not value.startswith(PREFIX[kind]):
        raise Mismatch(f"{where}.{name} starting {PREFIX[kind]}", repr(value))
    return value


def _equal(what: str, expected: Any, got: Any) -> None:
    if expected != got:
        raise Mismatch(f"{what} {expected!r}", repr(got)[:120])


async def _once(p: Probe, key: str, what: str, make: Callable[[Probe], Awaitable[Any]]) -> Any:
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
    _equal("meta.request_id equal to X-Request-ID", header, request_id)
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
        _decimal(item, "input_price_per_mtok", where)
        _decimal(item, "output_price_per_mtok", where)
        discounts = need(item, "batch_discount", dict, where)
        same_keys(discounts, frozenset(WINDOWS), f"{where}.batch_discount")
        for window in WINDOWS:
            if not Decimal(0) <= _decimal(discounts, window, f"{where}.batch_discount") < 1:
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


# --- writing checks: refused requests -------------------------------------------------------------


async def error_codes(p: Probe) -> str:
    resp = await p.post(
        "/v1/inference/chat", content=b'{"model": ', headers={"Content-Type": "application/json"}
    )
    error = error_of(resp, errors.ValidationError)
    details = need(error, "details", list, "error")
    if not details or not all(isinstance(d, dict) and "message" in d for d in details):
        raise Mismatch("error.details a list of {field?, message}", repr(details)[:120])
    return "a body that is not JSON: 422 VALIDATION_ERROR with details"


async def input_choice(p: Probe) -> str:
    line = _b64(_line("conformance-1", p.options.model))
    for body in ({}, {"input_file_base64": line, "input_file_url": "scaigrid://file/file-x"}):
        error_of(await p.post("/v1/inference/batch", json=body), errors.ValidationError)
    return "neither input, and both inputs: 422 VALIDATION_ERROR"


async def inline_input(p: Probe) -> str:
    resp = await p.post("/v1/inference/batch", json={"input_file_base64": "not base64!"})
    error_of(resp, errors.ValidationError)
    return "input_file_base64 that does not decode: 422 VALIDATION_ERROR"


# --- writing checks: a file -----------------------------------------------------------------------


async def files_api(p: Probe) -> str:
    content = _line("conformance-file", p.options.model) + b"\n"
    upload = {"file": ("conformance.jsonl", content, "application/jsonl")}
    data = ok_data(await p.post("/v1/files", files=upload, data={"purpose": "batch"}))
    file_id = _prefixed(data, "id", "file", "data")
    try:
        same_keys(data, FILE_KEYS, "the file object")
        _equal("bytes", len(content), data["bytes"])
        _equal("line_count", 1, data["line_count"])
        _equal("sha256", hashlib.sha256(content).hexdigest(), data["sha256"])
        _equal("url", f"scaigrid://file/{file_id}", data["url"])
        _equal("GET /v1/files/{id}", data, ok_data(await p.get(f"/v1/files/{file_id}")))
        resp = await p.get(f"/v1/files/{file_id}/content")
        expect_status(resp, 200)
        _equal("the content", content, resp.content)
    finally:
        deleted = await p.delete(f"/v1/files/{file_id}")
    expect_status(deleted, 200)
    error_of(await p.get(f"/v1/files/{file_id}"), errors.FileNotFound)
    return f"upload, get, content and delete; object {keys(FILE_KEYS)}"


# --- writing checks: a batch, from submit to results ----------------------------------------------


async def _submit(p: Probe, custom_id: str) -> dict[str, Any]:
    body = {"input_file_base64": _b64(_line(custom_id, p.options.model)), "metadata": METADATA}
    data = ok_data(await p.post("/v1/inference/batch", json=body))
    _prefixed(data, "id", "batch", "data")
    return data  # type: ignore[no-any-return]


async def submitted(p: Probe) -> dict[str, Any]:
    batch: dict[str, Any] = await _once(
        p, "batch", "the batch these checks submit", lambda p: _submit(p, "conformance-1")
    )
    return batch


async def _wait_final(p: Probe, batch: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Poll the batch until its status is final, every `poll_interval` seconds for at most
    `timeout` (counted both as the intervals slept and as real time, so a sleep that moves an
    emulator's clock ends the wait too); the last answer and every status seen, in order."""
    seen, waited, began = [batch["status"]], 0.0, time.monotonic()
    while not is_final(_status(batch)):
        waited = max(waited + p.options.poll_interval, time.monotonic() - began)
        if waited > p.options.timeout:
            raise Mismatch(
                f"a final status within {p.options.timeout:g} s",
                f"{batch['status']} (statuses seen: {', '.join(seen)})",
            )
        await p.sleep(p.options.poll_interval)
        batch = ok_data(await p.get(f"/v1/inference/batch/{batch['id']}"))
        if batch.get("status") != seen[-1]:
            seen.append(str(batch.get("status")))
    return batch, seen


def _status(batch: Any) -> str:
    status: str = need(batch, "status", str, "the batch")
    if status not in set(BatchStatus):
        raise Mismatch(f"a status among {', '.join(BatchStatus)}", repr(status))
    return status


async def finished(p: Probe) -> tuple[dict[str, Any], list[str]]:
    async def make(p: Probe) -> tuple[dict[str, Any], list[str]]:
        return await _wait_final(p, await submitted(p))

    done: tuple[dict[str, Any], list[str]] = await _once(p, "finished", "the batch's end", make)
    return done


def _batch_fields(batch: dict[str, Any], where: str) -> None:
    same_keys(batch, BATCH_KEYS, where)
    _prefixed(batch, "id", "batch", where)
    _status(batch)
    for name in ("total_count", "completed_count", "failed_count"):
        need(batch, name, int, where)
    for name in ("created_at", "expires_at"):
        _instant(batch, name, where)
    for name in ("started_at", "completed_at", "cancelled_at", "failed_at", "results_expires_at"):
        _instant(batch, name, where, nullable=True)
    need(batch, "error", (dict, type(None)), where)
    need(batch, "results_url", (str, type(None)), where)
    usage = need(batch, "usage", dict, where)
    same_keys(usage, USAGE_KEYS, f"{where}.usage")
    for name in USAGE_KEYS:
        need(usage, name, int, f"{where}.usage")
    cost = need(batch, "cost", dict, where)
    same_keys(cost, COST_KEYS, f"{where}.cost")
    for name in COST_KEYS - {"currency"}:
        _decimal(cost, name, f"{where}.cost")


async def submit_response(p: Probe) -> str:
    batch = await submitted(p)
    return f"200 with the batch object in the envelope: {batch['id']} {batch.get('status')}"


async def batch_object(p: Probe) -> str:
    batch = await submitted(p)
    _batch_fields(batch, "the submit answer")
    _equal("endpoint_completion_window", DEFAULT_WINDOW, batch["endpoint_completion_window"])
    _equal("metadata", METADATA, batch["metadata"])
    again = ok_data(await p.get(f"/v1/inference/batch/{batch['id']}"))
    _batch_fields(again, "the status answer")
    listed, _ = page_of(await p.get("/v1/inference/batch", params={"limit": wire.MAX_LIMIT}))
    if batch["id"] not in [b.get("id") for b in listed if isinstance(b, dict)]:
        raise Mismatch(f"{batch['id']} in the batch list", f"{len(listed)} other batches")
    return f"{len(BATCH_KEYS)} fields typed on submit, status and list; usage, cost"


def _reachable(start: str) -> set[str]:
    out, todo = set(), [BatchStatus(start)]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in out:
                out.add(nxt)
                todo.append(nxt)
    return {str(s) for s in out}


async def statuses(p: Probe) -> str:
    batch, seen = await finished(p)
    for before, after in zip(seen, seen[1:], strict=False):
        if after not in _reachable(before):
            raise Mismatch(f"a status reachable from {before}", f"{after} (seen: {seen})")
    _equal("the final status", BatchStatus.COMPLETED, batch["status"])
    counts = batch["completed_count"] + batch["failed_count"]
    _equal("completed_count + failed_count = total_count", batch["total_count"], counts)
    _instant(batch, "started_at", "the completed batch")
    _instant(batch, "completed_at", "the completed batch")
    return " -> ".join(seen) + f"; counts {batch['completed_count']}+{batch['failed_count']}"


async def _results(p: Probe, url: str) -> list[dict[str, Any]]:
    resp = await p.get(url, auth=False)  # pre-signed: the link is the credential
    expect_status(resp, 200)
    lines = []
    for raw in resp.content.splitlines():
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Mismatch("JSONL: one JSON object a line", repr(raw[:80])) from None
        ok = isinstance(line, dict) and line.get("status") == "ok"
        same_keys(line, RESULT_OK_KEYS if ok else RESULT_ERROR_KEYS, "a result line")
        lines.append(line)
    return lines


async def results(p: Probe) -> str:
    batch, _ = await finished(p)
    url: str = need(batch, "results_url", str, "the completed batch")
    _instant(batch, "results_expires_at", "the completed batch")
    lines = await _results(p, url)
    _equal(
        "the results' custom_ids, in input order",
        ["conformance-1"],
        [r["custom_id"] for r in lines],
    )
    response = lines[0].get("response")
    need(response, "choices", list, "the result's response")
    if "signature=" not in url:
        return f"1 JSONL line {keys(RESULT_OK_KEYS)} without a key (no signature to alter)"
    head, _, signature = url.partition("signature=")
    altered = head + "signature=" + signature[:-1] + ("0" if signature[-1:] != "0" else "1")
    error_of(await p.get(altered, auth=False), errors.ResultsUrlInvalid)
    return (
        f"1 JSONL line {keys(RESULT_OK_KEYS)} without a key; altered link 403 RESULTS_URL_INVALID"
    )


async def cancel(p: Probe) -> str:
    batch, _ = await finished(p)
    resp = await p.post(f"/v1/inference/batch/{batch['id']}/cancel")
    error_of(resp, errors.BatchNotCancellable)
    fresh = await _submit(p, "conformance-cancel")
    resp = await p.post(f"/v1/inference/batch/{fresh['id']}/cancel")
    if resp.status_code == errors.BatchNotCancellable.status:
        error_of(resp, errors.BatchNotCancellable)
        return "a final batch: 409; a fresh one finished before its cancel (409 as well)"
    cancelled = ok_data(resp)
    _equal("the status after cancel", BatchStatus.CANCELLED, cancelled.get("status"))
    _instant(cancelled, "cancelled_at", "the cancelled batch")
    url = need(ok_data(await p.get(f"/v1/inference/batch/{fresh['id']}")), "results_url", str,
               "the cancelled batch")  # fmt: skip
    lines = await _results(p, url)
    _equal("result lines of the cancelled batch", 1, len(lines))
    if lines[0]["status"] != "ok":
        error = need(lines[0], "error", dict, "the result line")
        _equal("the unrun request's error code", errors.BatchCancelled.code, error.get("code"))
    return "a final batch: 409 BATCH_NOT_CANCELLABLE; an active one: cancelled, results readable"


async def input_parse_errors(p: Probe) -> str:
    data = ok_data(await p.post("/v1/inference/batch", json={"input_file_base64": _b64(b"{\n")}))
    batch, seen = await _wait_final(p, data)
    _equal("the status of a batch whose input does not parse", BatchStatus.FAILED, batch["status"])
    error = need(batch, "error", dict, "the failed batch")
    _equal("error.code", errors.InputParseError.code, error.get("code"))
    details = need(error, "details", list, "error")
    _equal("details[0].line", 1, details[0].get("line") if details else None)
    return " -> ".join(seen) + f"; error {error['code']} at line 1"


# --- writing checks: webhooks ---------------------------------------------------------------------


def _receiver(p: Probe) -> Receiver:
    return Receiver(p.options.receiver_port, p.options.receiver_url)


def _register(url: str, secret: str) -> dict[str, Any]:
    # an event no check makes happen: the hook hears nothing but what it is sent on purpose
    return {"url": url, "secret": secret, "events": ["webhook.auto_disabled"]}


async def webhook_objects(p: Probe) -> str:
    secret = "whsec_" + secrets.token_hex(16)
    with _receiver(p) as receiver:
        hook = ok_data(await p.post("/v1/webhooks", json=_register(receiver.url, secret)))
        hook_id = _prefixed(hook, "id", "webhook", "data")
        try:
            same_keys(hook, WEBHOOK_KEYS, "the webhook object")
            _equal("url", receiver.url, hook["url"])
            _equal("events", ["webhook.auto_disabled"], hook["events"])
            _equal("status", "active", hook["status"])
            need(hook, "max_retries", int, "the webhook")
            _equal("GET /v1/webhooks/{id}", hook, ok_data(await p.get(f"/v1/webhooks/{hook_id}")))
        finally:
            deleted = await p.delete(f"/v1/webhooks/{hook_id}")
    expect_status(deleted, 200)
    error_of(await p.get(f"/v1/webhooks/{hook_id}"), errors.WebhookNotFound)
    return f"register, get, delete; object {keys(WEBHOOK_KEYS)}, never the secret"


@dataclass(frozen=True, slots=True)
class Delivery:
    secret: str
    answer: dict[str, Any]
    posts: list[Received]


async def delivered(p: Probe) -> Delivery:
    async def make(p: Probe) -> Delivery:
        secret = "whsec_" + secrets.token_hex(16)
        with _receiver(p) as receiver:
            hook = ok_data(await p.post("/v1/webhooks", json=_register(receiver.url, secret)))
            try:
                answer = ok_data(await p.post(f"/v1/webhooks/{hook['id']}/test"))
                # the documented ack deadline: a delivery that comes at all comes within it
                posts = await asyncio.to_thread(receiver.wait, 1, 10.0)
            finally:
                await p.delete(f"/v1/webhooks/{hook['id']}")
        return Delivery(secret, answer, posts)

    delivery: Delivery = await _once(p, "delivery", "the test event", make)
    if not delivery.posts:
        raise Mismatch("the test event at the receiver", f"nothing within 10 s ({delivery.answer})")
    return delivery


async def test_events(p: Probe) -> str:
    d = await delivered(p)
    same_keys(d.answer, TEST_ANSWER_KEYS, "the test answer")
    _prefixed(d.answer, "delivery_id", "delivery", "the test answer")
    _equal("the test answer's status_code (the receiver answers 200)", 200, d.answer["status_code"])
    need(d.answer, "duration_ms", int, "the test answer")
    _equal("the test answer's error", None, d.answer["error"])
    _equal("posts at the receiver", 1, len(d.posts))
    _equal("event_type", TEST_EVENT, body_of_post(d.posts[0]).get("event_type"))
    return f"test answer {keys(TEST_ANSWER_KEYS)}; one {TEST_EVENT} delivery"


async def webhook_headers(p: Probe) -> str:
    d = await delivered(p)
    post = d.posts[0]
    signed = "sha256=" + hmac.new(d.secret.encode(), post.body, hashlib.sha256).hexdigest()
    _equal("X-ScaiGrid-Signature (sha256=HMAC of the raw body)", signed,
           post.headers.get("x-scaigrid-signature"))  # fmt: skip
    stamp = post.headers.get("x-scaigrid-timestamp", "")
    if not stamp.isdigit():
        raise Mismatch("X-ScaiGrid-Timestamp in Unix seconds", repr(stamp))
    event = body_of_post(post)
    _equal("X-ScaiGrid-Event-Id", event.get("event_id"), post.headers.get("x-scaigrid-event-id"))
    _equal("X-ScaiGrid-Event-Type", TEST_EVENT, post.headers.get("x-scaigrid-event-type"))
    _equal("X-ScaiGrid-Delivery-Id", d.answer.get("delivery_id"),
           post.headers.get("x-scaigrid-delivery-id"))  # fmt: skip
    agent = post.headers.get("user-agent", "")
    if not agent.startswith("ScaiGrid-Webhook/"):
        raise Mismatch("User-Agent ScaiGrid-Webhook/...", repr(agent))
    return "signature verified; timestamp, event id and type, delivery id, user agent"


def body_of_post(post: Received) -> dict[str, Any]:
    try:
        event = orjson.loads(post.body)
    except orjson.JSONDecodeError:
        raise Mismatch("a JSON body", repr(post.body[:80])) from None
    if not isinstance(event, dict):
        raise Mismatch("a JSON object", repr(post.body[:80]))
    return event


async def delivered_body(p: Probe) -> str:
    event = body_of_post((await delivered(p)).posts[0])
    same_keys(event, EVENT_KEYS, "the delivered event")
    need(event, "payload", dict, "the event")
    _instant(event, "timestamp", "the event")
    return f"the envelope itself: {keys(EVENT_KEYS)}"


# --- the table ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    #: the id of the README assumptions-table row the check tests
    name: str
    #: sends anything but a GET: creates data or may cost money
    writes: bool
    run: Callable[[Probe], Awaitable[str]]
    about: str


CHECKS: tuple[Check, ...] = (
    Check("envelope", False, envelope, "success, list and error envelopes"),
    Check("auth-codes", False, auth_codes, "401 codes without a key and with a bad one"),
    Check("request-id-header", False, request_id_header, "X-Request-ID = meta.request_id"),
    Check("not-found-codes", False, not_found_codes, "404 codes of missing ids and routes"),
    Check("pagination", False, pagination, "list shape, default limit, cursors"),
    Check("model-object", False, model_object, "the fields of the models"),
    Check("pricing", False, pricing, "prices and batch discounts of the models"),
    Check("rate-limit-headers", False, rate_limit_headers, "X-Scaigrid-Ratelimit-* when sent"),
    Check("error-codes", True, error_codes, "422 VALIDATION_ERROR with details"),
    Check("input-choice", True, input_choice, "422 for neither or both inputs"),
    Check("inline-input", True, inline_input, "422 for base64 that does not decode"),
    Check("files-api", True, files_api, "upload, read and delete a file"),
    Check("submit-response", True, submit_response, "submit a one-line batch: 200 and the batch"),
    Check("batch-object", True, batch_object, "the batch object's fields"),
    Check("statuses", True, statuses, "the status flow to completed"),
    Check("results", True, results, "the results link and its JSONL"),
    Check("cancel", True, cancel, "cancel a final batch (409) and an active one"),
    Check("input-parse-errors", True, input_parse_errors, "a batch whose input does not parse"),
    Check("webhook-objects", True, webhook_objects, "register, read and delete a webhook"),
    Check("test-events", True, test_events, "the test route's answer and event"),
    Check("webhook-headers", True, webhook_headers, "the delivery's signature and headers"),
    Check("delivered-body", True, delivered_body, "the delivered event envelope"),
)
BY_NAME = {c.name: c for c in CHECKS}
