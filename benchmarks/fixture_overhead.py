"""What the `scaigrid` fixture costs per test: N empty tests with and without it, through pytest.

Each round runs pytest in a subprocess (plugin autoload on, no cache) over a temporary folder,
once with N empty tests and once with one, for each kind of test; the per-test cost of a kind is
`(t(N) - t(1)) / (N - 1)`, which removes the start of pytest and of the session's server. The
fixture's overhead is that cost minus the bare test's. Each figure is the median of the rounds.

Run: `.venv/bin/python benchmarks/fixture_overhead.py [--count 200] [--rounds 3]`.
Bar: `scaigrid` and `scaigrid_inprocess` each cost <= 5 ms per test on top of an empty test.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine, median, table, write_results

KINDS = {
    "bare": "def test_{i}():\n    pass\n",
    "scaigrid": "def test_{i}(scaigrid):\n    pass\n",
    "scaigrid_inprocess": "def test_{i}(scaigrid_inprocess):\n    pass\n",
}
BAR_MS = 5.0


def run_once(folder: Path, kind: str, count: int) -> float:
    """Seconds for one pytest run over `count` empty tests of `kind`."""
    case = folder / f"{kind}_{count}"
    case.mkdir(exist_ok=True)
    (case / "test_empty.py").write_text("\n".join(KINDS[kind].format(i=i) for i in range(count)))
    (case / "pytest.ini").write_text("[pytest]\n")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(case)],
        cwd=case,
        capture_output=True,
        text=True,
        timeout=600,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"pytest failed for {kind} x {count}:\n{done.stdout}\n{done.stderr}")
    return elapsed


def per_test_ms(folder: Path, kind: str, count: int) -> float:
    return (run_once(folder, kind, count) - run_once(folder, kind, 1)) / (count - 1) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="empty tests per run (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; figures are medians")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds to run")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or "bare" not in kinds or args.count < 2:
        parser.error(f"kinds must include bare and be among {', '.join(KINDS)}; count >= 2")
    samples: dict[str, list[float]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="fixture-overhead-") as tmp:
        for _ in range(args.rounds):
            for kind in kinds:
                samples[kind].append(per_test_ms(Path(tmp), kind, args.count))
    bare = median(samples["bare"])
    rows: list[list[Any]] = []
    results: dict[str, Any] = {"count": args.count, "rounds": args.rounds, "bar_ms": BAR_MS}
    failed = False
    for kind in kinds:
        cost = median(samples[kind])
        overhead = cost - bare
        verdict = "" if kind == "bare" else ("PASS" if overhead <= BAR_MS else "FAIL")
        failed |= verdict == "FAIL"
        rows.append([kind, f"{cost:.2f}", "" if kind == "bare" else f"{overhead:.2f}", verdict])
        results[kind] = {
            "per_test_ms": cost,
            "overhead_ms": overhead,
            "samples_ms": samples[kind],
        }
    print(table(["test", "ms per test", "overhead ms", f"<= {BAR_MS} ms"], rows))
    results["machine"] = machine()
    print(f"results: {write_results('fixture_overhead', results)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
