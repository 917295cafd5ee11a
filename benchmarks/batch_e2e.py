"""The chat/embed batch end to end through a real `serve` process, against its floors.

Every emulator run is a fresh `python -m emulator serve --port 0 --db <tmp>/e.db` subprocess (real
clock, happy path), driven over HTTP only. The client uploads the JSONL with POST /v1/files
(multipart, streamed from disk), submits `{"input_file_url": "scaigrid://file/ID"}`, polls
GET /v1/inference/batch/{id} every 0.1 s until it is completed, then streams `results_url` to a
file. The time runs from the first upload byte to the last result byte; then the results are
checked (every request once, in input order).

Measured, each the median of --rounds rounds (floor and emulator alternate):
  e2e     a --count (50,000) line batch, half chat (max_tokens 40), half embed (64 dimensions),
          against `floor_stdlib.py` on the same file.              bar: emulator <= 1.5 x floor
  load    the same batch while 16 clients GET its status in a closed loop and one client sends
          live chats (every body distinct); p99 of each, next to the same load on the idle server
          after the batch.                                        bars: p99 <= 50 ms, both
  linear  e2e seconds per request for 1,000, 5,000 and --count lines (50,000), the smaller two
          polled every 5 ms: a 0.1 s poll would add up to 0.1 s of waiting (100 us a request at
          1,000 lines) that is the client's, not the emulator's.   bar: max/min <= 1.2
  start   Popen to the first 200 of GET /_emulator/health, against `bare_app.py` started the
          same way (first 200 of its only route).                  bar: emulator <= 1.3 x bare
  big     (--big) a ~300 MB input (long prompts, --count lines): the server's peak RSS (VmHWM
          from /proc, and VmRSS sampled every 20 ms), and the upload time against
          shutil.copyfile of the same file on the same disk (best of three copies).
                                                            bars: <= 150 MB, upload <= 2 x copy

Run: .venv/bin/python benchmarks/batch_e2e.py [--rounds 3] [--count 50000] [--big] [--quick]
Writes benchmarks/results/batch_e2e.json. Exit status: 0 when every bar is met, 1 when not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import (  # noqa: E402
    API_KEY,
    E2E_CHAT_MODEL,
    E2E_CHAT_URL,
    E2E_EMBED_MODEL,
    ROOT,
    RssSampler,
    Server,
    check_e2e_results,
    compile_bytecode,
    cpu_seconds,
    first_200,
    machine,
    median,
    rss_kb,
    table,
    write_e2e_input,
    write_results,
)
from benchmarks.live_chat import BODY as CHAT_BODY  # noqa: E402

BAR_E2E = 1.5
BAR_P99_MS = 50.0
BAR_LINEAR = 1.2
BAR_START = 1.3
BAR_RSS_MB = 150.0
BAR_UPLOAD = 2.0
POLL_SECONDS = 0.1
LINEAR_POLL_SECONDS = 0.005
TERMINAL = ("completed", "failed", "cancelled", "expired")
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MAX_BATCH_SECONDS = 900.0  # every wait for a batch is bounded by this
MAX_LOAD_REQUESTS = 2_000_000


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def emulator_argv(db: Path) -> list[str]:
    return [*"-m emulator serve --port 0 --log-level warning".split(), "--db", str(db)]


def start_emulator(workdir: Path) -> Server:
    server = Server("emulator", emulator_argv(workdir / "e.db"), cwd=workdir)
    try:
        first_200(server, "/_emulator/health")
    except BaseException:
        server.stop()
        raise
    return server


def check_models(url: str) -> None:
    """The benchmark's two models are in the bundled catalogue (the input names them)."""
    resp = httpx.get(url + "/v1/models", headers=AUTH, timeout=30)
    resp.raise_for_status()
    slugs = {m.get("slug") or m.get("id") for m in resp.json()["data"]["items"]}
    missing = {E2E_CHAT_MODEL, E2E_EMBED_MODEL} - slugs
    if missing:
        raise RuntimeError(f"models {sorted(missing)} not in the catalogue: {sorted(slugs)}")


# --- one batch through the HTTP API -----------------------------------------------------------


def upload(client: httpx.Client, input_path: Path) -> str:
    with input_path.open("rb") as f:  # httpx streams a file part from disk
        resp = client.post("/v1/files", files={"file": ("input.jsonl", f, "application/jsonl")})
    resp.raise_for_status()
    file_id: str = resp.json()["data"]["id"]
    return file_id


