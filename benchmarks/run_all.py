"""Every benchmark in one command, and one table: target, measured, baseline, ratio, bar, result.

Runs, one after the other, each as its own process (its output is shown as it goes):
  live_chat.py --unique   live chat, every body distinct, against bare_app.py   bar >= 0.75x
  live_chat.py            the same with one repeated body                        bar >= 0.75x
  batch_e2e.py --big      the batch targets (e2e vs floor_stdlib.py, status and live chat p99
                          under load, linear growth, start time, 300 MB input RSS and upload)
  peers.py                LLMock and aimock next to the emulator (info rows, no bars)
  batch_50k.py            only with --with-batch-50k (the engine-based floor, floor_50k.py)
Then reads their JSON from benchmarks/results/ and prints the table. A step that fails shows as
ERROR; the others still run.

Run: .venv/bin/python benchmarks/run_all.py [--rounds 3] [--quick] [--skip peers ...]
Writes benchmarks/results/run_all.json. Exit status: 0 when every bar is met, 1 when not.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import RESULTS, ROOT, machine, table, write_results  # noqa: E402

STEP_TIMEOUT = 1800  # seconds; no step comes near it at full size
STEPS = ("live_chat_unique", "live_chat", "batch_e2e", "peers", "batch_50k")


def commands(args: argparse.Namespace) -> dict[str, list[str]]:
    rounds = ["--rounds", str(args.rounds)]
    quick = ["--quick"] if args.quick else []
    wrk = ["--duration", "2"] if args.quick else []
    cmds = {
        "live_chat_unique": ["live_chat.py", "--unique", *rounds, *wrk],
        "live_chat": ["live_chat.py", *rounds, *wrk],
        "batch_e2e": ["batch_e2e.py", "--big", *rounds, *quick],
        "peers": ["peers.py", *rounds, *quick],
        "batch_50k": ["batch_50k.py", *rounds, *(["--count", "5000"] if args.quick else [])],
    }
    if not args.with_batch_50k:
        del cmds["batch_50k"]
    return {name: cmd for name, cmd in cmds.items() if name not in args.skip}


def run_step(name: str, cmd: list[str]) -> dict[str, Any]:
    """Run one script; its results JSON counts only if it was written by this run."""
    argv = [sys.executable, str(ROOT / "benchmarks" / cmd[0]), *cmd[1:]]
    print(f"\n=== {name}: {' '.join(['python', 'benchmarks/' + cmd[0], *cmd[1:]])}", flush=True)
    path = RESULTS / f"{name}.json"
    t0, wall0 = time.perf_counter(), time.time()
    try:
        status = subprocess.run(argv, cwd=ROOT, timeout=STEP_TIMEOUT).returncode
    except subprocess.TimeoutExpired:
        status = -1
    seconds = time.perf_counter() - t0
    data = None
    if status in (0, 1) and path.exists() and path.stat().st_mtime >= wall0:
        data = json.loads(path.read_text())
    print(f"=== {name}: exit status {status} after {seconds:.0f} s", flush=True)
    return {"command": cmd, "exit_status": status, "seconds": seconds, "data": data}


def live_row(name: str, data: dict[str, Any]) -> dict[str, Any]:
    s = data["summary"]
    return {
        "target": name,
        "measured": s["emulator"]["rps"],
        "unit": "req/s",
        "baseline": s["bare"]["rps"],
        "baseline_name": "bare_app.py",
        "ratio": data["ratio"],
        "bar": f">= {data['bar']:g}x",
        "pass": data["pass"],
    }


def batch_50k_row(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "target": f"batch {data['count']:,} lines vs engine floor (batch_50k.py)",
        "measured": data["emulator_seconds"],
        "unit": "s",
        "baseline": data["floor_seconds"],
        "baseline_name": "floor_50k",
        "ratio": data["ratio"],
        "bar": f"<= {data['bar']:g}x",
        "pass": data["pass"],
    }


def rows_of(name: str, step: dict[str, Any]) -> list[dict[str, Any]]:
    data = step["data"]
    if data is None:
        return [
            {
                "target": f"{name}: ERROR (exit status {step['exit_status']})",
                "measured": None,
                "unit": "",
                "baseline": None,
                "baseline_name": "",
                "ratio": None,
                "bar": "-",
                "pass": False,
            }
        ]
    if name == "live_chat_unique":
        return [live_row("live chat c16, distinct bodies", data)]
    if name == "live_chat":
        return [live_row("live chat c16, repeated body", data)]
    if name == "batch_50k":
        return [batch_50k_row(data)]
    rows: list[dict[str, Any]] = data["targets"]
    return rows


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    v = abs(value)
    text = f"{value:,.0f}" if v >= 100 else f"{value:.1f}" if v >= 10 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def render(rows: list[dict[str, Any]]) -> str:
    cells = []
    for r in rows:
        baseline = fmt(r["baseline"], r["unit"])
        if r["baseline"] is not None and r["baseline_name"]:
            baseline += f" ({r['baseline_name']})"
        measured = fmt(r["measured"], r["unit"]) if r["measured"] is not None else "-"
        if r.get("note"):
            measured = r["note"][:60]
        result = {True: "PASS", False: "FAIL", None: "info"}[r["pass"]]
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        cells.append([r["target"], measured, baseline, ratio, r["bar"], result])
    return table(["target", "measured", "baseline", "ratio", "bar", "result"], cells)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds per script (median)")
    ap.add_argument("--quick", action="store_true", help="small sizes and 2 s wrk rounds")
    ap.add_argument("--skip", action="append", default=[], choices=STEPS, help="repeatable")
    ap.add_argument("--with-batch-50k", action="store_true", help="also batch_50k.py")
    args = ap.parse_args()
    info = machine()
    t0 = time.perf_counter()
    cmds = commands(args)
    if {"live_chat_unique", "live_chat", "peers"} & set(cmds):
        from benchmarks.peers import install_peers  # wrk (and the peers) when missing

        try:
            install_peers()
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"cannot install wrk or the peers: {exc}", file=sys.stderr)
    steps = {name: run_step(name, cmd) for name, cmd in cmds.items()}
    rows = [row for name, step in steps.items() for row in rows_of(name, step)]
    total = time.perf_counter() - t0
    print(f"\nall benchmarks: {total / 60:.1f} min, --rounds {args.rounds}, medians")
    for name, step in steps.items():
        command = " ".join(["benchmarks/" + step["command"][0], *step["command"][1:]])
        print(f"  {name:17} {step['seconds']:5.0f} s  {command}")
    print()
    print(render(rows))
    met = all(r["pass"] is not False for r in rows)
    path = write_results(
        "run_all",
        {
            **info,
            "command": " ".join(sys.argv),
            "seconds": total,
            "steps": {n: {k: v for k, v in s.items() if k != "data"} for n, s in steps.items()},
            "rows": rows,
            "pass": met,
        },
    )
    print(f"wrote {path.relative_to(ROOT)}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
