"""The writing checks of batches: submits the service must refuse, a file uploaded and deleted,
and one-line batches from submit to results, cancel and an input that does not parse."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson

from emulator import errors, wire
from emulator.conformance.probe import (
    Mismatch,
    Probe,
    error_of,
    expect_status,
    keys,
    need,
    ok_data,
    page_of,
    same_keys,
)
from emulator.conformance.shapes import (
    BATCH_KEYS,
    COST_KEYS,
    FILE_KEYS,
    METADATA,
    RESULT_ERROR_KEYS,
    RESULT_OK_KEYS,
    USAGE_KEYS,
    b64,
    decimal_of,
    equal,
    instant,
    once,
    one_line,
    prefixed,
)
from emulator.status import TRANSITIONS, BatchStatus, is_final
from emulator.windows import DEFAULT_WINDOW

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
    line = b64(one_line("conformance-1", p.options.model))
    for body in ({}, {"input_file_base64": line, "input_file_url": "scaigrid://file/file-x"}):
        error_of(await p.post("/v1/inference/batch", json=body), errors.ValidationError)
    return "neither input, and both inputs: 422 VALIDATION_ERROR"


async def inline_input(p: Probe) -> str:
    resp = await p.post("/v1/inference/batch", json={"input_file_base64": "not base64!"})
    error_of(resp, errors.ValidationError)
    return "input_file_base64 that does not decode: 422 VALIDATION_ERROR"


# --- writing checks: a file -----------------------------------------------------------------------


async def files_api(p: Probe) -> str:
    content = one_line("conformance-file", p.options.model) + b"\n"
    upload = {"file": ("conformance.jsonl", content, "application/jsonl")}
    data = ok_data(await p.post("/v1/files", files=upload, data={"purpose": "batch"}))
    file_id = prefixed(data, "id", "file", "data")
    try:
        same_keys(data, FILE_KEYS, "the file object")
        equal("bytes", len(content), data["bytes"])
        equal("line_count", 1, data["line_count"])
        equal("sha256", hashlib.sha256(content).hexdigest(), data["sha256"])
        equal("url", f"scaigrid://file/{file_id}", data["url"])
        equal("GET /v1/files/{id}", data, ok_data(await p.get(f"/v1/files/{file_id}")))
        resp = await p.get(f"/v1/files/{file_id}/content")
        expect_status(resp, 200)
        equal("the content", content, resp.content)
    finally:
        deleted = await p.delete(f"/v1/files/{file_id}")
    expect_status(deleted, 200)
    error_of(await p.get(f"/v1/files/{file_id}"), errors.FileNotFound)
    return f"upload, get, content and delete; object {keys(FILE_KEYS)}"


# --- writing checks: a batch, from submit to results ----------------------------------------------


async def _submit(p: Probe, custom_id: str) -> dict[str, Any]:
    body = {"input_file_base64": b64(one_line(custom_id, p.options.model)), "metadata": METADATA}
    data = ok_data(await p.post("/v1/inference/batch", json=body))
    prefixed(data, "id", "batch", "data")
    return data  # type: ignore[no-any-return]


async def submitted(p: Probe) -> dict[str, Any]:
    batch: dict[str, Any] = await once(
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

    done: tuple[dict[str, Any], list[str]] = await once(p, "finished", "the batch's end", make)
    return done


def _batch_fields(batch: dict[str, Any], where: str) -> None:
    same_keys(batch, BATCH_KEYS, where)
    prefixed(batch, "id", "batch", where)
    _status(batch)
    for name in ("total_count", "completed_count", "failed_count"):
        need(batch, name, int, where)
    for name in ("created_at", "expires_at"):
        instant(batch, name, where)
    for name in ("started_at", "completed_at", "cancelled_at", "failed_at", "results_expires_at"):
        instant(batch, name, where, nullable=True)
    need(batch, "error", (dict, type(None)), where)
    need(batch, "results_url", (str, type(None)), where)
    usage = need(batch, "usage", dict, where)
    same_keys(usage, USAGE_KEYS, f"{where}.usage")
    for name in USAGE_KEYS:
        need(usage, name, int, f"{where}.usage")
    cost = need(batch, "cost", dict, where)
    same_keys(cost, COST_KEYS, f"{where}.cost")
    for name in COST_KEYS - {"currency"}:
        decimal_of(cost, name, f"{where}.cost")


async def submit_response(p: Probe) -> str:
    batch = await submitted(p)
    return f"200 with the batch object in the envelope: {batch['id']} {batch.get('status')}"


async def batch_object(p: Probe) -> str:
    batch = await submitted(p)
    _batch_fields(batch, "the submit answer")
    equal("endpoint_completion_window", DEFAULT_WINDOW, batch["endpoint_completion_window"])
    equal("metadata", METADATA, batch["metadata"])
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
    equal("the final status", BatchStatus.COMPLETED, batch["status"])
    counts = batch["completed_count"] + batch["failed_count"]
    equal("completed_count + failed_count = total_count", batch["total_count"], counts)
    instant(batch, "started_at", "the completed batch")
    instant(batch, "completed_at", "the completed batch")
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
    instant(batch, "results_expires_at", "the completed batch")
    lines = await _results(p, url)
    equal(
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
    equal("the status after cancel", BatchStatus.CANCELLED, cancelled.get("status"))
    instant(cancelled, "cancelled_at", "the cancelled batch")
    url = need(ok_data(await p.get(f"/v1/inference/batch/{fresh['id']}")), "results_url", str,
               "the cancelled batch")  # fmt: skip
    lines = await _results(p, url)
    equal("result lines of the cancelled batch", 1, len(lines))
    if lines[0]["status"] != "ok":
        error = need(lines[0], "error", dict, "the result line")
        equal("the unrun request's error code", errors.BatchCancelled.code, error.get("code"))
    return "a final batch: 409 BATCH_NOT_CANCELLABLE; an active one: cancelled, results readable"


async def input_parse_errors(p: Probe) -> str:
    data = ok_data(await p.post("/v1/inference/batch", json={"input_file_base64": b64(b"{\n")}))
    batch, seen = await _wait_final(p, data)
    equal("the status of a batch whose input does not parse", BatchStatus.FAILED, batch["status"])
    error = need(batch, "error", dict, "the failed batch")
    equal("error.code", errors.InputParseError.code, error.get("code"))
    details = need(error, "details", list, "error")
    equal("details[0].line", 1, details[0].get("line") if details else None)
    return " -> ".join(seen) + f"; error {error['code']} at line 1"
