"""The crash trials' first server (crash_trials.py): the inputs, what it answered 2xx to (the
ledger), the prelude every trial starts with, and the six moments a trial kills it at."""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from benchmarks.common import e2e_line
from benchmarks.loopback import KEY, WEBHOOK_SECRET, Emulator

MOMENTS = ("upload", "submit", "processing", "results", "webhook_retry", "cancel")
#: the worker stores results 500 at a time (emulator.batch.worker.CHUNK)
WORKER_CHUNK = 500
#: the large batch runs 5 requests per emulator second: it moves only with the clock
SLOW = (
    "name: crash-slow\ndescription: 5 requests a second\n"
    "processing:\n  latency: 1s\n  concurrency: 5\n"
)
#: retries come 30 s, 2 min, 10 min ... after the first failure: the advances that reach each
RETRY_STEPS = (30.0, 90.0, 480.0)


@dataclass(frozen=True)
class Sizes:
    """Request counts of the trials' inputs (the CI test uses smaller ones)."""

    lines: int = 10_000  # the large batch of `processing`, `results` and `cancel`
    upload_lines: int = 10_000  # the large upload (long prompts: ~1.1 KB a line)
    upload_prompt_chars: int = 1_000
    inline_lines: int = 3_000  # the base64 submit
    small_lines: int = 200  # the prelude's batch


class Inputs:
    """The trial's JSONL inputs by name, built once; each is known by its sha256."""

    def __init__(self, sizes: Sizes) -> None:
        self.counts = {
            "small": sizes.small_lines,
            "inline": sizes.inline_lines,
            "large": sizes.lines,
            "upload": sizes.upload_lines,
        }
        chars = {"upload": sizes.upload_prompt_chars}
        self.data = {
            name: b"".join(orjson.dumps(e2e_line(i, chars.get(name, 0))) + b"\n" for i in range(n))
            for name, n in self.counts.items()
        }
        self.by_sha = {hashlib.sha256(d).hexdigest(): name for name, d in self.data.items()}

    def custom_ids(self, name: str) -> list[str]:
        return [f"req-{i:06d}" for i in range(self.counts[name])]


@dataclass
class Ledger:
    """What the first server answered 2xx to: it must all be there after the restart."""

    files: dict[str, str] = field(default_factory=dict)  # file id -> input name
    batches: dict[str, str] = field(default_factory=dict)  # batch id -> input name
    cancelled: set[str] = field(default_factory=set)  # batches whose cancel was answered
    webhook: str = ""
    clock: str = ""  # the latest instant the first server reported

    def saw(self, now: str) -> None:
        self.clock = max(self.clock, now)


# --- the first server: prelude, moment, kill -----------------------------------------------------


def upload(emu: Emulator, inputs: Inputs, name: str, ledger: Ledger) -> str:
    files = {"file": (f"{name}.jsonl", inputs.data[name], "application/jsonl")}
    file_id: str = emu.ok("POST", "/v1/files", files=files)["id"]
    ledger.files[file_id] = name
    return file_id


def submit(emu: Emulator, ledger: Ledger, name: str, body: dict[str, Any]) -> dict[str, Any]:
    batch: dict[str, Any] = emu.ok(
        "POST", "/v1/inference/batch", json={**body, "metadata": {"input": name}}
    )
    ledger.batches[batch["id"]] = name
    ledger.saw(batch["created_at"])
    return batch


def prelude(emu: Emulator, inputs: Inputs, ledger: Ledger, hook: str) -> None:
    body = {"url": hook, "secret": WEBHOOK_SECRET}
    ledger.webhook = emu.ok("POST", "/v1/webhooks", json=body)["id"]
    file_id = upload(emu, inputs, "small", ledger)
    submit(emu, ledger, "small", {"input_file_url": f"scaigrid://file/{file_id}"})
    ledger.saw(emu.advance(0))  # the small batch and its first delivery attempt are done


