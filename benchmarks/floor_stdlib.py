"""The stdlib floor for the chat/embed batch: only the work any implementation has to do.

One process, no HTTP, no emulator code. For each input line: stdlib `json.loads`; a chat line gets
one Faker `sentence(nb_words=20)` as its answer, an embed line a fixed 64-float vector; the result
line is rendered with `json.dumps`. Rows go into a SQLite table (WAL, synchronous=NORMAL) with one
`executemany` and one commit per 500, are read back in input order and written as the results
JSONL. The clock starts after Faker is built and stops when the output file is closed.

Run: .venv/bin/python benchmarks/floor_stdlib.py [--count 50000] [--input FILE] [--json-out FILE]
The input defaults to the chat/embed batch of `benchmarks/batch_e2e.py` (common.write_e2e_input).
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, machine, table, write_e2e_input, write_results  # noqa: E402

CHUNK = 500
CREATED = 1_767_225_600
# The fixed vector every embed line gets: 64 full-precision floats, as an embedding model sends.
VECTOR = [math.sin(k + 1) / 4 for k in range(64)]


def answer(idx: int, request: dict[str, Any], fake: Any) -> dict[str, Any]:
    """The response body for one request line: a chat completion or an embedding list."""
    body = request["body"]
    if request["url"].endswith("/embed"):
        tokens = len(body["input"]) // 4 + 1
        return {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": VECTOR}],
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    text = fake.sentence(nb_words=20)
    prompt = sum(len(m["content"]) for m in body["messages"]) // 4 + 1
    completion = len(text) // 4 + 1
    return {
        "id": f"chatcmpl-{idx:024x}",
        "object": "chat.completion",
        "created": CREATED,
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def run_floor(input_path: Path, workdir: Path) -> dict[str, Any]:
    from faker import Faker

    fake = Faker()
    fake.seed_instance(0)
    db_path, out_path = workdir / "floor.db", workdir / "floor-results.jsonl"
    t0, cpu0 = time.perf_counter(), time.process_time()
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE results (idx INTEGER PRIMARY KEY, line TEXT NOT NULL)")
    insert = "INSERT INTO results (idx, line) VALUES (?, ?)"
    rows: list[tuple[int, str]] = []
    with input_path.open("rb") as f:
        for idx, raw in enumerate(f):
            request = json.loads(raw)
            result = {
                "custom_id": request["custom_id"],
                "status": "ok",
                "response": answer(idx, request, fake),
            }
            rows.append((idx, json.dumps(result, separators=(",", ":"))))
            if len(rows) >= CHUNK:
                db.executemany(insert, rows)
                db.commit()
                rows = []
    if rows:
        db.executemany(insert, rows)
        db.commit()
    t1 = time.perf_counter()
    count = 0
    with out_path.open("w") as out:
        cursor = db.execute("SELECT line FROM results ORDER BY idx")
        while page := cursor.fetchmany(2000):
            out.write("".join(line + "\n" for (line,) in page))
            count += len(page)
    db.close()
    t2, cpu2 = time.perf_counter(), time.process_time()
    return {
        "seconds": t2 - t0,
        "cpu_seconds": cpu2 - cpu0,
        "compute_and_store_seconds": t1 - t0,
        "read_back_seconds": t2 - t1,
        "results": count,
        "output_bytes": out_path.stat().st_size,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=50_000)
    ap.add_argument("--input", type=Path, help="an existing input JSONL (default: generate one)")
    ap.add_argument(
        "--json-out", type=Path, help="write the result JSON here (default: results/floor_stdlib)"
    )
    args = ap.parse_args()
    info = machine()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        input_path = args.input or workdir / "input.jsonl"
        if args.input is None:
            write_e2e_input(input_path, args.count)
        size = input_path.stat().st_size
        result = run_floor(input_path, workdir)
    print(
        table(
            ["floor", "seconds", "CPU s", "compute+store s", "read back s", "results", "output MB"],
            [
                [
                    "stdlib",
                    result["seconds"],
                    result["cpu_seconds"],
                    result["compute_and_store_seconds"],
                    result["read_back_seconds"],
                    result["results"],
                    result["output_bytes"] / 1e6,
                ]
            ],
        )
    )
    data = {**info, "input_bytes": size, **result}
    if args.json_out:
        args.json_out.write_text(json.dumps(data, indent=2) + "\n")
    else:
        path = write_results("floor_stdlib", data)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
