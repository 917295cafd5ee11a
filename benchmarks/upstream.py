"""A batch through `--upstream`, against the same requests sent straight to the upstream.

The upstream is a second `serve` (seed 7, `:memory:`), reached through its `/oai/v1` surface.
For each --concurrency C, a fresh front `serve --upstream URL/oai/v1 --upstream-concurrency C`
runs a --count (1,000) line batch (`common.batch_line`: 80% chat, 10% embed, 10% generate),
submitted inline and polled every 20 ms until completed; the time runs from the submit to the
completed status. Its floor is the same requests sent straight to the upstream by one
`httpx.AsyncClient` with C calls in flight: what any relay would take at least. The relay's
own cost is the difference, per request. The front without an upstream (the engine's fake
answers) is shown as well.

Measured, each the median of --rounds rounds:
  relay   lines/s of the batch through the front, at each C
  direct  lines/s of the same requests straight to the upstream, at C in flight
  ratio   relay / direct                                   (shown; no bar: the machine is shared)

Run: .venv/bin/python benchmarks/upstream.py [--rounds 3] [--count 1000] [--concurrency 1 4 16]
Writes benchmarks/results/upstream.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import (  # noqa: E402
    API_KEY,
    Server,
    batch_line,
    machine,
    median,
    table,
    wait_healthy,
    write_results,
)

OAI_PATHS = {
    "/v1/inference/chat": "/chat/completions",
    "/v1/inference/generate": "/completions",
    "/v1/inference/embed": "/embeddings",
}
POLL_SECONDS = 0.02
DEADLINE_SECONDS = 600


def serve(name: str, *extra: str) -> Server:
    server = Server(name, ["-m", "emulator", "serve", "--port", "0", "--db", ":memory:",
                           "--log-level", "warning", *extra])  # fmt: skip
    wait_healthy(server.url, "/_emulator/health")
    return server


def run_batch(url: str, lines: list[dict[str, Any]]) -> float:
    """Seconds from the submit to the completed status; checks every line succeeded."""
    data = base64.b64encode(b"".join(orjson.dumps(x) + b"\n" for x in lines)).decode()
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=url, headers=auth, timeout=60) as client:
        started = time.perf_counter()
        resp = client.post("/v1/inference/batch", json={"input_file_base64": data})
        resp.raise_for_status()
        batch_id = resp.json()["data"]["id"]
        while time.perf_counter() - started < DEADLINE_SECONDS:
            batch = client.get(f"/v1/inference/batch/{batch_id}").json()["data"]
            if batch["status"] == "completed":
                seconds = time.perf_counter() - started
                if batch["completed_count"] != len(lines):
                    raise RuntimeError(f"{batch['failed_count']} lines failed")
                return seconds
            time.sleep(POLL_SECONDS)
    raise RuntimeError("the batch did not complete in time")


async def direct(url: str, lines: list[dict[str, Any]], concurrency: int) -> float:
    """Seconds to send every line's request straight to the upstream, `concurrency` at once."""
    auth = {"Authorization": f"Bearer {API_KEY}"}
    turns = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=f"{url}/oai/v1", headers=auth, timeout=60, limits=limits
    ) as client:

        async def one(line: dict[str, Any]) -> None:
            async with turns:
                resp = await client.post(OAI_PATHS[line["url"]], json=line["body"])
                resp.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(line) for line in lines))
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    lines = [batch_line(i) for i in range(args.count)]
    upstream = serve("upstream", "--seed", "7")
    rows, figures = [], {}
    try:
        fake = []
        for _ in range(args.rounds):
            front = serve("front (engine)")
            try:
                fake.append(run_batch(front.url, lines))
            finally:
                front.stop()
        rows.append(["no upstream (engine)", "-", args.count / median(fake), "-", "-"])
        figures["engine_lines_per_s"] = args.count / median(fake)
        for c in args.concurrency:
            relay, straight = [], []
            for _ in range(args.rounds):
                relayed = ("--upstream", f"{upstream.url}/oai/v1", "--upstream-key", API_KEY)
                front = serve(f"front c={c}", *relayed, "--upstream-concurrency", str(c))
                try:
                    relay.append(run_batch(front.url, lines))
                finally:
                    front.stop()
                straight.append(asyncio.run(direct(upstream.url, lines, c)))
            r, d = args.count / median(relay), args.count / median(straight)
            overhead_ms = (median(relay) - median(straight)) / args.count * 1000
            rows.append([f"upstream, {c} in flight", c, r, d, r / d])
            figures[f"c{c}"] = {"relay_lines_per_s": r, "direct_lines_per_s": d,
                                "relay_overhead_ms_per_line": overhead_ms}  # fmt: skip
    finally:
        upstream.stop()
    print(table(["front", "C", "relay lines/s", "direct lines/s", "relay / direct"], rows))
    path = write_results(
        "upstream", {"machine": machine(), "count": args.count, "rounds": args.rounds, **figures}
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
