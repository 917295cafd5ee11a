"""What the benchmark scripts share: server subprocesses, tables and the results JSON."""

from __future__ import annotations

import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
API_KEY = "sgk_bench_" + "k" * 32


class Server:
    """A server subprocess that prints "... listening on http://HOST:PORT" as its first line."""

    def __init__(self, name: str, argv: Sequence[str], cwd: Path | None = None) -> None:
        self.name = name
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.stderr = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would block it
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=cwd or ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().decode()
        if "listening on http://" not in first:
            tail = self.stderr_tail()
            self.stop()
            raise RuntimeError(f"{name} did not start: {first!r} {tail}")
        self.url = first.rsplit(" ", 1)[-1].strip()

    def stderr_tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_healthy(url: str, path: str, attempts: int = 200) -> None:
    """Retry a GET with a short timeout until it answers (no sleeping between attempts)."""
    import httpx

    for _ in range(attempts):
        try:
            httpx.get(url + path, timeout=0.25)
            return
        except httpx.TransportError:
            continue
    raise RuntimeError(f"{url} never answered {path}")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [_row(r, widths) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    """The first column left-aligned, the others right-aligned."""
    parts = [
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    ]
    return "  ".join(parts)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        digits = 3 if abs(value) < 10 else 1 if abs(value) < 1000 else 0
        return f"{value:,.{digits}f}"
    return str(value)


def machine() -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


# --- the 50,000-request batch input ---------------------------------------------------------------

CHAT_MODELS = ("scailabs/poolnoodle-omni", "openai/gpt-4o")
TOPICS = (
    "delivery exceptions",
    "invoice disputes",
    "customer churn",
    "warehouse capacity",
    "driver schedules",
    "returns backlog",
    "supplier delays",
    "fuel costs",
)


def batch_line(i: int) -> dict[str, Any]:
    """Request i of the benchmark batch: 80% chat, 10% embed (256 dimensions), 10% generate."""
    cid = f"req-{i:06d}"
    topic = TOPICS[i % len(TOPICS)]
    kind = i % 10
    if kind == 8:
        body: dict[str, Any] = {
            "model": "openai/text-embedding-3-small",
            "input": [f"Ticket {i}: a note about {topic}.", f"Region {i % 17} summary."],
            "dimensions": 256,
        }
        return {"custom_id": cid, "method": "POST", "url": "/v1/inference/embed", "body": body}
    if kind == 9:
        body = {
            "model": CHAT_MODELS[0],
            "prompt": f"Write a one-paragraph status note about {topic} for site {i % 41}.",
            "max_tokens": 120,
        }
        return {"custom_id": cid, "method": "POST", "url": "/v1/inference/generate", "body": body}
    body = {
        "model": CHAT_MODELS[i % 2],
        "messages": [
            {"role": "system", "content": "You are a concise analyst. Answer in plain English."},
            {
                "role": "user",
                "content": f"Case {i}: summarise the {topic} for depot {i % 53} "
                "and suggest one follow-up action.",
            },
        ],
        "max_tokens": 200,
        "temperature": 0.2,
    }
    return {"custom_id": cid, "method": "POST", "url": "/v1/inference/chat", "body": body}


def write_batch_input(path: Path, count: int) -> int:
    """Write the benchmark JSONL; returns its size in bytes."""
    import orjson

    with path.open("wb") as f:
        for i in range(count):
            f.write(orjson.dumps(batch_line(i)) + b"\n")
    return path.stat().st_size
