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

The moments are in `crash_moments.py`, the checks in `crash_checks.py`. The importable core
(`run_trial`, `run_trials`) is what `tests/test_crash_trials.py` runs with fewer, smaller trials.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from benchmarks.common import machine, table, write_results
from benchmarks.crash_checks import (
    check_batches,
    check_clock,
    check_database,
    check_files,
    check_webhooks,
    settled,
)
from benchmarks.crash_moments import MOMENTS, RUN, Inputs, Ledger, Sizes, prelude
from benchmarks.loopback import START, Emulator, failing_first, receiver

#: hour-long advances after the restart before a batch that is not final is a failure
MAX_HOURS = 30


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
