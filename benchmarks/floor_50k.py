"""The floor for a 50,000-request batch: the irreducible work, in one process, no HTTP.

Read the JSONL, parse each line, answer it with `emulator.inference.engine.Engine.infer` (the same
engine the emulator's worker uses), store the results in a SQLite file (WAL, synchronous=NORMAL, as
the emulator's store) with one `executemany` and one commit per 500 results, then read them back in
input order and write the results JSONL. The clock starts after the engine is built and stops when
the output file is closed.

Run: .venv/bin/python benchmarks/floor_50k.py [--count 50000] [--input FILE]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, machine, table, write_batch_input, write_results  # noqa: E402
from emulator.errors import EmulatorError  # noqa: E402
from emulator.inference.catalogue import load_catalogue  # noqa: E402
from emulator.inference.engine import Engine  # noqa: E402

CHUNK = 500
CREATED = 1_767_225_600


def result_line(custom_id: str, ok: bool, payload: bytes) -> bytes:
    key = b'","status":"ok","response":' if ok else b'","status":"error","error":'
    return b'{"custom_id":"' + orjson.dumps(custom_id)[1:-1] + key + payload + b"}\n"


def run_floor(input_path: Path, workdir: Path) -> dict[str, Any]:
    engine = Engine(0, load_catalogue(None))
    db_path, out_path = workdir / "floor.db", workdir / "floor-results.jsonl"
    t0, cpu0 = time.perf_counter(), time.process_time()
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE results (idx INTEGER PRIMARY KEY, custom_id TEXT NOT NULL,"
        " ok INTEGER NOT NULL, payload BLOB NOT NULL)"
    )
    insert = "INSERT INTO results (idx, custom_id, ok, payload) VALUES (?, ?, ?, ?)"
    rows: list[tuple[int, str, int, bytes]] = []
    errors = 0
    with input_path.open("rb") as f:
        for idx, raw in enumerate(f):
            line = orjson.loads(raw)
            try:
                resp = engine.infer(line["url"], line["body"], created=CREATED)
                rows.append((idx, line["custom_id"], 1, orjson.dumps(resp)))
            except EmulatorError as exc:
                errors += 1
                body = orjson.dumps({"code": exc.code, "message": exc.message})
                rows.append((idx, line["custom_id"], 0, body))
            if len(rows) >= CHUNK:
                db.executemany(insert, rows)
                db.commit()
                rows = []
    if rows:
        db.executemany(insert, rows)
        db.commit()
    t1 = time.perf_counter()
    count = 0
    with out_path.open("wb") as out:
        cursor = db.execute("SELECT custom_id, ok, payload FROM results ORDER BY idx")
        while page := cursor.fetchmany(2000):
            out.write(b"".join(result_line(cid, bool(ok), payload) for cid, ok, payload in page))
            count += len(page)
    db.close()
    t2, cpu2 = time.perf_counter(), time.process_time()
    return {
        "seconds": t2 - t0,
        "cpu_seconds": cpu2 - cpu0,
        "compute_and_store_seconds": t1 - t0,
        "read_back_seconds": t2 - t1,
        "results": count,
        "errors": errors,
        "output_bytes": out_path.stat().st_size,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=50_000)
    ap.add_argument("--input", type=Path, help="an existing input JSONL (default: generate one)")
    args = ap.parse_args()
    info = machine()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        input_path = args.input or workdir / "input.jsonl"
        if args.input is None:
            write_batch_input(input_path, args.count)
        size = input_path.stat().st_size
        result = run_floor(input_path, workdir)
    print(
        table(
            [
                "floor",
                "seconds",
                "CPU s",
                "compute+store s",
                "read back s",
                "results",
                "errors",
                "output MB",
            ],
            [
                [
                    "in-process",
                    result["seconds"],
                    result["cpu_seconds"],
                    result["compute_and_store_seconds"],
                    result["read_back_seconds"],
                    result["results"],
                    result["errors"],
                    result["output_bytes"] / 1e6,
                ]
            ],
        )
    )
    path = write_results("floor_50k", {**info, "input_bytes": size, **result})
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
