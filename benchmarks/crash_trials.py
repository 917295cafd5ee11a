"""Crash trials: SIGKILL a real `serve` process at a seeded moment, restart it on the same
database, drive it to the end on the emulator clock and check that nothing accepted was lost.

    .venv/bin/python benchmarks/crash_trials.py --trials 20 --seed 1

Each trial starts a server on a fresh file database with a frozen clock, registers a webhook with
a loopback receiver that answers 503 to its first posts, uploads a file and submits a batch from
it (the prelude: all accepted), then reaches one moment and kills the process there:

- `upload`: a large multipart upload, killed once a seeded share of its bytes is sent;
- `submit`: an inline (base64) submit, killed a seeded time after it was sent;
- `processing`: a large batch, killed once a seeded number of its requests are done;
- `results`: the same, killed in its last chunk (the final results, the final status, the event);
- `webhook_retry`: a delivery that failed, killed in its retry backoff or while a clock advance
  is making retries;
- `cancel`: a cancel of a batch being processed, killed a seeded time after it was sent.

A second server then starts on the same database; the clock is advanced an hour at a time until
every batch is final and every delivery settled, and the checks run: every file and batch that
got its 2xx before the kill is there (one killed mid-flight may be absent, never half-stored);
every stored file's content is exactly one of the inputs; every batch's results hold each
custom_id once, in input order, and its counters match them; a cancel that was answered stuck;
every final batch's event reached the receiver and no delivery is left pending or failed; the
clock is not behind the last instant the first server reported, and no timestamp is ahead of it;
after a clean stop, `PRAGMA integrity_check` is ok, no file chunk is orphaned and the stored
counters match the stored results. Any failed check fails the trial; the script exits 1 then.

The importable core (`run_trial`, `run_trials`) is what `tests/test_crash_trials.py` runs with
fewer, smaller trials.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import orjson

from benchmarks.common import e2e_line, machine, table, write_results
from benchmarks.crash_checks import (
    check_batches,
    check_clock,
    check_database,
    check_files,
    check_webhooks,
    settled,
)
from benchmarks.loopback import KEY, START, WEBHOOK_SECRET, Emulator, failing_first, receiver

MOMENTS = ("upload", "submit", "processing", "results", "webhook_retry", "cancel")
FINAL = ("completed", "cancelled", "failed")
#: the worker stores results 500 at a time (emulator.batch.worker.CHUNK)
WORKER_CHUNK = 500
#: the cancel trials' batches run 5 requests per emulator second, so they are mid-way for long
SLOW = (
    "name: crash-slow\ndescription: 5 requests a second\n"
    "processing:\n  latency: 1s\n  concurrency: 5\n"
)
#: retries come 30 s, 2 min, 10 min ... after the first failure: the advances that reach each
RETRY_STEPS = (30.0, 90.0, 480.0)
#: hour-long advances after the restart before a batch that is not final is a failure
MAX_HOURS = 30


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


@dataclass
class TrialResult:
    n: int
    seed: int
    moment: str
    landed: str = ""
    accepted: str = ""
    found: str = ""
    posts: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


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


def _slow_batch(emu: Emulator, inputs: Inputs, ledger: Ledger) -> dict[str, Any]:
    """The large batch, run at 5 requests per emulator second: it moves only with the clock."""
    emu.ok("PUT", f"/_emulator/tenants/{KEY}/scenario", json={"yaml": SLOW})
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
    """A cancel of a batch part-way through (5 requests per emulator second)."""
    batch = _slow_batch(emu, inputs, ledger)
    ledger.saw(emu.advance(rng.uniform(1.0, 0.8 * inputs.counts["large"] / 5)))
    delay = rng.uniform(0.0, 0.1)
    thread, out = in_thread(lambda: emu.client.post(f"/v1/inference/batch/{batch['id']}/cancel"))
    kill_after(emu, delay)
    thread.join(timeout=60)
    if answered(out) is not None:
        ledger.cancelled.add(batch["id"])
        return f"cancel: answered within {delay * 1000:.0f} ms, then killed"
    return f"cancel: killed {delay * 1000:.0f} ms after it was sent"


Moment = Callable[[Emulator, Inputs, Ledger, random.Random], str]
RUN: dict[str, Moment] = {
    "upload": moment_upload,
    "submit": moment_submit,
    "processing": moment_processing,
    "results": moment_results,
    "webhook_retry": moment_webhook_retry,
    "cancel": moment_cancel,
}


# --- one trial -----------------------------------------------------------------------------------


def serve(db: Path, seed: int, name: str) -> Emulator:
    args = ("--clock", "frozen", "--clock-start", START, "--seed", str(seed))
    return Emulator(db, *args, "--log-level", "warning", name=name)


def run_trial(n: int, seed: int, moment: str, inputs: Inputs, workdir: Path) -> TrialResult:
    """One trial in `workdir` (empty): kill at `moment`, restart, drive to the end, check."""
    result = TrialResult(n, seed, moment)
    rng = random.Random(f"{seed}:{moment}")
    fails = rng.randint(2, 4) if moment == "webhook_retry" else rng.randint(0, 2)
    started = time.perf_counter()
    db = workdir / "emulator.db"
    ledger = Ledger()
    with receiver(failing_first(fails)) as (hook, got):
        first = serve(db, seed, "first")
        try:
            prelude(first, inputs, ledger, hook)
            result.landed = RUN[moment](first, inputs, ledger, rng)
        finally:
            first.kill()
        second = serve(db, seed, "second")
        try:
            result.problems += restart_checks(second, inputs, ledger, got, result)
        finally:
            second.stop()
            log = second.log()
    result.problems += check_database(db)
    if "Traceback" in log:
        result.problems.append("the restarted server logged an exception: " + log[-1500:])
    result.accepted = f"{len(ledger.files)}f/{len(ledger.batches)}b"
    result.seconds = time.perf_counter() - started
    return result


def restart_checks(
    emu: Emulator, inputs: Inputs, ledger: Ledger, got: Any, result: TrialResult
) -> list[str]:
    now, problems = check_clock(emu, ledger)
    for _ in range(MAX_HOURS):
        if settled(emu, ledger.webhook):
            break
        now = emu.advance(3600)
    files, found = check_files(emu, inputs, ledger)
    problems += found
    batches, found = check_batches(emu, inputs, ledger, now)
    problems += found
    result.posts, found = check_webhooks(emu, ledger, batches, got)
    problems += found
    result.found = f"{files}f/{len(batches)}b"
    return problems


def plan(trials: int, seed: int, moments: tuple[str, ...] = MOMENTS) -> list[tuple[int, str]]:
    """(trial seed, moment) per trial: the moments in turn, shuffled by the seed, so that any
    len(moments) trials in a row cover all of them."""
    rng = random.Random(seed)
    out = []
    while len(out) < trials:
        order = list(moments)
        rng.shuffle(order)
        out += [(rng.randrange(1 << 31), m) for m in order]
    return out[:trials]


def run_trials(
    trials: int,
    seed: int,
    sizes: Sizes,
    workdir: Path,
    report: Callable[[TrialResult], None] = lambda r: None,
    moments: tuple[str, ...] = MOMENTS,
) -> list[TrialResult]:
    inputs = Inputs(sizes)
    results = []
    for n, (trial_seed, moment) in enumerate(plan(trials, seed, moments), 1):
        where = workdir / f"trial-{n:03d}"
        where.mkdir()
        try:
            result = run_trial(n, trial_seed, moment, inputs, where)
        except Exception as exc:  # the harness itself failed: the trial failed
            result = TrialResult(n, trial_seed, moment, problems=[f"{type(exc).__name__}: {exc}"])
        results.append(result)
        report(result)
    return results


# --- the script ----------------------------------------------------------------------------------


def line(r: TrialResult) -> str:
    verdict = "ok" if r.ok else "FAIL " + "; ".join(r.problems)
    return (
        f"trial {r.n:3d}  seed {r.seed:10d}  {r.moment:13s} {r.landed}  accepted {r.accepted}"
        f" found {r.found}  webhook posts {r.posts}  {r.seconds:.1f} s  {verdict}"
    )


def summary(results: list[TrialResult]) -> str:
    rows = []
    for m in MOMENTS:
        mine = [r for r in results if r.moment == m]
        if mine:
            rows.append([m, len(mine), sum(r.ok for r in mine), sum(r.seconds for r in mine)])
    rows.append(["all", len(results), sum(r.ok for r in results), sum(r.seconds for r in results)])
    return table(["moment", "trials", "passed", "seconds"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--lines", type=int, default=Sizes.lines, help="requests in the large batch"
    )
    parser.add_argument(
        "--moments", default=",".join(MOMENTS), help="comma-separated, of: " + ", ".join(MOMENTS)
    )
    args = parser.parse_args(argv)
    moments = tuple(args.moments.split(","))
    if not set(moments) <= set(MOMENTS):
        parser.error(f"--moments: each of {', '.join(MOMENTS)}")
    sizes = Sizes(lines=args.lines, upload_lines=args.lines)
    with tempfile.TemporaryDirectory(prefix="crash-trials-") as tmp:
        results = run_trials(
            args.trials, args.seed, sizes, Path(tmp), lambda r: print(line(r), flush=True), moments
        )
    print()
    print(summary(results))
    failed = [r for r in results if not r.ok]
    path = write_results(
        "crash_trials",
        {
            "machine": machine(),
            "trials": args.trials,
            "seed": args.seed,
            "lines": args.lines,
            "passed": len(results) - len(failed),
            "results": [vars(r) for r in results],
        },
    )
    print(f"\n{len(results) - len(failed)}/{len(results)} trials passed; {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