def in_thread(call: Callable[[], httpx.Response]) -> tuple[threading.Thread, list[Any]]:
    """Run `call` on a thread; the list gets its response, or the exception it raised."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except Exception as exc:  # a killed server: a transport error, expected
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def answered(out: list[Any]) -> dict[str, Any] | None:
    """The data of a 200 the thread got, else None (killed mid-flight)."""
    if out and isinstance(out[0], httpx.Response) and out[0].status_code == 200:
        data: dict[str, Any] = out[0].json()["data"]
        return data
    return None


def kill_after(emu: Emulator, seconds: float) -> None:
    time.sleep(seconds)  # the seeded moment itself, not a wait for some state
    emu.kill()


def moment_upload(emu: Emulator, inputs: Inputs, ledger: Ledger, rng: random.Random) -> str:
    """A multipart upload written by hand, so the kill lands after a known share of its bytes."""
    data = inputs.data["upload"]
    cut = int(len(data) * rng.uniform(0.01, 0.99))
    boundary = "crash-trial-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="upload.jsonl"'
        "\r\nContent-Type: application/jsonl\r\n\r\n"
    ).encode()

    def body() -> Iterator[bytes]:
        yield head
        for at in range(0, len(data), 1 << 18):
            if at >= cut:
                emu.proc.kill()  # SIGKILL while the rest is unsent
                emu.proc.wait(timeout=30)
            yield data[at : at + (1 << 18)]
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    try:
        resp = emu.client.post("/v1/files", content=body(), headers=headers)
        if resp.status_code == 200:
            ledger.files[resp.json()["data"]["id"]] = "upload"
    except httpx.TransportError:
        pass
    emu.kill()
    return f"upload: killed with {cut / len(data):.0%} of {len(data) / 1e6:.1f} MB sent"


def moment_submit(emu: Emulator, inputs: Inputs, ledger: Ledger, rng: random.Random) -> str:
    """Two identical inline submits: the first, accepted, times it; the second is killed a
    seeded share of that time after it was sent."""
    body = {"input_file_base64": base64.b64encode(inputs.data["inline"]).decode()}
    started = time.perf_counter()
    submit(emu, ledger, "inline", body)
    took = time.perf_counter() - started
    delay = rng.uniform(0.0, 1.2 * took)
    thread, out = in_thread(
        lambda: emu.client.post(
            "/v1/inference/batch", json={**body, "metadata": {"input": "inline"}}
        )
    )
    kill_after(emu, delay)
    thread.join(timeout=60)
    got = answered(out)
    if got is not None:
        ledger.batches[got["id"]] = "inline"
        return f"submit: answered within {delay * 1000:.0f} ms, then killed"
    return f"submit: killed {delay * 1000:.0f} ms into a {took * 1000:.0f} ms submit"


def _slow_batch(
    emu: Emulator, inputs: Inputs, ledger: Ledger, late: bool = False
) -> dict[str, Any]:
    """The large batch, run at 5 requests per emulator second: it moves only with the clock
    (`late`: it starts an hour after it is submitted)."""
    yaml = SLOW + ("  start_delay: 1h\n" if late else "")
    emu.ok("PUT", f"/_emulator/tenants/{KEY}/scenario", json={"yaml": yaml})
    file_id = upload(emu, inputs, "large", ledger)
    return submit(emu, ledger, "large", {"input_file_url": f"scaigrid://file/{file_id}"})


def _advance_in_thread(emu: Emulator, seconds: float) -> tuple[threading.Thread, list[Any]]:
    return in_thread(lambda: emu.client.post("/_emulator/clock/advance", json={"seconds": seconds}))


def _after_kill(thread: threading.Thread, out: list[Any], ledger: Ledger) -> str:
    thread.join(timeout=60)
    got = answered(out)
    if got is not None:
        ledger.saw(got["now"])
        return "answered before the kill"
    return "in flight at the kill"


def moment_processing(emu: Emulator, inputs: Inputs, ledger: Ledger, rng: random.Random) -> str:
    """Advance until a seeded number of requests are done (answered: committed), then start the
    advance that makes the rest due and kill once a seeded number more are reported done."""
    total = inputs.counts["large"]
    batch = _slow_batch(emu, inputs, ledger)
    done = rng.randrange(0, total - 1)
    target = rng.randrange(done + 1, total)
    ledger.saw(emu.advance(done / 5))
    thread, out = _advance_in_thread(emu, total / 5 + 1)
    seen = done
    deadline = time.monotonic() + 300
    while seen < target and thread.is_alive() and time.monotonic() < deadline:
        got = emu.ok("GET", f"/v1/inference/batch/{batch['id']}")
        seen = got["completed_count"] + got["failed_count"]
    emu.kill()
    state = _after_kill(thread, out, ledger)
    return f"processing: {done} done, {seen}/{total} seen, the advance {state}"


def moment_results(emu: Emulator, inputs: Inputs, ledger: Ledger, rng: random.Random) -> str:
    """Killed in the last chunk (writing the last results, the final status or the event): a
    seeded share of the time it should take, from the pace of the advance before it."""
    total = inputs.counts["large"]
    _slow_batch(emu, inputs, ledger)
    rest = min(total - 1, rng.randrange(1, WORKER_CHUNK))
    started = time.perf_counter()
    ledger.saw(emu.advance((total - rest) / 5))
    delay = rng.uniform(0.0, 1.5) * (time.perf_counter() - started) / (total - rest) * rest
    thread, out = _advance_in_thread(emu, rest / 5 + 1)
    kill_after(emu, delay)
    state = _after_kill(thread, out, ledger)
    return f"results: {rest} left, killed at {delay * 1000:.0f} ms, the advance {state}"


def moment_webhook_retry(emu: Emulator, inputs: Inputs, ledger: Ledger, rng: random.Random) -> str:
    """The prelude's delivery failed (the receiver fails its first posts): move through some of
    its retries, then kill in the backoff or during an advance that makes the next one."""
    steps = rng.randrange(0, len(RETRY_STEPS))
    for seconds in RETRY_STEPS[:steps]:
        ledger.saw(emu.advance(seconds))
    if rng.random() < 0.5:
        emu.kill()
        return f"webhook_retry: in the backoff after {steps + 1} attempts"
    delay = rng.uniform(0.0, 0.05)
    thread, out = in_thread(
        lambda: emu.client.post("/_emulator/clock/advance", json={"seconds": RETRY_STEPS[steps]})
    )
    kill_after(emu, delay)
    thread.join(timeout=60)
    got = answered(out)
    if got is not None:
        ledger.saw(got["now"])
    state = "answered" if got is not None else "in flight"
    return (
        f"webhook_retry: advance to attempt {steps + 2} {state} at the kill ({delay * 1000:.0f} ms)"
    )


def moment_cancel(emu: Emulator, inputs: Inputs, ledger: Ledger, rng: random.Random) -> str:
    """A cancel of the large batch part-way through or, one time in three, while it is still
    pending (that cancel reads the whole input before it closes every request)."""
    pending = rng.random() < 1 / 3
    batch = _slow_batch(emu, inputs, ledger, late=pending)
    if not pending:
        ledger.saw(emu.advance(rng.uniform(1.0, 0.8 * inputs.counts["large"] / 5)))
    delay = rng.uniform(0.0, 0.4 if pending else 0.1)  # about as long as each takes here
    thread, out = in_thread(lambda: emu.client.post(f"/v1/inference/batch/{batch['id']}/cancel"))
    kill_after(emu, delay)
    thread.join(timeout=60)
    state = "pending" if pending else "processing"
    if answered(out) is not None:
        ledger.cancelled.add(batch["id"])
        return f"cancel ({state}): answered within {delay * 1000:.0f} ms, then killed"
    return f"cancel ({state}): killed {delay * 1000:.0f} ms after it was sent"


Moment = Callable[[Emulator, Inputs, Ledger, random.Random], str]
RUN: dict[str, Moment] = {
    "upload": moment_upload,
    "submit": moment_submit,
    "processing": moment_processing,
    "results": moment_results,
    "webhook_retry": moment_webhook_retry,
    "cancel": moment_cancel,
}
