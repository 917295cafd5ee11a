"""Live chat throughput: the emulator's POST /v1/inference/chat against a bare starlette floor.

Both servers run as subprocesses with the same uvicorn settings (1 worker, uvloop + httptools,
no access log, log level warning) and are loaded in turn with
`wrk -t1 -c16 -d10s --latency -s post.lua`: bare, emulator, bare, emulator. Each figure is the
median of its rounds; the bar is emulator req/s >= 0.75 x bare req/s.

Run: .venv/bin/python benchmarks/live_chat.py [--duration 10] [--rounds 2] [--connections 16]
Exit status: 0 when the bar is met, 1 when it is not, 2 when wrk is missing.
"""

from __future__ import annotations

import argparse
import itertools
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import (  # noqa: E402
    API_KEY,
    ROOT,
    Server,
    cpu_seconds,
    machine,
    median,
    table,
    wait_healthy,
    write_results,
)

BAR = 0.75
PATH = "/v1/inference/chat"
# A realistic request; its answer (two choices) is ~1 KB, the same bytes bare_app.py returns.
BODY = {
    "model": "scailabs/poolnoodle-omni",
    "messages": [
        {
            "role": "system",
            "content": "You are a concise assistant for a logistics company. "
            "Answer in plain English.",
        },
        {
            "role": "user",
            "content": "Summarise the delivery exceptions from report 74 and suggest one "
            "follow-up action for the depot manager.",
        },
    ],
    "max_tokens": 256,
    "temperature": 0.7,
    "n": 2,
}
EMULATOR_ARGV = "-m emulator serve --port 0 --db :memory: --log-level warning".split()
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def lua_script(body: bytes, unique: bool = False, start: int = 0) -> str:
    """wrk's script: the same body every time, or (`unique`) the report number in the user
    message counts up from `start`, so no two requests are alike and none is answered from
    memory. Each wrk run is a new process whose counter starts again: give each run its own
    `start` (`run_start`), or a run would repeat the bodies of the one before."""
    script = (
        'wrk.method = "POST"\n'
        f"wrk.body = {lua_string(body.decode())}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {API_KEY}"\n'
    )
    if unique:
        script += (
            f"counter = {start}\n"
            "request = function()\n"
            "  counter = counter + 1\n"
            '  local body = string.gsub(wrk.body, "report 74", "report " .. counter)\n'
            "  return wrk.format(nil, nil, nil, body)\n"
            "end\n"
        )
    return script


def run_start(run: int) -> int:
    """Where the report numbers of wrk run `run` start: far beyond any run's request count."""
    return run * 10_000_000


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_wrk(server: Server, script: Path, duration: int, connections: int) -> dict[str, Any]:
    """One wrk round, plus the server's CPU time per request (steadier than req/s when other
    work competes for the cores)."""
    cmd = f"wrk -t1 -c{connections} -d{duration}s --latency -s {script}".split()
    cmd.append(server.url + PATH)
    cpu0 = cpu_seconds(server.proc.pid)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = parse_wrk(out)
    result["cpu_us_per_request"] = (cpu_seconds(server.proc.pid) - cpu0) / result["requests"] * 1e6
    return result


def parse_wrk(out: str) -> dict[str, Any]:
    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m is None:
            raise RuntimeError(f"no {pct}% latency in wrk output:\n{out}")
        return float(m.group(1)) * _UNITS[m.group(2)]

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    total = re.search(r"^\s+(\d+) requests in", out, re.M)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    if rps is None or total is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return {
        "rps": float(rps.group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "requests": int(total.group(1)),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(0) if errors else None,
    }


def check_answer(url: str) -> int:
    """One request by hand: a 200 with a chat completion; returns the response size."""
    resp = httpx.post(url + PATH, json=BODY, headers={"Authorization": f"Bearer {API_KEY}"})
    if resp.status_code != 200 or resp.json()["data"]["object"] != "chat.completion":
        raise RuntimeError(f"{url}{PATH} answered {resp.status_code}: {resp.text[:500]}")
    return len(resp.content)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk round")
    ap.add_argument("--rounds", type=int, default=2, help="rounds per server")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument(
        "--unique",
        action="store_true",
        help="a different body on every request, so the emulator answers none from memory",
    )
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    info = machine()
    servers: dict[str, Server] = {}
    rounds: dict[str, list[dict[str, Any]]] = {"bare": [], "emulator": []}
    try:
        servers["bare"] = Server("bare", [str(ROOT / "benchmarks" / "bare_app.py")])
        servers["emulator"] = Server("emulator", EMULATOR_ARGV)
        sizes = {}
        for name, server in servers.items():
            wait_healthy(server.url, PATH)
            sizes[name] = check_answer(server.url)
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "post.lua"
            runs = itertools.count()

            def fresh_script() -> Path:  # a new start for every run (see `lua_script`)
                start = run_start(next(runs))
                script.write_text(lua_script(orjson.dumps(BODY), args.unique, start))
                return script

            for server in servers.values():  # warm-up, not counted
                run_wrk(server, fresh_script(), 2, args.connections)
            for n in range(args.rounds):
                for name, server in servers.items():
                    result = run_wrk(server, fresh_script(), args.duration, args.connections)
                    rounds[name].append(result)
                    print(
                        f"round {n + 1} {name:8} {result['rps']:9,.0f} req/s  "
                        f"p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms  "
                        f"{result['cpu_us_per_request']:.0f} us CPU/request",
                        flush=True,
                    )
    finally:
        for server in servers.values():
            server.stop()

    summary = {
        name: {
            "rps": median([r["rps"] for r in rs]),
            "p50_ms": median([r["p50_ms"] for r in rs]),
            "p99_ms": median([r["p99_ms"] for r in rs]),
            "cpu_us_per_request": median([r["cpu_us_per_request"] for r in rs]),
            "response_bytes": sizes[name],
            "non_2xx": sum(r["non_2xx"] for r in rs),
        }
        for name, rs in rounds.items()
    }
    ratio = summary["emulator"]["rps"] / summary["bare"]["rps"]
    cpu_ratio = summary["bare"]["cpu_us_per_request"] / summary["emulator"]["cpu_us_per_request"]
    print()
    print(
        f"live chat: wrk -t1 -c{args.connections} -d{args.duration}s, median of "
        f"{args.rounds} rounds, alternating"
    )
    print(
        table(
            ["server", "req/s", "p50 ms", "p99 ms", "CPU us/request", "response bytes", "non-2xx"],
            [
                [
                    name,
                    s["rps"],
                    s["p50_ms"],
                    s["p99_ms"],
                    s["cpu_us_per_request"],
                    s["response_bytes"],
                    s["non_2xx"],
                ]
                for name, s in summary.items()
            ],
        )
    )
    met = ratio >= BAR and all(s["non_2xx"] == 0 for s in summary.values())
    print(f"\nratio emulator/bare: {ratio:.3f} req/s (bar >= {BAR}): {'PASS' if met else 'FAIL'}")
    print(
        f"CPU ratio bare/emulator per request: {cpu_ratio:.3f} (what the req/s ratio tends to "
        "when the server has a core to itself)"
    )
    path = write_results(
        "live_chat_unique" if args.unique else "live_chat",
        {
            **info,
            "command": f"wrk -t1 -c{args.connections} -d{args.duration}s --latency -s post.lua",
            "unique_bodies": args.unique,
            "rounds": rounds,
            "summary": summary,
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
