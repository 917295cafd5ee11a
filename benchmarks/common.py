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
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
API_KEY = "sgk_bench_" + "k" * 32


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Server:
    """A server subprocess that prints "... listening on http://HOST:PORT" as its first line."""

    def __init__(self, name: str, argv: Sequence[str], cwd: Path | None = None) -> None:
        self.name = name
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.stderr = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would block it
        self.started_at = time.perf_counter()  # for start-to-first-200 timings
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
        terminate(self.proc)
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


# --- any server command, memory, start time (batch_e2e.py, peers.py) ------------------------------


class Process:
    """A server subprocess that is not necessarily Python (a peer in node, another venv) and does
    not announce its address: it is told the port, and `url` is known beforehand."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        self.output = tempfile.TemporaryFile()  # stdout and stderr together, never a pipe
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            list(argv),
            cwd=cwd or ROOT,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )

    def stderr_tail(self) -> str:
        self.output.seek(0)
        return self.output.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        terminate(self.proc)
        self.output.close()


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (for servers that cannot report port 0)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def compile_bytecode() -> None:
    """Compile the package's bytecode, as installing it does (pip compiles at install time).

    A checkout installed in editable mode has none until a run writes it, and none ever where
    PYTHONDONTWRITEBYTECODE is set (as on this machine): every start would then compile ~70
    modules from source (~0.1 s), which an installed emulator never does. The peers and the
    bare app's framework are installed packages with their bytecode, so start times compare
    like with like only with ours compiled too.
    """
    import compileall

    compileall.compile_dir(str(ROOT / "emulator"), quiet=1)


def first_200(
    server: Server | Process,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    deadline_seconds: float = 60.0,
) -> float:
    """Seconds from the server's Popen to its first 200 on `path`.

    A refused connection is retried every 5 ms; an accepted one waits for its answer (a server
    that printed its address is listening, so a connection waits in the backlog until the app
    is up). Bounded by `deadline_seconds`; raises if the server exits or never answers 200.
    """
    import httpx

    deadline = server.started_at + deadline_seconds
    last = "no answer"
    while time.perf_counter() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited: {server.stderr_tail()}")
        try:
            resp = httpx.request(
                method, server.url + path, headers=headers, content=content, timeout=30.0
            )
        except httpx.TransportError as exc:
            last = repr(exc)
            time.sleep(0.005)
            continue
        if resp.status_code == 200:
            return time.perf_counter() - server.started_at
        last = f"{resp.status_code} {resp.text[:200]}"
        time.sleep(0.005)
    raise RuntimeError(f"{server.name} never answered 200 on {path}: {last}")


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of a live process in KiB from /proc/PID/status: VmRSS (resident now) or
    VmHWM (the peak resident size over its life)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


class RssSampler:
    """Samples a process's VmRSS every `interval` seconds on a thread, at most `max_seconds`."""

    def __init__(self, pid: int, interval: float = 0.02, max_seconds: float = 1800.0) -> None:
        self.pid = pid
        self.peak_kb = 0
        self.samples = 0
        self._stop = threading.Event()
        self._interval = interval
        self._max_seconds = max_seconds
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        end = time.perf_counter() + self._max_seconds
        while not self._stop.is_set() and time.perf_counter() < end:
            try:
                self.peak_kb = max(self.peak_kb, rss_kb(self.pid))
            except (OSError, RuntimeError):
                return  # the process is gone
            self.samples += 1
            self._stop.wait(self._interval)


# --- the chat/embed batch of batch_e2e.py, floor_stdlib.py and peers.py ---------------------------

E2E_CHAT_MODEL = CHAT_MODELS[0]
E2E_EMBED_MODEL = "openai/text-embedding-3-small"
E2E_DIMENSIONS = 64
E2E_CHAT_URL = "/v1/inference/chat"
E2E_EMBED_URL = "/v1/inference/embed"
_WORDS = (
    "shipment depot route invoice customer driver pallet schedule delay refund order carrier "
    "warehouse region forecast capacity budget contract audit review ticket backlog supplier fuel"
).split()


def long_text(i: int, chars: int) -> str:
    """About `chars` characters of plain words, different for every i (a long prompt)."""
    if chars <= 0:
        return ""
    n = len(_WORDS)
    words = [_WORDS[(i * 7 + k * k) % n] for k in range(chars // 7 + 1)]
    return " ".join(words)[:chars]


def e2e_line(i: int, prompt_chars: int = 0) -> dict[str, Any]:
    """Request i of the chat/embed batch: even lines chat (max_tokens 40), odd lines embed
    (64 dimensions). `prompt_chars` > 0 appends that much text to the prompt or input."""
    cid = f"req-{i:06d}"
    topic = TOPICS[i % len(TOPICS)]
    extra = " " + long_text(i, prompt_chars) if prompt_chars > 0 else ""
    if i % 2:
        body: dict[str, Any] = {
            "model": E2E_EMBED_MODEL,
            "input": f"Ticket {i}: a note about {topic} in region {i % 17}.{extra}",
            "dimensions": E2E_DIMENSIONS,
        }
        return {"custom_id": cid, "method": "POST", "url": E2E_EMBED_URL, "body": body}
    body = {
        "model": E2E_CHAT_MODEL,
        "messages": [
            {"role": "system", "content": "You are a concise analyst. Answer in plain English."},
            {
                "role": "user",
                "content": f"Case {i}: summarise the {topic} for depot {i % 53} "
                f"and suggest one follow-up action.{extra}",
            },
        ],
        "max_tokens": 40,
    }
    return {"custom_id": cid, "method": "POST", "url": E2E_CHAT_URL, "body": body}


def write_e2e_input(path: Path, count: int, prompt_chars: int = 0) -> int:
    """Write the chat/embed batch JSONL; returns its size in bytes."""
    import orjson

    with path.open("wb") as f:
        for start in range(0, count, 1000):
            stop = min(count, start + 1000)
            f.write(
                b"".join(
                    orjson.dumps(e2e_line(i, prompt_chars)) + b"\n" for i in range(start, stop)
                )
            )
    return path.stat().st_size


def check_e2e_results(path: Path, count: int) -> dict[str, int]:
    """Every request exactly once, in input order; counts the lines that are not ok."""
    import orjson

    n = not_ok = 0
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            line = orjson.loads(raw)
            if line.get("custom_id") != f"req-{n - 1:06d}":
                raise RuntimeError(f"result line {n} is {line.get('custom_id')!r}")
            if line.get("status", "ok") != "ok" or line.get("error"):
                not_ok += 1
    if n != count:
        raise RuntimeError(f"{n} result lines for {count} requests")
    return {"lines": n, "not_ok": not_ok}
