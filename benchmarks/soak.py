"""A bounded soak of one real `serve` process on loopback.

    .venv/bin/python benchmarks/soak.py --seconds 60

For `--seconds`, on a file database and the real clock:

- 10 batches of 5,000 requests (`--batches`, `--lines`) processing all along: their tenant's
  scenario spreads each batch's requests over ~80% of the run (one lane, a fixed latency);
- 16 status pollers (`--pollers`), each in a closed loop on one of those batches;
- live chat traffic (`--chats` clients in a closed loop, every body distinct);
- webhook deliveries: a second tenant submits a small inline batch every 2 s, and each of its
  batches' events (and the large ones', when they end) goes to a receiver on a loopback socket.
  Its submits are the one answer that may be refused as expected: `429 QUOTA_EXCEEDED` when ten
  of its batches are still active (the documented limit), counted apart from the errors.

Then the clock is advanced an hour through the control plane, which finishes every batch and
waits for the deliveries that became due; each large batch's results are read back (every
custom_id once, in order), every event must have reached the receiver, and the server is stopped.

Reported: errors (any answer that is not 2xx, any exception: none is expected), "database is
locked" and tracebacks in the server's log, the server's RSS sampled every second (first, at a
quarter of the run, last, max), and p50/p99 of the status GETs and of the live chats. The exit
status is 1 when there is any error, lock or traceback, when a check after the run fails, or when
the RSS at the end is more than 15% over the RSS at a quarter of the run (by then the journal's
10,000 entries are full; after that only bounded memories fill, such as the live path's set of
bodies seen once).
`tests/test_soak.py` runs it for a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import orjson

from benchmarks.batch_e2e import RawHTTP, chat_body, run_async
from benchmarks.common import (
    API_KEY,
    E2E_CHAT_URL,
    check_e2e_results,
    e2e_line,
    machine,
    rss_kb,
    table,
    write_e2e_input,
    write_results,
)
from benchmarks.loopback import KEY, WEBHOOK_SECRET, Emulator, Received, percentile, receiver

LOCKED = "database is locked"
#: the second tenant's small batches: their size and how far apart they are submitted
SMALL_LINES = 20
SMALL_EVERY = 2.0
#: RSS may grow this much from a quarter of the run (the journal full) to its end
RSS_GROWTH = 1.15


@dataclass
class Soak:
    seconds: float
    batches: int = 10
    lines: int = 5_000
    pollers: int = 16
    chats: int = 2
    status_ms: list[float] = field(default_factory=list)
    chat_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    small_batches: list[str] = field(default_factory=list)  # the second tenant's
    quota_refusals: int = 0  # its submits refused while ten of its batches were active
    problems: list[str] = field(default_factory=list)  # checks after the run
    log: str = ""
    posts: int = 0

    def error(self, what: str) -> None:
        if len(self.errors) < 1000:  # enough to read; the count is what matters
            self.errors.append(what)

    def figures(self) -> dict[str, Any]:
        rss = self.rss_mb or [0.0]
        return {
            "seconds": self.seconds,
            "batches": f"{self.batches} x {self.lines}",
            "status_requests": len(self.status_ms),
            "status_p50_ms": percentile(self.status_ms, 50),
            "status_p99_ms": percentile(self.status_ms, 99),
            "chat_requests": len(self.chat_ms),
            "chat_p50_ms": percentile(self.chat_ms, 50),
            "chat_p99_ms": percentile(self.chat_ms, 99),
            "small_batches": len(self.small_batches),
            "quota_refusals": self.quota_refusals,
            "webhook_posts": self.posts,
            "errors": len(self.errors),
            "database_locked": self.log.count(LOCKED),
            "tracebacks": self.log.count("Traceback"),
            "rss_first_mb": rss[0],
            "rss_quarter_mb": rss[len(rss) // 4],
            "rss_last_mb": rss[-1],
            "rss_max_mb": max(rss),
            "rss_flat": rss[-1] <= RSS_GROWTH * rss[len(rss) // 4],
            "problems": len(self.problems),
        }

    @property
    def ok(self) -> bool:
        figures = self.figures()
        return (
            not (self.errors or self.problems or figures["database_locked"])
            and not figures["tracebacks"]
        )


def scenario(seconds: float, lines: int) -> str:
    """One lane, a latency that spreads `lines` requests over 80% of `seconds`."""
    latency_ms = max(1, int(seconds * 0.8 * 1000 / lines))
    return (
        "name: soak\ndescription: requests spread over the soak\n"
        f"processing:\n  latency: {latency_ms}ms\n  concurrency: 1\n"
    )


def sample_rss(pid: int, soak: Soak, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            soak.rss_mb.append(rss_kb(pid) / 1024)
        except (OSError, RuntimeError):
            return
        stop.wait(1.0)


def run_soak(soak: Soak, workdir: Path) -> Soak:
    """Start a server in `workdir`, load it for `soak.seconds`, check, stop it; fills `soak`."""
    with receiver(lambda n: 200) as (hook, got):
        emu = Emulator(workdir / "soak.db", "--clock", "real", "--log-level", "warning")
        try:
            large = setup(emu, soak, workdir, hook)
            stop = threading.Event()
            sampler = threading.Thread(target=sample_rss, args=(emu.proc.pid, soak, stop))
            sampler.start()
            try:
                run_async(load(emu.url, large, soak))
            finally:
                stop.set()
                sampler.join()
            soak.problems += finish(emu, large, soak, got, workdir)
        finally:
            emu.stop()
            soak.log = emu.log()
    return soak


def setup(emu: Emulator, soak: Soak, workdir: Path, hook: str) -> list[str]:
    """The large batches (submitted now, spread over the run) and a webhook per tenant."""
    big = {"Authorization": f"Bearer {API_KEY}"}
    for headers in (big, {}):
        body = {"url": hook, "secret": WEBHOOK_SECRET}
        emu.ok("POST", "/v1/webhooks", json=body, headers=headers)
    yaml = scenario(soak.seconds, soak.lines)
    emu.ok("PUT", f"/_emulator/tenants/{API_KEY}/scenario", json={"yaml": yaml})
    path = workdir / "input.jsonl"
    write_e2e_input(path, soak.lines)
    with path.open("rb") as f:
        files = {"file": ("input.jsonl", f, "application/jsonl")}
        file_id = emu.ok("POST", "/v1/files", files=files, headers=big)["id"]
    submit = {"input_file_url": f"scaigrid://file/{file_id}"}
    return [
        emu.ok("POST", "/v1/inference/batch", json=submit, headers=big)["id"]
        for _ in range(soak.batches)
    ]


async def load(url: str, large: list[str], soak: Soak) -> None:
    deadline = time.perf_counter() + soak.seconds

    async def poller(k: int) -> None:
        conn = RawHTTP(url)
        request = RawHTTP.request_bytes(url, "GET", f"/v1/inference/batch/{large[k % len(large)]}")
        try:
            while time.perf_counter() < deadline:
                await timed(conn, request, soak.status_ms, "status")
        finally:
            await conn.close()

    async def chatter(k: int) -> None:
        conn = RawHTTP(url)
        n = 0
        try:
            while time.perf_counter() < deadline:
                n += 1
                raw = RawHTTP.request_bytes(url, "POST", E2E_CHAT_URL, chat_body(k, n))
                await timed(conn, raw, soak.chat_ms, "chat")
        finally:
            await conn.close()

    async def timed(conn: RawHTTP, raw: bytes, into: list[float], what: str) -> None:
        started = time.perf_counter()
        try:
            code, body = await conn.send(raw)
        except (OSError, asyncio.IncompleteReadError) as exc:
            soak.error(f"{what}: {type(exc).__name__}: {exc}")
            conn.writer = None  # a new connection next time
            return
        into.append((time.perf_counter() - started) * 1000)
        if code != 200:
            soak.error(f"{what}: {code} {body[:200]!r}")

    await asyncio.gather(
        *(poller(k) for k in range(soak.pollers)),
        *(chatter(k) for k in range(soak.chats)),
        submitter(url, soak, deadline),
    )


async def submitter(url: str, soak: Soak, deadline: float) -> None:
    """The second tenant's small inline batches, one every SMALL_EVERY seconds: each ends
    with an event."""
    data = b"".join(orjson.dumps(e2e_line(i)) + b"\n" for i in range(SMALL_LINES))
    body = {"input_file_base64": base64.b64encode(data).decode()}
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, trust_env=False) as client:
        next_at = time.perf_counter()
        while next_at < deadline:
            try:
                resp = await client.post("/v1/inference/batch", json=body, timeout=30.0)
            except httpx.HTTPError as exc:
                soak.error(f"submit: {type(exc).__name__}: {exc}")
            else:
                if resp.status_code == 200:
                    soak.small_batches.append(resp.json()["data"]["id"])
                elif resp.status_code == 429 and b"QUOTA_EXCEEDED" in resp.content:
                    soak.quota_refusals += 1
                else:
                    soak.error(f"submit: {resp.status_code} {resp.text[:200]}")
            next_at += SMALL_EVERY
            await asyncio.sleep(max(0.0, min(next_at, deadline) - time.perf_counter()))


def finish(emu: Emulator, large: list[str], soak: Soak, got: Received, workdir: Path) -> list[str]:
    """Advance the clock an hour (every batch ends, due deliveries are awaited), then check
    the large batches' results and that every batch's event arrived."""
    emu.advance(3600)
    problems = check_events(got, [*large, *soak.small_batches])
    soak.posts = len(got.snapshot())
    headers = {"Authorization": f"Bearer {API_KEY}"}
    for batch_id in large:
        b = emu.ok("GET", f"/v1/inference/batch/{batch_id}", headers=headers)
        if b["status"] != "completed" or b["completed_count"] != soak.lines:
            problems.append(f"large batch {batch_id}: {b['status']} {b['completed_count']}")
            continue
        out = workdir / f"{batch_id}.jsonl"
        with httpx.stream("GET", b["results_url"], timeout=120.0, trust_env=False) as resp:
            with out.open("wb") as f:
                for chunk in resp.iter_bytes():
                    f.write(chunk)
        try:
            check_e2e_results(out, soak.lines)
        except RuntimeError as exc:
            problems.append(f"large batch {batch_id}: {exc}")
    return problems


def check_events(got: Received, batch_ids: list[str]) -> list[str]:
    arrived = {orjson.loads(body)["payload"]["batch_id"] for _, body, _ in got.snapshot()}
    return [f"the event of batch {b} never arrived" for b in batch_ids if b not in arrived]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--lines", type=int, default=5_000)
    parser.add_argument("--pollers", type=int, default=16)
    parser.add_argument("--chats", type=int, default=2)
    args = parser.parse_args(argv)
    soak = Soak(args.seconds, args.batches, args.lines, args.pollers, args.chats)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        run_soak(soak, Path(tmp))
    figures = soak.figures()
    print(table(["figure", "value"], list(figures.items())))
    for what in [*soak.errors[:10], *soak.problems[:10]]:
        print("  " + what)
    extra = {
        "errors_seen": soak.errors[:50],
        "problems_seen": soak.problems,
        "rss_samples_mb": [round(m, 1) for m in soak.rss_mb],
    }
    path = write_results("soak", {"machine": machine(), **figures, **extra})
    passed = soak.ok and figures["rss_flat"]
    print(f"\n{'PASS' if passed else 'FAIL'}; {path}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
