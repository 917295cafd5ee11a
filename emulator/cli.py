"""The `scaigrid-emulator` command: `serve` runs the emulator; `scenario list`, `scenario show`
and `scenario check` work with scenarios; `conformance` checks an endpoint's wire format;
`batch`, `files`, `clock` and `scenario use` are the client (`emulator.client`), for an emulator
or the real service."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, cast

from emulator import __version__
from emulator.client import commands as client_commands
from emulator.conformance.options import Options as ConformanceOptions
from emulator.errors import ConfigError
from emulator.settings import Settings, add_arguments, build_settings

if TYPE_CHECKING:
    import asyncio

    import uvicorn
    from starlette.types import ASGIApp

log = logging.getLogger("emulator")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="scaigrid-emulator",
        description="A local emulator of ScaiGrid's Batch Inference API.",
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = top.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the emulator",
        description="Run the emulator. Every option can also be set with its environment variable.",
    )
    add_arguments(serve)
    scenario = commands.add_parser("scenario", help="work with scenario files")
    scenario_commands = scenario.add_subparsers(dest="scenario_command", required=True)
    scenario_commands.add_parser(
        "list", help="list the bundled scenarios", description="The bundled scenarios."
    )
    show = scenario_commands.add_parser(
        "show",
        help="print a scenario's YAML",
        description="Print the YAML of a bundled scenario (by name) or a scenario file.",
    )
    show.add_argument("name", metavar="NAME")
    check = scenario_commands.add_parser(
        "check",
        help="validate scenario files",
        description="Validate scenario YAML files; every problem of each file is reported.",
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    add_conformance_arguments(commands)
    client_commands.register(commands, scenario_commands)
    return top


def add_conformance_arguments(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    conformance = commands.add_parser(
        "conformance",
        help="check an endpoint against the wire format the emulator assumes",
        description="Run the checks of the emulator's wire-format assumptions (each named after "
        "a row of the README's assumptions table) against an endpoint: the emulator or the real "
        "ScaiGrid. Only GET requests are sent unless --allow-writes is given. Exit 0 if every "
        "check that ran passed, 1 if any failed, 2 on a usage or connection error.",
    )
    conformance.add_argument(
        "--base-url",
        required=True,
        metavar="URL",
        help="the service's root, e.g. http://127.0.0.1:8080",
    )
    conformance.add_argument(
        "--api-key", metavar="KEY", help="an sgk_ key (default: $SCAIGRID_API_KEY)"
    )
    conformance.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this check (repeatable)",
    )
    conformance.add_argument(
        "--allow-writes",
        action="store_true",
        help="also run the checks that create data or cost money",
    )
    conformance.add_argument("--json", action="store_true", help="print the report as JSON")
    default = ConformanceOptions()
    conformance.add_argument(
        "--model",
        default=default.model,
        help=f"the chat model of the one-line test batches (default {default.model})",
    )
    conformance.add_argument(
        "--poll-interval",
        type=float,
        default=default.poll_interval,
        metavar="SECONDS",
        help=f"seconds between polls of a test batch (default {default.poll_interval:g})",
    )
    conformance.add_argument(
        "--timeout",
        type=float,
        default=default.timeout,
        metavar="SECONDS",
        help=f"how long a test batch may take to end (default {default.timeout:g})",
    )
    conformance.add_argument(
        "--receiver-url", metavar="URL", help="public URL that reaches the local webhook receiver"
    )
    conformance.add_argument(
        "--receiver-port",
        type=int,
        default=default.receiver_port,
        metavar="PORT",
        help="port of the local webhook receiver (default: any free one)",
    )


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = parser().parse_args(argv)
    if client_commands.handles(args):
        return client_commands.run(args, os.environ if env is None else env)
    if args.command == "scenario":
        commands = {
            "list": lambda: list_scenarios(),
            "show": lambda: show_scenario(args.name),
            "check": lambda: check_scenarios(args.files),
        }
        return commands[args.scenario_command]()
    if args.command == "conformance":
        return conformance(args, os.environ if env is None else env)
    try:
        settings = build_settings(vars(args), os.environ if env is None else env)
    except ConfigError as exc:
        print(f"scaigrid-emulator: error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return serve(settings)
    return 2  # pragma: no cover - argparse rejects unknown commands


def list_scenarios() -> int:
    """One line per bundled scenario: its name and description."""
    from emulator.scenario.registry import Scenarios

    bundled = Scenarios("happy-path").bundled()
    width = max((len(s.name) for s in bundled), default=0)
    for scenario in bundled:
        print(f"{scenario.name:<{width}}  {scenario.description}".rstrip())
    return 0


def show_scenario(name: str) -> int:
    """Print the YAML of a bundled scenario or a scenario file; exit 1 if there is none."""
    from emulator.scenario.registry import Scenarios

    try:
        scenario = Scenarios("happy-path").resolve(name, strict=True)
    except ConfigError as exc:
        print(f"scaigrid-emulator: error: {exc}", file=sys.stderr)
        return 1
    print(scenario.text, end="" if scenario.text.endswith("\n") else "\n")
    return 0


def check_scenarios(files: Sequence[str]) -> int:
    """Validate each file; print one line per valid file and one per problem of each invalid
    one (every problem, not only the first). Exit 1 if any is invalid."""
    from pathlib import Path

    from emulator.scenario.registry import load_scenario_file
    from emulator.scenario.schema import ScenarioError

    failed = 0
    for name in files:
        try:
            scenario = load_scenario_file(Path(name))
        except ScenarioError as exc:
            failed += 1
            for problem in exc.problems:
                print(f"error: {problem}", file=sys.stderr)
        else:
            print(f"{name}: ok (scenario '{scenario.name}')")
    return 1 if failed else 0


def conformance(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run the checks against `--base-url` and print the report; exit 0, 1 or 2."""
    import asyncio

    from emulator.conformance import runner
    from emulator.conformance.checks import BY_NAME

    api_key = args.api_key or env.get("SCAIGRID_API_KEY")
    unknown = [name for name in args.only if name not in BY_NAME]
    problem = runner.base_url_problem(args.base_url)
    if unknown:
        problem = f"unknown check {unknown[0]!r} (known: {', '.join(BY_NAME)})"
    elif not api_key:
        problem = "--api-key (or SCAIGRID_API_KEY) is required"
    if problem or not api_key:
        print(f"scaigrid-emulator: error: {problem}", file=sys.stderr)
        return 2
    options = ConformanceOptions(
        writes=args.allow_writes,
        model=args.model,
        poll_interval=args.poll_interval,
        timeout=args.timeout,
        receiver_url=args.receiver_url,
        receiver_port=args.receiver_port,
    )

    async def run() -> list[runner.Outcome]:
        async with runner.client_for(args.base_url, api_key) as client:
            return await runner.run(client, options, args.only)

    try:
        outcomes = asyncio.run(run())
    except runner.Stopped as exc:
        print(f"scaigrid-emulator: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(runner.render_json(args.base_url, outcomes))
    else:
        print(runner.render_text(outcomes))
    return runner.exit_code(outcomes)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(settings: Settings) -> int:
    import uvicorn

    from emulator.api.app import create_app
    from emulator.core import Emulator

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not is_loopback(settings.host) and not settings.admin_token:
        log.warning(
            "serving on %s without --admin-token: anyone who can reach this port can reset the "
            "emulator and move its clock",
            settings.host,
        )
    # Bind first so that `--port 0` knows its real port before URLs are minted from it.
    try:
        sock = _bind(settings.host, settings.port)
    except OSError as exc:
        print(
            f"scaigrid-emulator: error: cannot listen on {settings.host}:{settings.port}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    settings = settings.replace(port=sock.getsockname()[1])
    try:
        core = Emulator(settings)
        core.store.preflight()
        core.store.claim()  # a second server on the same database stops here
    except ConfigError as exc:
        sock.close()
        print(f"scaigrid-emulator: error: {exc}", file=sys.stderr)
        return 2
    config = server_config(create_app(core=core, owned=True), settings.log_level)
    banner = f"scaigrid-emulator {__version__} listening on {settings.base_url}"
    _run_until_signalled(uvicorn.Server(config), sock, banner)
    return 0


def server_config(app: ASGIApp, log_level: str) -> uvicorn.Config:
    """How the emulator is served, wherever it is (`serve`, the pytest fixture): no access log,
    no `Date` of uvicorn's (the app writes its own, from the emulator clock), no websocket
    protocol (no route speaks it, and loading one costs every start an import of `websockets`),
    and an HTTP protocol that lets a scenario's transport faults reach the socket."""
    import uvicorn

    from emulator.api.transport import protocol

    return uvicorn.Config(
        app,
        http=cast("type[asyncio.Protocol]", protocol),  # uvicorn calls it as it would a class
        log_level=log_level,
        access_log=False,
        date_header=False,
        ws="none",
        timeout_graceful_shutdown=5,
    )


def _run_until_signalled(server: uvicorn.Server, sock: socket.socket, banner: str) -> None:
    """Print `banner`, then serve until SIGINT or SIGTERM and exit cleanly.

    uvicorn shuts down gracefully on either signal and afterwards re-raises it to the handler it
    found in place; with the default handlers that would kill the process (SIGTERM) or raise
    KeyboardInterrupt (SIGINT) after a clean shutdown. So uvicorn's own `handle_exit` is put in
    place first, before the banner: a signal that comes while the app is still starting (before
    uvicorn installs its handlers) asks for the same clean exit instead of being lost, and the
    re-raised one only repeats the request."""
    if threading.current_thread() is not threading.main_thread():
        print(banner, flush=True)
        server.run(sockets=[sock])
        return
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, server.handle_exit) for sig in handled}
    print(banner, flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        # Listen now, before the "listening on" line is printed: a client that connects while
        # the app is still starting waits in the backlog instead of being refused.
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
