"""Peers side by side: the emulator, LLMock and aimock, in the same run, started the same way.

The peers (installed by this script into benchmarks/.peers/, git-ignored):
  llmock  the PyPI package `llmock` (LLMock, "chaos engineering for LLM apps"): a FastAPI app
          that mocks OpenAI, Anthropic, Gemini and seven more providers. Started as
          `.peers/llmock/bin/llmock serve --host 127.0.0.1 --port P --log-level warning` (uvicorn,
          uvloop + httptools, like the emulator). Batch: OpenAI-style /v1/files + /v1/batches,
          in memory; a batch waits a fixed 3 s, then the first status GET after that builds every
          answer (per line, by its url) inside that request.
  aimock  the npm package `@copilotkit/aimock` (node, no dependencies). Started as
          `node .peers/aimock/node_modules/@copilotkit/aimock/dist/cli.js -p P -h 127.0.0.1
          -f fixtures.json --log-level warn`, with one catch-all chat fixture. Batch:
          OpenAI-style /v1/files + /v1/batches with one endpoint per batch; the 2nd status GET
          completes it with one canned body per line (no per-line inference), and files are
          capped at 10 MiB.
Plus the emulator (`python -m emulator serve`) and, for live chat and start time, `bare_app.py`.

Measured (each the median of --rounds):
  start   Popen to the first 200 (emulator: GET /_emulator/health; llmock and aimock: GET /health;
          bare: its only route, POST /v1/inference/chat), then VmRSS after one chat and 1 s idle.
  live    wrk -t1 -c16 -d10s with live_chat.py's body (the same body every request; each server's
          own chat route), rounds alternating between the servers; req/s, p50, p99, CPU/request.
  batch   1,000 and 50,000 lines (half chat, half embed), uploaded, submitted, polled every 0.1 s,
          results streamed to a file; first upload byte to last result byte. Batches over
          5,000 lines run --big-batch-rounds times (default 1). The emulator gets
          the batch_e2e.py input; the peers the same requests as OpenAI batch lines
          (/v1/chat/completions, /v1/embeddings). A refusal is reported as such.

Run: .venv/bin/python benchmarks/peers.py [--rounds 3] [--quick] [--install-peers]
Writes benchmarks/results/peers.json. Exit status 0 (the peers have no bar), 2 without wrk/node.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bare_app import COMPLETION  # noqa: E402
from benchmarks.batch_e2e import (  # noqa: E402
    AUTH,
    MAX_BATCH_SECONDS,
    POLL_SECONDS,
    TERMINAL,
    emulator_argv,
    run_e2e,
)
from benchmarks.common import (  # noqa: E402
    ROOT,
    Process,
    Server,
    compile_bytecode,
    cpu_seconds,
    e2e_line,
    first_200,
    free_port,
    machine,
    median,
    rss_kb,
    table,
    write_e2e_input,
    write_results,
)
from benchmarks.live_chat import BODY, lua_script, parse_wrk  # noqa: E402

PEERS_DIR = ROOT / "benchmarks" / ".peers"
LLMOCK_VERSION = "0.2.2"
AIMOCK_VERSION = "1.43.0"
LLMOCK_BIN = PEERS_DIR / "llmock" / "bin" / "llmock"
AIMOCK_CLI = PEERS_DIR / "aimock" / "node_modules" / "@copilotkit" / "aimock" / "dist" / "cli.js"
OPENAI_URLS = {
    "/v1/inference/chat": "/v1/chat/completions",
    "/v1/inference/embed": "/v1/embeddings",
}


# --- installing the peers -----------------------------------------------------------------------


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, timeout=900)


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(f"needs {', '.join(packages)}: install them (apt-get install -y ...)")
    _run(["apt-get", "update", "-qq"])
    _run(["apt-get", "install", "-y", "-qq", *packages])


def install_peers(force: bool = False) -> None:
    """LLMock into its own venv, aimock with npm, wrk (and node) with apt when missing."""
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    if shutil.which("wrk") is None:
        _apt_install("wrk")
    if force or not LLMOCK_BIN.exists():
        venv = PEERS_DIR / "llmock"
        _run([sys.executable, "-m", "venv", "--clear", str(venv)])
        _run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                f"llmock=={LLMOCK_VERSION}",
            ]
        )
    if force or not AIMOCK_CLI.exists():
        if shutil.which("node") is None or shutil.which("npm") is None:
            _apt_install("nodejs", "npm")
        prefix = PEERS_DIR / "aimock"
        prefix.mkdir(exist_ok=True)
        _run(
            ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund"]
            + [f"@copilotkit/aimock@{AIMOCK_VERSION}"]
        )


# --- the servers --------------------------------------------------------------------------------


@dataclass
class Kind:
    name: str
    chat_path: str
    first_path: str  # the request whose first 200 ends the start time
    first_method: str
    batch: str  # "emulator", "openai" or "" (none)
    start: Callable[[Path], Server | Process]


def _aimock_fixture(workdir: Path) -> Path:
    """One catch-all chat fixture answering the first choice the bare app sends."""
    text = COMPLETION["choices"][0]["message"]["content"]
    path = workdir / "aimock-fixtures.json"
    fixture = {"fixtures": [{"match": {"endpoint": "chat"}, "response": {"content": text}}]}
    path.write_text(json.dumps(fixture))
    return path


def start_bare(workdir: Path) -> Server:
    return Server("bare", [str(ROOT / "benchmarks" / "bare_app.py")])


def start_emulator(workdir: Path) -> Server:
    db = workdir / f"emulator-{time.monotonic_ns()}.db"
    return Server("emulator", emulator_argv(db), cwd=workdir)


def start_llmock(workdir: Path) -> Process:
    port = free_port()
    argv = [str(LLMOCK_BIN), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return Process("llmock", [*argv, "--log-level", "warning"], port, cwd=workdir)


def start_aimock(workdir: Path) -> Process:
    port = free_port()
    fixture = _aimock_fixture(workdir)
    argv = ["node", str(AIMOCK_CLI), "-p", str(port), "-h", "127.0.0.1", "-f", str(fixture)]
    return Process("aimock", [*argv, "--log-level", "warn"], port, cwd=workdir)


KINDS = [
    Kind("bare", "/v1/inference/chat", "/v1/inference/chat", "POST", "", start_bare),
    Kind("emulator", "/v1/inference/chat", "/_emulator/health", "GET", "emulator", start_emulator),
    Kind("llmock", "/v1/chat/completions", "/health", "GET", "openai", start_llmock),
    Kind("aimock", "/v1/chat/completions", "/health", "GET", "openai", start_aimock),
]


def start(kind: Kind, workdir: Path) -> tuple[Server | Process, float]:
    """A server of this kind and its Popen-to-first-200 seconds."""
    server = kind.start(workdir)
    try:
        if kind.first_method == "POST":
            seconds = first_200(
                server,
                kind.first_path,
                method="POST",
                content=orjson.dumps(BODY),
                headers={"Content-Type": "application/json"},
            )
        else:
            seconds = first_200(server, kind.first_path, headers=AUTH)
    except BaseException:
        server.stop()
        raise
    return server, seconds


def chat_once(server: Server | Process, kind: Kind) -> int:
    resp = httpx.post(server.url + kind.chat_path, json=BODY, headers=AUTH, timeout=30)
    data = resp.json() if resp.status_code == 200 else {}
    data = data.get("data", data)
    if resp.status_code != 200 or "choices" not in data:
        raise RuntimeError(f"{kind.name} chat answered {resp.status_code}: {resp.text[:300]}")
    return len(resp.content)


def measure_start(kind: Kind, workdir: Path) -> dict[str, Any]:
    compile_bytecode()
    server, seconds = start(kind, workdir)
    try:
        chat_once(server, kind)
        time.sleep(1.0)
        rss = rss_kb(server.proc.pid) / 1024
    finally:
        server.stop()
    return {"seconds": seconds, "idle_rss_mb": rss}


# --- live chat with wrk -------------------------------------------------------------------------


def wrk_round(
    server: Server | Process, kind: Kind, script: Path, duration: int, connections: int
) -> dict[str, Any]:
    cmd = f"wrk -t1 -c{connections} -d{duration}s --latency -s {script}".split()
    cmd.append(server.url + kind.chat_path)
    cpu0 = cpu_seconds(server.proc.pid)
    out = subprocess.run(
        cmd, check=True, capture_output=True, text=True, timeout=duration + 60
    ).stdout
    result = parse_wrk(out)
    result["cpu_us_per_request"] = (cpu_seconds(server.proc.pid) - cpu0) / result["requests"] * 1e6
    return result


def measure_live(
    kinds: list[Kind], workdir: Path, rounds: int, duration: int, connections: int
) -> dict[str, Any]:
    servers: dict[str, Server | Process] = {}
    results: dict[str, list[dict[str, Any]]] = {k.name: [] for k in kinds}
    sizes: dict[str, int] = {}
    script = workdir / "post.lua"
    script.write_text(lua_script(orjson.dumps(BODY)))
    try:
        for kind in kinds:
            servers[kind.name], _ = start(kind, workdir)
            sizes[kind.name] = chat_once(servers[kind.name], kind)
        for kind in kinds:  # warm-up, not counted
            wrk_round(servers[kind.name], kind, script, 2, connections)
        for n in range(rounds):
            for kind in kinds:
                result = wrk_round(servers[kind.name], kind, script, duration, connections)
                results[kind.name].append(result)
                print(
                    f"live round {n + 1} {kind.name:8} {result['rps']:9,.0f} req/s  "
                    f"p99 {result['p99_ms']:.2f} ms  {result['cpu_us_per_request']:.0f} us CPU/req",
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.stop()
    return {
        name: {
            "rps": median([r["rps"] for r in rs]),
            "p50_ms": median([r["p50_ms"] for r in rs]),
            "p99_ms": median([r["p99_ms"] for r in rs]),
            "cpu_us_per_request": median([r["cpu_us_per_request"] for r in rs]),
            "non_2xx": sum(r["non_2xx"] for r in rs),
            "response_bytes": sizes[name],
            "rounds": rs,
        }
        for name, rs in results.items()
    }


# --- batches ------------------------------------------------------------------------------------


def write_openai_input(path: Path, count: int) -> int:
    """The batch_e2e.py requests as OpenAI batch lines."""
    with path.open("wb") as f:
        for i in range(count):
            line = e2e_line(i)
            line["url"] = OPENAI_URLS[line["url"]]
            f.write(orjson.dumps(line) + b"\n")
    return path.stat().st_size


def _error(step: str, resp: httpx.Response) -> dict[str, Any]:
    """What the peer said, short: its error message when it sends one as JSON."""
    try:
        body = resp.json()
        detail = body.get("error", body.get("detail", body))
        message = detail.get("message", detail) if isinstance(detail, dict) else detail
    except ValueError:
        message = resp.text
    return {
        "error": f"{step} refused (HTTP {resp.status_code}): {str(message)[:120]}",
        "short": f"{step} refused (HTTP {resp.status_code})",
    }


def run_openai_batch(
    server: Server | Process, input_path: Path, count: int, out_path: Path
) -> dict[str, Any]:
    """POST /v1/files, POST /v1/batches, GET /v1/batches/ID every 0.1 s, stream the output."""
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=MAX_BATCH_SECONDS) as client:
        t0 = time.perf_counter()
        with input_path.open("rb") as f:
            resp = client.post(
                "/v1/files",
                files={"file": ("input.jsonl", f, "application/jsonl")},
                data={"purpose": "batch"},
            )
        if resp.status_code != 200:
            return _error("upload", resp)
        file_id = resp.json()["id"]
        t_upload = time.perf_counter()
        body = {
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        }
        resp = client.post("/v1/batches", json=body)
        if resp.status_code != 200:
            return _error("create batch", resp)
        batch_id = resp.json()["id"]
        deadline = time.perf_counter() + MAX_BATCH_SECONDS
        polls = 0
        while True:
            resp = client.get(f"/v1/batches/{batch_id}")
            polls += 1
            if resp.status_code != 200:
                return _error("status", resp)
            status = resp.json()
            if status["status"] in TERMINAL:
                break
            if time.perf_counter() > deadline:
                return {"error": f"not done after {MAX_BATCH_SECONDS:.0f} s"}
            time.sleep(POLL_SECONDS)
        t_done = time.perf_counter()
        if status["status"] != "completed" or not status.get("output_file_id"):
            errors = (status.get("errors") or {}).get("data") or [{}]
            return {"error": f"batch {status['status']}: {errors[0].get('message', '')[:200]}"}
        size = 0
        with client.stream("GET", f"/v1/files/{status['output_file_id']}/content") as download:
            if download.status_code != 200:
                return {"error": f"download: HTTP {download.status_code}"}
            with out_path.open("wb") as out:
                for chunk in download.iter_bytes():
                    out.write(chunk)
                    size += len(chunk)
        t_end = time.perf_counter()
        peak_rss_mb = rss_kb(server.proc.pid, "VmHWM") / 1024
    lines = in_order = 0
    with out_path.open("rb") as f:
        for n, raw in enumerate(f):
            if raw.strip():
                lines += 1
                in_order += orjson.loads(raw).get("custom_id") == f"req-{n:06d}"
    out_path.unlink()
    return {
        "seconds": t_end - t0,
        "upload_seconds": t_upload - t0,
        "processing_seconds": t_done - t_upload,
        "download_seconds": t_end - t_done,
        "polls": polls,
        "results": lines,
        "results_in_order": in_order,
        "output_bytes": size,
        "peak_rss_mb": peak_rss_mb,
        "complete": lines == count,
    }


def measure_batch(kind: Kind, workdir: Path, inputs: dict[str, Path], count: int) -> dict[str, Any]:
    run_dir = workdir / f"{kind.name}-{count}-{time.monotonic_ns()}"
    run_dir.mkdir()
    if kind.batch == "emulator":
        try:
            return run_e2e(run_dir, inputs[f"emulator-{count}"], count)
        except RuntimeError as exc:
            return {"error": str(exc)[:300]}
    server, _ = start(kind, run_dir)
    try:
        return run_openai_batch(server, inputs[f"openai-{count}"], count, run_dir / "out.jsonl")
    except httpx.HTTPError as exc:
        return {"error": repr(exc)[:300]}
    finally:
        server.stop()


def summarize_batches(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rounds if "error" not in r]
    if not ok:
        first = rounds[0] if rounds else {"error": "not run"}
        return {"error": first["error"], "short": first.get("short", first["error"][:40])}
    return {
        "seconds": median([r["seconds"] for r in ok]),
        "upload_seconds": median([r["upload_seconds"] for r in ok]),
        "processing_seconds": median([r["processing_seconds"] for r in ok]),
        "output_bytes": median([r["output_bytes"] for r in ok]),
        "peak_rss_mb": median([r["peak_rss_mb"] for r in ok]),
        "results": min(r["results"] for r in ok),
        "rounds_ok": len(ok),
        "rounds": rounds,
    }


def run_starts(workdir: Path, rounds: int) -> dict[str, Any]:
    starts: dict[str, list[dict[str, Any]]] = {k.name: [] for k in KINDS}
    for n in range(rounds):
        for kind in KINDS:
            starts[kind.name].append(measure_start(kind, workdir))
        line = ", ".join(f"{k} {v[-1]['seconds']:.3f} s" for k, v in starts.items())
        print(f"start round {n + 1}: {line}", flush=True)
    return {
        name: {
            "seconds": median([r["seconds"] for r in rs]),
            "idle_rss_mb": median([r["idle_rss_mb"] for r in rs]),
            "rounds": rs,
        }
        for name, rs in starts.items()
    }


def run_batches(workdir: Path, rounds: int, sizes: list[int], big_rounds: int) -> dict[str, Any]:
    """Every size `rounds` times, but sizes over 5,000 lines `big_rounds` times."""
    inputs: dict[str, Path] = {}
    for n in sizes:
        inputs[f"emulator-{n}"] = workdir / f"emulator-{n}.jsonl"
        write_e2e_input(inputs[f"emulator-{n}"], n)
        inputs[f"openai-{n}"] = workdir / f"openai-{n}.jsonl"
        write_openai_input(inputs[f"openai-{n}"], n)
    batch_kinds = [k for k in KINDS if k.batch]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        k.name: {str(n): [] for n in sizes} for k in batch_kinds
    }
    for r in range(max(rounds, big_rounds)):
        for n in sizes:
            if r >= (rounds if n <= 5_000 else big_rounds):
                continue
            for kind in batch_kinds:
                result = measure_batch(kind, workdir, inputs, n)
                runs[kind.name][str(n)].append(result)
                shown = result.get("error") or f"{result['seconds']:.2f} s"
                print(f"batch round {r + 1} {kind.name:8} {n:>6,} lines: {shown}", flush=True)
    sizes_mb = {name: path.stat().st_size / 1e6 for name, path in inputs.items()}
    for path in inputs.values():
        path.unlink()
    result: dict[str, Any] = {
        name: {size: summarize_batches(rs) for size, rs in by_size.items()}
        for name, by_size in runs.items()
    }
    result["input_mb"] = sizes_mb
    return result


# --- main ---------------------------------------------------------------------------------------


def _batch_cell(summary: dict[str, Any] | None, batch: str) -> str:
    if not batch:
        return "no batch API"
    if summary is None:
        return "-"
    if "error" in summary:
        return "refused/failed"
    return f"{summary['seconds']:.2f} s"


def report(data: dict[str, Any], kinds: list[Kind], sizes: list[int]) -> None:
    rows = []
    for kind in kinds:
        start = data["start"].get(kind.name, {})
        live = data["live"].get(kind.name, {})
        batches = data["batch"].get(kind.name, {})
        row = [
            kind.name,
            start.get("seconds", "-"),
            start.get("idle_rss_mb", "-"),
            live.get("rps", "-"),
            live.get("p99_ms", "-"),
            live.get("cpu_us_per_request", "-"),
            live.get("response_bytes", "-"),
        ]
        row += [_batch_cell(batches.get(str(n)), kind.batch) for n in sizes]
        rows.append(row)
    print()
    print(
        table(
            ["server", "start s", "idle RSS MB", "chat req/s", "p99 ms", "CPU us/req", "bytes"]
            + [f"batch {n:,}" for n in sizes],
            rows,
        )
    )
    for kind in kinds:
        for n in sizes:
            summary = data["batch"].get(kind.name, {}).get(str(n))
            if summary is None:
                continue
            if "error" in summary:
                print(f"  {kind.name} batch {n:,}: {summary['error']}")
            else:
                print(
                    f"  {kind.name} batch {n:,}: upload {summary['upload_seconds']:.2f} s, "
                    f"processing {summary['processing_seconds']:.2f} s, "
                    f"{summary['results']:,} result lines, {summary['output_bytes'] / 1e6:.1f} MB, "
                    f"peak RSS {summary['peak_rss_mb']:.0f} MB"
                )


def _info(name: str, measured: float | None, unit: str, emulator: float | None) -> dict[str, Any]:
    return {
        "target": name,
        "measured": measured,
        "unit": unit,
        "baseline": emulator,
        "baseline_name": "emulator",
        "ratio": measured / emulator if measured is not None and emulator else None,
        "bar": "-",
        "pass": None,
    }


def targets(data: dict[str, Any], kinds: list[Kind], sizes: list[int]) -> list[dict[str, Any]]:
    """Info rows for run_all.py: each peer against the emulator (no bars)."""
    rows: list[dict[str, Any]] = []
    emu_live = data["live"].get("emulator", {})
    emu_start = data["start"].get("emulator", {})
    emu_batch = data["batch"].get("emulator", {})
    for kind in kinds:
        if kind.name in ("emulator", "bare"):
            continue
        live = data["live"].get(kind.name)
        if live and emu_live:
            name = f"peer {kind.name}: live chat req/s, same body"
            rows.append(_info(name, live["rps"], "req/s", emu_live["rps"]))
        start = data["start"].get(kind.name)
        if start and emu_start:
            name = f"peer {kind.name}: start to first 200"
            rows.append(_info(name, start["seconds"], "s", emu_start["seconds"]))
            name = f"peer {kind.name}: idle RSS"
            rows.append(_info(name, start["idle_rss_mb"], "MB", emu_start["idle_rss_mb"]))
        for n in sizes:
            peer_b = data["batch"].get(kind.name, {}).get(str(n))
            if peer_b is None:
                continue
            emu_s = emu_batch.get(str(n), {}).get("seconds")
            row = _info(
                f"peer {kind.name}: batch {n:,} lines e2e", peer_b.get("seconds"), "s", emu_s
            )
            if "error" in peer_b:
                row["note"] = peer_b["short"]
            rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds; each figure is their median")
    ap.add_argument("--quick", action="store_true", help="2 s wrk rounds, batches of 1k and 5k")
    ap.add_argument("--duration", type=int, help="seconds per wrk round (default 10; quick 2)")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--sizes", type=int, nargs="+", help="batch sizes (default 1000 50000)")
    ap.add_argument(
        "--big-batch-rounds",
        type=int,
        default=1,
        help="rounds for batches over 5,000 lines (default 1: LLMock needs ~1 min for 50,000)",
    )
    ap.add_argument(
        "--install-peers", action="store_true", help="(re)install the peers, wrk and node; exit"
    )
    ap.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["start", "live", "batch"],
        help="leave a part out (repeatable)",
    )
    args = ap.parse_args()
    if args.install_peers:
        install_peers(force=True)
        return 0
    try:
        install_peers()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"cannot install the peers: {exc}", file=sys.stderr)
        return 2
    duration = args.duration or (2 if args.quick else 10)
    sizes = args.sizes or ([1_000, 5_000] if args.quick else [1_000, 50_000])
    data: dict[str, Any] = {
        **machine(),
        "command": " ".join(sys.argv),
        "versions": {"llmock": LLMOCK_VERSION, "aimock": AIMOCK_VERSION},
        "node": subprocess.run(
            ["node", "--version"], capture_output=True, text=True
        ).stdout.strip(),
        "sizes": sizes,
        "start": {},
        "live": {},
        "batch": {},
    }
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        workdir = Path(tmp)
        if "start" not in args.skip:
            data["start"] = run_starts(workdir, args.rounds)
        if "live" not in args.skip:
            data["live"] = measure_live(KINDS, workdir, args.rounds, duration, args.connections)
        if "batch" not in args.skip:
            data["batch"] = run_batches(workdir, args.rounds, sizes, args.big_batch_rounds)
    report(data, KINDS, sizes)
    data["targets"] = targets(data, KINDS, sizes)
    path = write_results("peers", data)
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
