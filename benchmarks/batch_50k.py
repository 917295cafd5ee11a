"""A 50,000-request batch end to end through a real emulator process, against the floor.

Emulator: `python -m emulator serve --db <tmp>/e.db` (happy path, real clock). The client uploads
the JSONL with POST /v1/files (multipart, streamed from disk), submits it as
`scaigrid://file/ID`, polls the status every 20 ms until it is completed, and streams the results
download to a file. The time runs from the first upload byte to the last result byte.

Floor: `benchmarks/floor_50k.py` in its own process on the same input (see that file).
The bar: emulator seconds <= 2 x floor seconds. Rounds alternate floor, emulator, floor, ...;
each figure is the median of its rounds. CPU seconds (user + system of the server process, or of
the floor process) are reported too: on a busy machine they are steadier than wall time.

Run: .venv/bin/python benchmarks/batch_50k.py [--count 50000] [--rounds 1]
Exit status: 0 when the bar is met, 1 when it is not.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import (  # noqa: E402
    API_KEY,
    RESULTS,
    ROOT,
    Server,
    cpu_seconds,
    machine,
    median,
    table,
    wait_healthy,
    write_batch_input,
    write_results,
)

BAR = 2.0
POLL_SECONDS = 0.02


def run_emulator(input_path: Path, workdir: Path, count: int) -> dict[str, Any]:
    argv = [
        *"-m emulator serve --port 0 --log-level warning".split(),
        "--db",
        str(workdir / "e.db"),
    ]
    server = Server("emulator", argv, cwd=workdir)
    out_path = workdir / "emulator-results.jsonl"
    auth = {"Authorization": f"Bearer {API_KEY}"}
    try:
        wait_healthy(server.url, "/_emulator/health")
        with httpx.Client(base_url=server.url, headers=auth, timeout=300.0) as client:
            cpu0 = cpu_seconds(server.proc.pid)
            t0 = time.perf_counter()
            with input_path.open("rb") as f:  # httpx streams a file part from disk
                files = {"file": ("input.jsonl", f, "application/jsonl")}
                resp = client.post("/v1/files", files=files)
            resp.raise_for_status()
            file_id = resp.json()["data"]["id"]
            t_upload = time.perf_counter()
            resp = client.post(
                "/v1/inference/batch", json={"input_file_url": f"scaigrid://file/{file_id}"}
            )
            resp.raise_for_status()
            batch_id = resp.json()["data"]["id"]
            t_submit = time.perf_counter()
            polls = 0
            while True:
                status = client.get(f"/v1/inference/batch/{batch_id}").json()["data"]
                polls += 1
                if status["status"] in ("completed", "failed", "cancelled"):
                    break
                time.sleep(POLL_SECONDS)
            t_done = time.perf_counter()
            if status["status"] != "completed":
                raise RuntimeError(f"batch ended {status['status']}: {status.get('error')}")
            size = 0
            with client.stream("GET", status["results_url"]) as download:
                download.raise_for_status()
                with out_path.open("wb") as out:
                    for chunk in download.iter_bytes():
                        out.write(chunk)
                        size += len(chunk)
            t_end = time.perf_counter()
            cpu = cpu_seconds(server.proc.pid) - cpu0
    finally:
        server.stop()
    lines = check_results(out_path, count)
    return {
        "seconds": t_end - t0,
        "upload_seconds": t_upload - t0,
        "submit_seconds": t_submit - t_upload,
        "processing_seconds": t_done - t_submit,
        "download_seconds": t_end - t_done,
        "server_cpu_seconds": cpu,
        "polls": polls,
        "completed_count": status["completed_count"],
        "failed_count": status["failed_count"],
        "results": lines,
        "output_bytes": size,
    }


def check_results(path: Path, count: int) -> int:
    """Every request exactly once, in input order."""
    n = 0
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            cid = orjson.loads(raw)["custom_id"]
            if cid != f"req-{n - 1:06d}":
                raise RuntimeError(f"result line {n} is {cid}")
    if n != count:
        raise RuntimeError(f"{n} result lines for {count} requests")
    return n


def run_floor(input_path: Path) -> dict[str, Any]:
    script = ROOT / "benchmarks" / "floor_50k.py"
    subprocess.run(
        [sys.executable, str(script), "--input", str(input_path)],
        check=True,
        capture_output=True,
        text=True,
    )
    data: dict[str, Any] = json.loads((RESULTS / "floor_50k.json").read_text())
    return data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    info = machine()
    floors: list[dict[str, Any]] = []
    emus: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        input_path = Path(tmp) / "input.jsonl"
        input_bytes = write_batch_input(input_path, args.count)
        for n in range(args.rounds):
            floors.append(run_floor(input_path))
            print(f"round {n + 1} floor     {floors[-1]['seconds']:7.2f} s", flush=True)
            with tempfile.TemporaryDirectory(dir=tmp) as workdir:
                emus.append(run_emulator(input_path, Path(workdir), args.count))
            print(f"round {n + 1} emulator  {emus[-1]['seconds']:7.2f} s", flush=True)

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return median([r[key] for r in rows])

    floor_s, emu_s = med(floors, "seconds"), med(emus, "seconds")
    ratio = emu_s / floor_s
    cpu_ratio = med(emus, "server_cpu_seconds") / med(floors, "cpu_seconds")
    print(
        f"\n{args.count:,} requests, {input_bytes / 1e6:.1f} MB input, median of "
        f"{args.rounds} round(s)"
    )
    print(
        table(
            ["run", "seconds", "CPU s", "upload s", "processing s", "download s", "results MB"],
            [
                [
                    "floor",
                    floor_s,
                    med(floors, "cpu_seconds"),
                    "-",
                    "-",
                    "-",
                    med(floors, "output_bytes") / 1e6,
                ],
                [
                    "emulator",
                    emu_s,
                    med(emus, "server_cpu_seconds"),
                    med(emus, "upload_seconds"),
                    med(emus, "processing_seconds"),
                    med(emus, "download_seconds"),
                    med(emus, "output_bytes") / 1e6,
                ],
            ],
        )
    )
    met = ratio <= BAR
    print(
        f"\nratio emulator/floor: {ratio:.2f} wall, {cpu_ratio:.2f} CPU "
        f"(bar <= {BAR:g} wall): {'PASS' if met else 'FAIL'}"
    )
    path = write_results(
        "batch_50k",
        {
            **info,
            "count": args.count,
            "input_bytes": input_bytes,
            "floor_rounds": floors,
            "emulator_rounds": emus,
            "floor_seconds": floor_s,
            "emulator_seconds": emu_s,
            "ratio": ratio,
            "cpu_ratio": cpu_ratio,
            "bar": BAR,
            "pass": met,
        },
    )
    print(f"wrote {path.relative_to(ROOT)}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
