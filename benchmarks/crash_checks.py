"""The checks of a crash trial (crash_trials.py), run on the restarted server and then on its
database file after a clean stop. Each returns the problems it found, as sentences."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from benchmarks.loopback import Emulator, Received

if TYPE_CHECKING:
    from benchmarks.crash_moments import Inputs, Ledger

FINAL = ("completed", "cancelled", "failed")
TIMESTAMPS = ("created_at", "started_at", "completed_at", "cancelled_at", "failed_at")


def items(emu: Emulator, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paged list (a trial makes a handful: one page of 100)."""
    data = emu.ok("GET", path, params={"limit": 100, **params})
    found: list[dict[str, Any]] = data["items"]
    assert not data.get("has_more"), f"more than 100 items at {path}"
    return found


def settled(emu: Emulator, webhook: str) -> bool:
    """Every batch final and no delivery waiting for a retry."""
    batches = items(emu, "/v1/inference/batch")
    pending = items(emu, f"/v1/webhooks/{webhook}/deliveries", status="pending")
    return all(b["status"] in FINAL for b in batches) and not pending


def check_files(emu: Emulator, inputs: Inputs, ledger: Ledger) -> tuple[int, list[str]]:
    """Every accepted file is there, and every stored file is exactly one of the inputs."""
    problems = []
    files = items(emu, "/v1/files")
    for f in files:
        name = inputs.by_sha.get(f["sha256"])
        if name is None:
            problems.append(f"file {f['id']} ({f['bytes']} bytes) is none of the inputs")
            continue
        content = emu.client.get(f"/v1/files/{f['id']}/content").content
        if hashlib.sha256(content).hexdigest() != f["sha256"] or len(content) != f["bytes"]:
            problems.append(f"file {f['id']}'s content is not what it says ({len(content)} bytes)")
        if f["line_count"] != inputs.counts[name]:
            problems.append(
                f"file {f['id']} counts {f['line_count']} lines, not {inputs.counts[name]}"
            )
    ids = {f["id"] for f in files}
    problems += [
        f"accepted file {i} ({n}) is lost" for i, n in ledger.files.items() if i not in ids
    ]
    # a submit's own input (inline base64) is stored with its batch or not at all
    inputs_of = {b["input_file_id"] for b in items(emu, "/v1/inference/batch")}
    problems += [
        f"file {f['id']} is a submit's input without its batch"
        for f in files
        if f["id"] not in ledger.files and f["id"] not in inputs_of
    ]
    return len(files), problems


def check_batches(
    emu: Emulator, inputs: Inputs, ledger: Ledger, now: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every accepted batch is there and final; each one's results and counters agree."""
    problems = []
    batches = items(emu, "/v1/inference/batch")
    for b in batches:
        problems += _check_batch(b, inputs, now)
        if b["id"] in ledger.cancelled and b["status"] != "cancelled":
            problems.append(f"batch {b['id']} was cancelled (200) but is {b['status']}")
    ids = {b["id"] for b in batches}
    problems += [
        f"accepted batch {i} ({n}) is lost" for i, n in ledger.batches.items() if i not in ids
    ]
    return batches, problems


def _check_batch(b: dict[str, Any], inputs: Inputs, now: str) -> list[str]:
    name = b["metadata"].get("input", "")
    if name not in inputs.counts:
        return [f"batch {b['id']} has no known input ({b['metadata']})"]
    if b["status"] not in FINAL:
        return [f"batch {b['id']} is still {b['status']} after {now}"]
    problems = [
        f"batch {b['id']}'s {stamp} {b[stamp]} is after the clock {now}"
        for stamp in TIMESTAMPS
        if b[stamp] is not None and b[stamp] > now
    ]
    expected = inputs.custom_ids(name)
    if b["total_count"] != len(expected):
        problems.append(f"batch {b['id']} counts {b['total_count']} requests, not {len(expected)}")
    if b["completed_count"] + b["failed_count"] != b["total_count"]:
        problems.append(f"batch {b['id']}: {b['completed_count']} + {b['failed_count']} != total")
    resp = httpx.get(b["results_url"], timeout=120.0, trust_env=False)
    if resp.status_code != 200:
        return [*problems, f"batch {b['id']}'s results: {resp.status_code}"]
    lines = [orjson.loads(line) for line in resp.content.splitlines()]
    if [r["custom_id"] for r in lines] != expected:
        problems.append(f"batch {b['id']}'s results are not each custom_id once, in order")
    ok = sum(r["status"] == "ok" for r in lines)
    if (ok, len(lines) - ok) != (b["completed_count"], b["failed_count"]):
        problems.append(
            f"batch {b['id']}: {ok} ok / {len(lines) - ok} error lines, counters say"
            f" {b['completed_count']} / {b['failed_count']}"
        )
    return problems


def check_webhooks(
    emu: Emulator, ledger: Ledger, batches: list[dict[str, Any]], got: Received
) -> tuple[int, list[str]]:
    """Each final batch's event reached the receiver (answered 2xx); no delivery left over."""
    problems = []
    delivered: dict[str, int] = {}
    for _, body, status in got.snapshot():
        if 200 <= status < 300:
            batch_id = orjson.loads(body)["payload"]["batch_id"]
            delivered[batch_id] = delivered.get(batch_id, 0) + 1
    for b in batches:
        if b["status"] in FINAL and b["id"] not in delivered:
            problems.append(f"the event of batch {b['id']} ({b['status']}) never arrived")
    for d in items(emu, f"/v1/webhooks/{ledger.webhook}/deliveries"):
        if d["status"] != "success":
            problems.append(f"delivery {d['id']} is {d['status']} after {d['attempts']} attempts")
    return len(got.snapshot()), problems


def check_clock(emu: Emulator, ledger: Ledger) -> tuple[str, list[str]]:
    """The restarted clock is not behind the last instant the first server reported."""
    now = emu.clock()
    if now < ledger.clock:
        return now, [f"the clock went back from {ledger.clock} to {now}"]
    return now, []


def check_database(db: Path) -> list[str]:
    """After a clean stop: the file is sound, and the stored counters match the stored rows."""
    with sqlite3.connect(db) as con:
        problems = [f"integrity_check: {row[0]}" for row in con.execute("PRAGMA integrity_check")]
        problems = [p for p in problems if p != "integrity_check: ok"]
        orphans = con.execute(
            "SELECT count(*) FROM file_chunks WHERE file_seq NOT IN (SELECT seq FROM files)"
        ).fetchone()[0]
        if orphans:
            problems.append(f"{orphans} file chunks belong to no file")
        rows = con.execute(
            "SELECT b.id, b.status, b.total_count, b.completed_count, b.failed_count,"
            " (SELECT count(*) FROM results r WHERE r.batch_seq = b.seq AND r.ok),"
            " (SELECT count(*) FROM results r WHERE r.batch_seq = b.seq AND NOT r.ok),"
            " (SELECT count(*) FROM requests q WHERE q.batch_seq = b.seq) FROM batches b"
        ).fetchall()
    for batch_id, status, total, completed, failed, ok, errors, requests in rows:
        if (completed, failed) != (ok, errors):
            problems.append(f"{batch_id}: stored counters {completed}/{failed}, rows {ok}/{errors}")
        if status != "failed" and requests != total:
            problems.append(f"{batch_id}: {requests} stored requests for a total of {total}")
    return problems