def submit(client: httpx.Client, file_id: str) -> str:
    resp = client.post("/v1/inference/batch", json={"input_file_url": f"scaigrid://file/{file_id}"})
    resp.raise_for_status()
    batch_id: str = resp.json()["data"]["id"]
    return batch_id


def poll(
    client: httpx.Client, batch_id: str, every: float = POLL_SECONDS
) -> tuple[dict[str, Any], dict[str, Any]]:
    """GET the status every `every` seconds until it is terminal (bounded in time)."""
    deadline = time.perf_counter() + MAX_BATCH_SECONDS
    polls = 0
    while time.perf_counter() < deadline:
        resp = client.get(f"/v1/inference/batch/{batch_id}")
        resp.raise_for_status()
        status: dict[str, Any] = resp.json()["data"]
        polls += 1
        if status["status"] in TERMINAL:
            return status, {"polls": polls}
        time.sleep(every)
    raise RuntimeError(f"batch {batch_id} not done after {MAX_BATCH_SECONDS:.0f} s")


def fine_poll(url: str, batch_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The linear runs' waiter: `poll` every LINEAR_POLL_SECONDS."""
    with httpx.Client(base_url=url, headers=AUTH, timeout=600.0) as client:
        return poll(client, batch_id, LINEAR_POLL_SECONDS)


def download(client: httpx.Client, url: str, out_path: Path) -> int:
    size = 0
    with client.stream("GET", url) as resp:
        resp.raise_for_status()
        with out_path.open("wb") as out:
            for chunk in resp.iter_bytes():
                out.write(chunk)
                size += len(chunk)
    return size


Waiter = Callable[[str, str], tuple[dict[str, Any], dict[str, Any]]]


def run_e2e(
    workdir: Path,
    input_path: Path,
    count: int,
    *,
    waiter: Waiter | None = None,
    sample_rss: bool = False,
    after: Callable[[str, str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One batch on a fresh server. `waiter(url, batch_id)` replaces the 0.1 s polling (the
    loaded run); `after(url, batch_id)` runs on the server once the results are downloaded."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = start_emulator(workdir)
    out_path = workdir / "results.jsonl"
    extra: dict[str, Any] = {}
    try:
        pid = server.proc.pid
        check_models(server.url)
        idle_rss_kb = rss_kb(pid)
        sampler = RssSampler(pid) if sample_rss else None
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=600.0) as client:
            if sampler:
                sampler.__enter__()
            cpu0 = cpu_seconds(pid)
            t0 = time.perf_counter()
            file_id = upload(client, input_path)
            t_upload = time.perf_counter()
            batch_id = submit(client, file_id)
            t_submit = time.perf_counter()
            if waiter is None:
                status, wait_info = poll(client, batch_id)
            else:
                status, wait_info = waiter(server.url, batch_id)
            t_done = time.perf_counter()
            if status["status"] != "completed":
                raise RuntimeError(f"batch ended {status['status']}: {status.get('error')}")
            size = download(client, status["results_url"], out_path)
            t_end = time.perf_counter()
            cpu = cpu_seconds(pid) - cpu0
            if sampler:
                sampler.__exit__(None, None, None)
            hwm_kb = rss_kb(pid, "VmHWM")
            if after is not None:
                extra = after(server.url, batch_id)
    except Exception as exc:
        exited = server.proc.poll()
        raise RuntimeError(
            f"emulator run failed (server exit status {exited}): {exc!r}\n{server.stderr_tail()}"
        ) from exc
    finally:
        server.stop()
    checked = check_e2e_results(out_path, count)
    out_path.unlink()
    return {
        "count": count,
        "seconds": t_end - t0,
        "seconds_per_request": (t_end - t0) / count,
        "upload_seconds": t_upload - t0,
        "submit_seconds": t_submit - t_upload,
        "processing_seconds": t_done - t_submit,
        "download_seconds": t_end - t_done,
        "server_cpu_seconds": cpu,
        "completed_count": status["completed_count"],
        "failed_count": status["failed_count"],
        "results": checked["lines"],
        "results_not_ok": checked["not_ok"],
        "output_bytes": size,
        "idle_rss_mb": idle_rss_kb / 1024,
        "peak_rss_mb": hwm_kb / 1024,
        "sampled_peak_rss_mb": sampler.peak_kb / 1024 if sampler else None,
        **wait_info,
        **extra,
    }


# --- the floor ----------------------------------------------------------------------------------


def run_floor(input_path: Path, workdir: Path) -> dict[str, Any]:
    out = workdir / "floor.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "floor_stdlib.py"),
            "--input",
            str(input_path),
            "--json-out",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=MAX_BATCH_SECONDS,
    )
    data: dict[str, Any] = json.loads(out.read_text())
    return data


# --- status and live chat under load ------------------------------------------------------------


def chat_body(worker: int, n: int) -> bytes:
    """The live_chat.py body with a distinct report number, so no answer comes from memory."""
    body = orjson.dumps(CHAT_BODY)
    return body.replace(b"report 74", f"report {worker}-{n}".encode())


class RawHTTP:
    """A minimal HTTP/1.1 keep-alive connection over asyncio streams: a prebuilt request out,
    status and body back. At concurrency 16, httpx.AsyncClient costs the client ~3.5 ms of CPU
    per request and caps near 250 req/s on this machine, so its latencies measure the client;
    this costs a few tens of microseconds and measures the server."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        self.host, self.port = host, int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    @staticmethod
    def request_bytes(url: str, method: str, path: str, body: bytes = b"") -> bytes:
        host = url.removeprefix("http://").rstrip("/")  # links in answers are built from it
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {API_KEY}\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        return (head + "\r\n").encode() + body

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        headers = head.lower()
        marker = headers.find(b"\r\ncontent-length:")
        if marker >= 0:
            value = headers[marker + 17 : headers.index(b"\r\n", marker + 2)]
            return status, await self.reader.readexactly(int(value))
        if b"transfer-encoding: chunked" not in headers:
            raise RuntimeError(f"no length in {head!r}")
        body = bytearray()
        while size := int((await self.reader.readuntil(b"\r\n"))[:-2], 16):
            body += await self.reader.readexactly(size + 2)
            del body[-2:]
        await self.reader.readuntil(b"\r\n")
        return status, bytes(body)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def _load(
    url: str,
    batch_id: str,
    *,
    concurrency: int,
    chat_concurrency: int,
    seconds: float,
    until_terminal: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`concurrency` clients GET the batch's status in a closed loop while `chat_concurrency`
    clients send live chats (every body distinct), until the batch is done (`until_terminal`)
    or for `seconds`; bounded by both and by MAX_LOAD_REQUESTS."""
    status_ms: list[float] = []
    chat_ms: list[float] = []
    errors = {"status": 0, "chat": 0}
    final: dict[str, Any] = {}
    done = asyncio.Event()
    status_request = RawHTTP.request_bytes(url, "GET", f"/v1/inference/batch/{batch_id}")
    deadline = time.perf_counter() + seconds

    def going() -> bool:
        return (
            not done.is_set()
            and time.perf_counter() < deadline
            and len(status_ms) + len(chat_ms) < MAX_LOAD_REQUESTS
        )

    async def status_worker() -> None:
        conn = RawHTTP(url)
        try:
            while going():
                t = time.perf_counter()
                code, body = await conn.send(status_request)
                status_ms.append((time.perf_counter() - t) * 1e3)
                if code != 200:
                    errors["status"] += 1
                    continue
                data = orjson.loads(body)["data"]
                if until_terminal and data["status"] in TERMINAL:
                    final.update(data)
                    done.set()
        finally:
            await conn.close()

    async def chat_worker(k: int) -> None:
        conn = RawHTTP(url)
        n = 0
        try:
            while going():
                raw = RawHTTP.request_bytes(url, "POST", E2E_CHAT_URL, chat_body(k, n))
                n += 1
                t = time.perf_counter()
                code, _ = await conn.send(raw)
                chat_ms.append((time.perf_counter() - t) * 1e3)
                if code != 200:
                    errors["chat"] += 1
        finally:
            await conn.close()

    t0, cpu0 = time.perf_counter(), time.process_time()
    workers = [status_worker() for _ in range(concurrency)]
    workers += [chat_worker(k) for k in range(chat_concurrency)]
    await asyncio.gather(*workers)
    elapsed, client_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if until_terminal and not final:
        raise RuntimeError(f"batch {batch_id} not done after {seconds:.0f} s of load")
    stats = {
        "load_seconds": elapsed,
        "client_cpu_seconds": client_cpu,
        "status_requests": len(status_ms),
        "status_p50_ms": percentile(status_ms, 50),
        "status_p99_ms": percentile(status_ms, 99),
        "status_max_ms": max(status_ms, default=float("nan")),
        "chat_requests": len(chat_ms),
        "chat_p50_ms": percentile(chat_ms, 50),
        "chat_p99_ms": percentile(chat_ms, 99),
        "chat_max_ms": max(chat_ms, default=float("nan")),
        "errors": errors,
    }
    return final, stats


def run_async(coro: Any) -> Any:
    """asyncio.run on uvloop when it is installed (it comes with uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def loaded_waiter(concurrency: int, chat_concurrency: int) -> Waiter:
    def wait(url: str, batch_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return run_async(
            _load(
                url,
                batch_id,
                concurrency=concurrency,
                chat_concurrency=chat_concurrency,
                seconds=MAX_BATCH_SECONDS,
                until_terminal=True,
            )
        )

    return wait


def idle_load(concurrency: int, chat_concurrency: int, seconds: float) -> Callable[..., Any]:
    """The same load for `seconds` on the same server once the batch is done: the baseline."""

    def after(url: str, batch_id: str) -> dict[str, Any]:
        _, stats = run_async(
            _load(
                url,
                batch_id,
                concurrency=concurrency,
                chat_concurrency=chat_concurrency,
                seconds=seconds,
                until_terminal=False,
            )
        )
        return {"idle": stats}

    return after


# --- start time ---------------------------------------------------------------------------------


def measure_start(workdir: Path) -> dict[str, Any]:
    """Popen to first 200: the emulator's health (then its first chat), the bare app's chat."""
    compile_bytecode()
    result: dict[str, Any] = {}
    bare = Server("bare", [str(ROOT / "benchmarks" / "bare_app.py")])
    try:
        result["bare_seconds"] = first_200(
            bare,
            "/v1/inference/chat",
            method="POST",
            content=orjson.dumps(CHAT_BODY),
            headers={"Content-Type": "application/json"},
        )
        result["bare_idle_rss_mb"] = rss_kb(bare.proc.pid) / 1024
    finally:
        bare.stop()
    db = workdir / f"start-{time.monotonic_ns()}.db"
    emulator = Server("emulator", emulator_argv(db), cwd=workdir)
    try:
        result["emulator_seconds"] = first_200(emulator, "/_emulator/health")
        t = time.perf_counter()
        resp = httpx.post(emulator.url + E2E_CHAT_URL, json=CHAT_BODY, headers=AUTH, timeout=30)
        resp.raise_for_status()
        result["emulator_first_chat_ms"] = (time.perf_counter() - t) * 1e3
        result["emulator_idle_rss_mb"] = rss_kb(emulator.proc.pid) / 1024
    finally:
        emulator.stop()
    return result


# --- the big input ------------------------------------------------------------------------------


def run_big(workdir: Path, input_path: Path, count: int) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    copy = workdir / "copy.jsonl"
    copy_seconds = float("inf")
    for _ in range(3):  # the best of three: one cold-cache copy must not flatter the upload
        t = time.perf_counter()
        shutil.copyfile(input_path, copy)
        copy_seconds = min(copy_seconds, time.perf_counter() - t)
        copy.unlink()
    result = run_e2e(workdir / "emulator", input_path, count, sample_rss=True)
    result["copy_seconds"] = copy_seconds
    return result


# --- main ---------------------------------------------------------------------------------------


def target(
    name: str,
    measured: float,
    unit: str,
    bar: str,
    passed: bool | None,
    baseline: float | None = None,
    baseline_name: str = "",
    ratio: float | None = None,
) -> dict[str, Any]:
    return {
        "target": name,
        "measured": measured,
        "unit": unit,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "ratio": ratio,
        "bar": bar,
        "pass": passed,
    }


def med(rows: list[dict[str, Any]], key: str) -> float:
    return median([r[key] for r in rows if r.get(key) is not None])


def within(
    name: str, m: float, unit: str, base: float, base_name: str, bar: float
) -> dict[str, Any]:
    """A target met when measured / baseline <= bar."""
    return target(name, m, unit, f"<= {bar:g}x", m / base <= bar, base, base_name, m / base)


def under(
    name: str, m: float, unit: str, limit: float, base: float, base_name: str
) -> dict[str, Any]:
    """A target met when measured <= limit (the baseline is shown, not judged)."""
    return target(name, m, unit, f"<= {limit:g} {unit}", m <= limit, base, base_name, m / base)


def summarize(args: argparse.Namespace, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets met or not, each from the medians of its rounds."""
    targets: list[dict[str, Any]] = []
    count = args.count
    floors, e2e = data["floor_rounds"], data["e2e_rounds"]
    if floors and e2e:
        name = f"batch e2e {count:,} lines vs stdlib floor"
        f, e = med(floors, "seconds"), med(e2e, "seconds")
        targets.append(within(name, e, "s", f, "floor_stdlib", BAR_E2E))
        # CPU seconds (the server's, the floor's) are steadier than wall time on a busy machine.
        fc, ec = med(floors, "cpu_seconds"), med(e2e, "server_cpu_seconds")
        name = "(info) the same in CPU seconds"
        targets.append(target(name, ec, "s", "-", None, fc, "floor_stdlib", ec / fc))
    loaded = data["load_rounds"]
    for key, label in (("status", "status GET p99, c16"), ("chat", "live chat p99")):
        if loaded:
            m = med(loaded, f"{key}_p99_ms")
            idle = median([r["idle"][f"{key}_p99_ms"] for r in loaded])
            name = f"{label}, during {count:,}-line batch"
            targets.append(under(name, m, "ms", BAR_P99_MS, idle, "same load, idle server"))
    linear = data["linear_rounds"]
    if linear:
        per = {n: median([r[str(n)] for r in linear]) for n in data["linear_sizes"]}
        spread = max(per.values()) / min(per.values())
        name = f"per-request cost {'/'.join(f'{n:,}' for n in per)} lines, max/min"
        targets.append(target(name, spread, "x", f"<= {BAR_LINEAR:g}x", spread <= BAR_LINEAR))
        # The server's CPU per request at each size: whether its own work grows with the batch,
        # apart from the per-batch waits (round trips, polling, a fresh server's first batch).
        runs = data["linear_runs"]
        cpu = {n: median([r["server_cpu_seconds"] / n for r in runs[str(n)]]) for n in per}
        cpu_spread = max(cpu.values()) / min(cpu.values())
        shown = "/".join(f"{c * 1e6:.0f}" for c in cpu.values())
        name = f"(info) server CPU per request, {shown} us, max/min"
        targets.append(target(name, cpu_spread, "x", "-", None))
    starts = data["start_rounds"]
    if starts:
        e, b = med(starts, "emulator_seconds"), med(starts, "bare_seconds")
        name = "start to first 200 vs bare uvicorn app"
        targets.append(within(name, e, "s", b, "bare_app.py", BAR_START))
    big = data["big_rounds"]
    if big:
        mb = data["big_input_bytes"] / 1e6
        peak, idle = med(big, "peak_rss_mb"), med(big, "idle_rss_mb")
        name = f"peak server RSS, {mb:.0f} MB input"
        targets.append(under(name, peak, "MB", BAR_RSS_MB, idle, "idle RSS"))
        up, cp = med(big, "upload_seconds"), med(big, "copy_seconds")
        name = f"upload {mb:.0f} MB vs shutil.copyfile"
        targets.append(within(name, up, "s", cp, "copyfile", BAR_UPLOAD))
    return targets


def print_report(args: argparse.Namespace, data: dict[str, Any]) -> None:
    def run_row(label: str, rs: list[dict[str, Any]], count: int) -> list[Any]:
        if label == "floor_stdlib":
            cells = [med(rs, "seconds"), med(rs, "cpu_seconds"), "-", "-", "-"]
            return [label, count, *cells, med(rs, "output_bytes") / 1e6, "-"]
        keys = ["seconds", "server_cpu_seconds", "upload_seconds", "processing_seconds"]
        keys += ["download_seconds"]
        cells = [med(rs, k) for k in keys]
        return [label, count, *cells, med(rs, "output_bytes") / 1e6, med(rs, "peak_rss_mb")]

    rows: list[list[Any]] = []
    if data["floor_rounds"]:
        rows.append(run_row("floor_stdlib", data["floor_rounds"], args.count))
    if data["e2e_rounds"]:
        rows.append(run_row("emulator", data["e2e_rounds"], args.count))
    for n, rs in data["linear_runs"].items():
        if rs and int(n) != args.count:
            rows.append(run_row("emulator", rs, int(n)))
    if rows:
        print("\nbatch end to end (median of rounds)")
        headers = ["run", "lines", "seconds", "CPU s", "upload s", "processing s", "download s"]
        print(table([*headers, "results MB", "peak RSS MB"], rows))
    if data["load_rounds"]:
        rs = data["load_rounds"]
        print(f"\nunder load: {args.concurrency} status clients + {args.chat_concurrency} chat")
        print(
            table(
                ["server", "batch s", "status req", "status p50", "status p99", "chat req"]
                + ["chat p50", "chat p99", "client CPU s"],
                [
                    [
                        "during batch",
                        med(rs, "processing_seconds"),
                        med(rs, "status_requests"),
                        med(rs, "status_p50_ms"),
                        med(rs, "status_p99_ms"),
                        med(rs, "chat_requests"),
                        med(rs, "chat_p50_ms"),
                        med(rs, "chat_p99_ms"),
                        med(rs, "client_cpu_seconds"),
                    ],
                    [
                        "idle, after",
                        "-",
                        median([r["idle"]["status_requests"] for r in rs]),
                        median([r["idle"]["status_p50_ms"] for r in rs]),
                        median([r["idle"]["status_p99_ms"] for r in rs]),
                        median([r["idle"]["chat_requests"] for r in rs]),
                        median([r["idle"]["chat_p50_ms"] for r in rs]),
                        median([r["idle"]["chat_p99_ms"] for r in rs]),
                        median([r["idle"]["client_cpu_seconds"] for r in rs]),
                    ],
                ],
            )
        )
    if data["big_rounds"]:
        rs = data["big_rounds"]
        print(f"\nbig input: {data['big_input_bytes'] / 1e6:.0f} MB, {args.count:,} lines")
        print(
            table(
                ["copyfile s", "upload s", "processing s", "e2e s", "idle RSS MB"]
                + ["peak RSS MB (HWM)", "sampled peak MB"],
                [
                    [
                        med(rs, "copy_seconds"),
                        med(rs, "upload_seconds"),
                        med(rs, "processing_seconds"),
                        med(rs, "seconds"),
                        med(rs, "idle_rss_mb"),
                        med(rs, "peak_rss_mb"),
                        med(rs, "sampled_peak_rss_mb"),
                    ]
                ],
            )
        )


def print_targets(targets: list[dict[str, Any]]) -> None:
    print()
    print(
        table(
            ["target", "measured", "baseline", "ratio", "bar", "result"],
            [
                [
                    t["target"],
                    f"{t['measured']:.3g} {t['unit']}",
                    "-" if t["baseline"] is None else f"{t['baseline']:.3g} ({t['baseline_name']})",
                    "-" if t["ratio"] is None else f"{t['ratio']:.2f}",
                    t["bar"],
                    {True: "PASS", False: "FAIL", None: "info"}[t["pass"]],
                ]
                for t in targets
            ],
        )
    )


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds; each figure is their median")
    ap.add_argument("--count", type=int, help="lines in the batch (default 50,000; quick 5,000)")
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--big", action="store_true", help="also the ~300 MB input (RSS, upload)")
    ap.add_argument("--big-mb", type=float, help="size of the big input (default 300; quick 30)")
    ap.add_argument("--concurrency", type=int, default=16, help="status clients under load")
    ap.add_argument("--chat-concurrency", type=int, default=1, help="chat clients under load")
    ap.add_argument("--idle-seconds", type=float, default=3.0, help="the idle baseline's load")
    ap.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["e2e", "load", "linear", "start"],
        help="leave a part out (repeatable)",
    )
    args = ap.parse_args()
    if args.count is None:
        args.count = 5_000 if args.quick else 50_000
    if args.big_mb is None:
        args.big_mb = 30.0 if args.quick else 300.0
    if args.quick:
        args.idle_seconds = min(args.idle_seconds, 1.0)
    return args


def run_rounds(args: argparse.Namespace, tmp: Path, data: dict[str, Any]) -> None:
    count = args.count
    inputs: dict[int, Path] = {}
    for n in data["linear_sizes"]:
        inputs[n] = tmp / f"input-{n}.jsonl"
        write_e2e_input(inputs[n], n)
    data["input_bytes"] = inputs[count].stat().st_size
    for r in range(args.rounds):
        tag = f"round {r + 1}/{args.rounds}"
        if "e2e" not in args.skip:
            data["floor_rounds"].append(run_floor(inputs[count], tmp))
            print(f"{tag} floor_stdlib {data['floor_rounds'][-1]['seconds']:8.2f} s", flush=True)
            e2e = run_e2e(tmp / f"e2e-{r}", inputs[count], count)
            data["e2e_rounds"].append(e2e)
            print(f"{tag} emulator     {e2e['seconds']:8.2f} s  ({count:,} lines)", flush=True)
        if "linear" not in args.skip:
            per: dict[str, float] = {}
            for n in data["linear_sizes"]:
                if n == count and data["e2e_rounds"] and "e2e" not in args.skip:
                    run = data["e2e_rounds"][-1]  # the e2e run of this round
                else:
                    run = run_e2e(tmp / f"lin-{r}-{n}", inputs[n], n, waiter=fine_poll)
                    print(f"{tag} emulator     {run['seconds']:8.2f} s  ({n:,} lines)", flush=True)
                data["linear_runs"][str(n)].append(run)
                per[str(n)] = run["seconds_per_request"]
            data["linear_rounds"].append(per)
        if "load" not in args.skip:
            loaded = run_e2e(
                tmp / f"load-{r}",
                inputs[count],
                count,
                waiter=loaded_waiter(args.concurrency, args.chat_concurrency),
                after=idle_load(args.concurrency, args.chat_concurrency, args.idle_seconds),
            )
            data["load_rounds"].append(loaded)
            print(
                f"{tag} under load   {loaded['seconds']:8.2f} s  status p99 "
                f"{loaded['status_p99_ms']:.1f} ms, chat p99 {loaded['chat_p99_ms']:.1f} ms "
                f"(idle {loaded['idle']['status_p99_ms']:.1f} / "
                f"{loaded['idle']['chat_p99_ms']:.1f})",
                flush=True,
            )
        if "start" not in args.skip:
            start = measure_start(tmp)
            data["start_rounds"].append(start)
            print(
                f"{tag} start        emulator {start['emulator_seconds']:.3f} s, "
                f"bare {start['bare_seconds']:.3f} s",
                flush=True,
            )
    for path in inputs.values():
        path.unlink()
    if args.big:
        big_input = tmp / "big.jsonl"
        prompt_chars = max(0, int(args.big_mb * 1e6 / count) - 250)
        data["big_input_bytes"] = write_e2e_input(big_input, count, prompt_chars)
        for r in range(args.rounds):
            big = run_big(tmp / f"big-{r}", big_input, count)
            data["big_rounds"].append(big)
            print(
                f"big round {r + 1}/{args.rounds}: upload {big['upload_seconds']:.2f} s "
                f"(copyfile {big['copy_seconds']:.2f} s), peak RSS {big['peak_rss_mb']:.0f} MB, "
                f"e2e {big['seconds']:.1f} s",
                flush=True,
            )


def main() -> int:
    args = parse_args()
    count = args.count
    sizes = sorted({n for n in (1_000, 5_000, count) if n <= count})
    data: dict[str, Any] = {
        **machine(),
        "command": " ".join(sys.argv),
        "count": count,
        "rounds": args.rounds,
        "poll_seconds": POLL_SECONDS,
        "linear_sizes": sizes,
        "floor_rounds": [],
        "e2e_rounds": [],
        "linear_runs": {str(n): [] for n in sizes},
        "linear_rounds": [],
        "load_rounds": [],
        "start_rounds": [],
        "big_rounds": [],
    }
    with tempfile.TemporaryDirectory(prefix="batch-e2e-") as tmp:
        run_rounds(args, Path(tmp), data)
    print_report(args, data)
    targets = summarize(args, data)
    print_targets(targets)
    data["targets"] = targets
    path = write_results("batch_e2e", data)
    print(f"wrote {path.relative_to(ROOT)}")
    return 0 if all(t["pass"] is not False for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
