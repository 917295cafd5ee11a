"""The client's subcommands: `batch`, `files`, `clock` and `scenario use`, registered on the
`scaigrid-emulator` parser by `cli`, and run here.

Exit codes are `EXIT_CODES` (also in `--help` and the README): 0 done; 1 the server refused
(its code and message are printed) or a batch has no results yet; 2 a usage error (a bad flag,
no API key, a file that cannot be read); 3 the server could not be reached; 4 with `--wait`, the
batch ended `failed` or `cancelled`; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a command runs: `serve` never pays for the client
    from emulator.client.api import ApiError, Client

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_BATCH_NOT_COMPLETED = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_REFUSED: "the server refused (its code and message are printed), or no results yet",
    EXIT_USAGE: "usage error: a bad flag or value, no API key, a file that cannot be read",
    EXIT_UNREACHABLE: "the server could not be reached",
    EXIT_BATCH_NOT_COMPLETED: "with --wait: the batch ended failed or cancelled",
    EXIT_INTERRUPTED: "interrupted",
}
DEFAULT_BASE_URL = "http://127.0.0.1:8080"
#: what `--wait` waits between polls by default: the verdict's own `min_poll_interval`
DEFAULT_INTERVAL = 10.0
#: seconds from submit to `--wait`'s first poll, when the interval is longer
FIRST_LOOK = 1.0
FINAL = ("completed", "failed", "cancelled")
#: the top-level commands this module runs (`scenario use` too, under `scenario`)
COMMANDS = ("batch", "files", "clock")

#: what `--wait` sleeps with between polls (a test hands it one that moves the emulator clock)
sleep: Callable[[float], None] = time.sleep


class UsageError(Exception):
    """A problem with what was asked, found before any request: exit 2."""


class NoResults(Exception):
    """`batch results` of a batch that has none yet: exit 1."""


# --- the parser ----------------------------------------------------------------------------------


def _connection() -> argparse.ArgumentParser:
    """The options every client command takes: where the service is and how to sign in."""
    shared = argparse.ArgumentParser(add_help=False)
    group = shared.add_argument_group("connection")
    group.add_argument(
        "--base-url", metavar="URL",
        help=f"the service's URL, without /v1 (env SCAIGRID_BASE_URL; default {DEFAULT_BASE_URL})",
    )  # fmt: skip
    group.add_argument("--api-key", metavar="KEY", help="API key (env SCAIGRID_API_KEY)")
    group.add_argument(
        "--admin-token", metavar="TOKEN",
        help="the emulator's admin token: clock, scenario (env SCAIGRID_EMULATOR_ADMIN_TOKEN)",
    )  # fmt: skip
    return shared


def _epilog() -> str:
    return "exit codes:\n" + "\n".join(f"  {code:<4} {what}" for code, what in EXIT_CODES.items())


def register(commands: Any, scenario_commands: Any) -> None:
    """Add `batch`, `files` and `clock` to the top-level subcommands, and `use` to `scenario`'s."""
    shared = [_connection()]
    fmt = {"formatter_class": argparse.RawDescriptionHelpFormatter, "epilog": _epilog()}
    batch = commands.add_parser("batch", help="submit and follow batches (client)", **fmt)
    verbs = batch.add_subparsers(dest="verb", required=True)
    submit = verbs.add_parser("submit", parents=shared, help="submit a JSONL file", **fmt)
    submit.add_argument("file", metavar="FILE", type=Path)
    submit.add_argument("--window", choices=("24h", "4h", "1h"), help="completion window")
    submit.add_argument(
        "--metadata", action="append", default=[], metavar="KEY=VALUE", help="repeatable"
    )
    submit.add_argument("--scenario", metavar="NAME|YAML", help="emulator only: its scenario")
    submit.add_argument("--wait", action="store_true", help="follow it until it ends")
    submit.add_argument(
        "--interval", type=float, default=DEFAULT_INTERVAL, metavar="SECONDS",
        help=f"with --wait: seconds between polls (default {DEFAULT_INTERVAL:g})",
    )  # fmt: skip
    status = verbs.add_parser("status", parents=shared, help="a batch's status", **fmt)
    status.add_argument("batch_id", metavar="BATCH_ID")
    status.add_argument("--json", action="store_true", help="the batch object as JSON")
    listing = verbs.add_parser("list", parents=shared, help="batches, newest first", **fmt)
    listing.add_argument("--status", choices=("pending", "processing", *FINAL))
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--json", action="store_true", help="the batch objects as JSON")
    cancel = verbs.add_parser("cancel", parents=shared, help="cancel a batch", **fmt)
    cancel.add_argument("batch_id", metavar="BATCH_ID")
    results = verbs.add_parser("results", parents=shared, help="download results (JSONL)", **fmt)
    results.add_argument("batch_id", metavar="BATCH_ID")
    results.add_argument("--out", type=Path, metavar="FILE", help="write here, not to stdout")

    files = commands.add_parser("files", help="upload, list and delete files (client)", **fmt)
    file_verbs = files.add_subparsers(dest="verb", required=True)
    upload = file_verbs.add_parser("upload", parents=shared, help="upload a file", **fmt)
    upload.add_argument("file", metavar="FILE", type=Path)
    upload.add_argument("--purpose", default="batch")
    file_list = file_verbs.add_parser("list", parents=shared, help="files, newest first", **fmt)
    file_list.add_argument("--limit", type=int, default=20)
    file_list.add_argument("--json", action="store_true", help="the file objects as JSON")
    delete = file_verbs.add_parser("delete", parents=shared, help="delete a file", **fmt)
    delete.add_argument("file_id", metavar="FILE_ID")

    clock = commands.add_parser("clock", help="read or advance the emulator clock (client)", **fmt)
    clock_verbs = clock.add_subparsers(dest="verb", required=True)
    clock_verbs.add_parser("show", parents=shared, help="the emulator's time and mode", **fmt)
    advance = clock_verbs.add_parser("advance", parents=shared, help="move it forward", **fmt)
    advance.add_argument("by", metavar="DURATION", help="90s, 30m, 2h, 1d")

    use = scenario_commands.add_parser(
        "use", parents=shared, help="put a scenario in force on an emulator (client)",
        description="Put a bundled scenario (by name) or a scenario file in force, globally or "
        "for one tenant; a file is sent as its YAML text.", **fmt,
    )  # fmt: skip
    use.add_argument("name", metavar="NAME|FILE")
    use.add_argument(
        "--tenant", nargs="?", const="", metavar="TENANT",
        help="a tenant id or API key; alone: the tenant of the API key in use",
    )  # fmt: skip


def handles(args: argparse.Namespace) -> bool:
    return args.command in COMMANDS or (
        args.command == "scenario" and args.scenario_command == "use"
    )


# --- running -------------------------------------------------------------------------------------


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run a client command; errors become a message and an exit code, never a traceback."""
    from emulator.client.api import ApiError, Unreachable

    try:
        client = _client(args, env)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    try:
        return _dispatch(args, client)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except ApiError as exc:
        return _fail(_refused(exc), EXIT_REFUSED)
    except NoResults as exc:
        return _fail(str(exc), EXIT_REFUSED)
    except Unreachable as exc:
        return _fail(f"cannot reach the server: {exc}", EXIT_UNREACHABLE)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    finally:
        client.close()


def _client(args: argparse.Namespace, env: Mapping[str, str]) -> Client:
    base_url = args.base_url or env.get("SCAIGRID_BASE_URL") or DEFAULT_BASE_URL
    if not base_url.startswith(("http://", "https://")):
        raise UsageError(f"--base-url must be an http(s) URL, got {base_url!r}")
    api_key = args.api_key or env.get("SCAIGRID_API_KEY")
    admin_token = args.admin_token or env.get("SCAIGRID_EMULATOR_ADMIN_TOKEN")
    needs_key = args.command in ("batch", "files") or getattr(args, "tenant", None) == ""
    if needs_key and not api_key:
        raise UsageError("no API key: pass --api-key or set SCAIGRID_API_KEY")
    from emulator.client.api import Client

    return Client(base_url, api_key, admin_token)


def _dispatch(args: argparse.Namespace, client: Client) -> int:
    if args.command == "scenario":
        return use_scenario(client, args.name, args.tenant)
    verbs: dict[tuple[str, str], Callable[[], int]] = {
        ("batch", "submit"): lambda: submit(client, args),
        ("batch", "status"): lambda: show_batch(client, args.batch_id, args.json),
        ("batch", "list"): lambda: list_batches(client, args.status, args.limit, args.json),
        ("batch", "cancel"): lambda: cancel(client, args.batch_id),
        ("batch", "results"): lambda: results(client, args.batch_id, args.out),
        ("files", "upload"): lambda: upload(client, args.file, args.purpose),
        ("files", "list"): lambda: list_files(client, args.limit, args.json),
        ("files", "delete"): lambda: delete_file(client, args.file_id),
        ("clock", "show"): lambda: show_clock(client.clock()),
        ("clock", "advance"): lambda: show_clock(client.advance(_seconds(args.by))),
    }
    return verbs[args.command, args.verb]()


def _fail(message: str, code: int) -> int:
    print(f"scaigrid-emulator: error: {message}", file=sys.stderr)
    return code


def _refused(exc: ApiError) -> str:
    lines = [f"{exc.code}: {exc.message} (HTTP {exc.status})"]
    for detail in exc.details:
        if isinstance(detail, dict) and "message" in detail:
            where = detail.get("field") or detail.get("line")
            if detail["message"] not in exc.message:  # not what the message said already
                lines.append(
                    f"  - {where}: {detail['message']}" if where else f"  - {detail['message']}"
                )
    return "\n".join(lines)


def _out(text: str) -> None:
    print(text, flush=True)


def _json(value: Any) -> None:
    import json

    _out(json.dumps(value, indent=2, ensure_ascii=False))


# --- batches -------------------------------------------------------------------------------------


def _metadata(pairs: list[str]) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--metadata takes KEY=VALUE, got {pair!r}")
        metadata[key] = value
    return metadata


def _readable(path: Path) -> Path:
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    return path


def submit(client: Client, args: argparse.Namespace) -> int:
    """Submit; print the batch id (stdout), then with --wait follow it (stderr) to its end."""
    metadata = _metadata(args.metadata)
    if args.interval <= 0:
        raise UsageError("--interval must be more than 0 seconds")
    batch = client.submit(_readable(args.file), args.window, metadata, args.scenario)
    _out(batch["id"])
    if not args.wait:
        return EXIT_OK
    return wait(client, batch["id"], args.interval, sys.stderr)


def wait(client: Client, batch_id: str, interval: float, stream: IO[str]) -> int:
    from emulator.client.progress import progress_for, snapshot

    shown = progress_for(stream)
    try:
        # a first look soon (a small batch is done by then), then one every `interval`
        sleep(min(FIRST_LOOK, interval))
        while True:
            batch, now = client.batch(batch_id)
            shown.show(snapshot(batch, now))
            if batch["status"] in FINAL:
                break
            sleep(interval)
    finally:
        shown.close()
    print(_summary(batch), file=stream, flush=True)
    return EXIT_OK if batch["status"] == "completed" else EXIT_BATCH_NOT_COMPLETED


def _summary(b: dict[str, Any]) -> str:
    done = b["completed_count"] + b["failed_count"]
    text = f"{b['id']} {b['status']}: {done}/{b['total_count']} done, {b['failed_count']} failed"
    cost = b.get("cost") or {}
    if cost:
        text += f", cost {cost['amount']} {cost['currency']}"
    if b.get("error"):
        text += f"; error {b['error'].get('code')}: {b['error'].get('message')}"
    return text


def show_batch(client: Client, batch_id: str, as_json: bool) -> int:
    batch, _ = client.batch(batch_id)
    if as_json:
        _json(batch)
        return EXIT_OK
    _out(_summary(batch))
    for name in ("created_at", "started_at", "completed_at", "cancelled_at", "failed_at"):
        if batch.get(name):
            _out(f"  {name}: {batch[name]}")
    if batch.get("metadata"):
        _out(f"  metadata: {batch['metadata']}")
    if batch.get("results_url"):
        _out(f"  results_url: {batch['results_url']}")
    return EXIT_OK


def list_batches(client: Client, status: str | None, limit: int, as_json: bool) -> int:
    items = client.batches(status, limit)
    if as_json:
        _json(items)
        return EXIT_OK
    for b in items:
        done = b["completed_count"] + b["failed_count"]
        _out(f"{b['id']}  {b['status']:<10}  {done}/{b['total_count']}  {b['created_at']}")
    return EXIT_OK


def cancel(client: Client, batch_id: str) -> int:
    batch = client.cancel(batch_id)
    _out(f"{batch['id']} {batch['status']}")
    return EXIT_OK


def results(client: Client, batch_id: str, out: Path | None) -> int:
    batch, _ = client.batch(batch_id)
    if not batch.get("results_url"):
        raise NoResults(f"{batch_id} is {batch['status']}: it has no results yet")
    chunks = client.download(batch["results_url"])
    if out is None:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        return EXIT_OK
    try:
        with out.open("wb") as target:
            for chunk in chunks:
                target.write(chunk)
    except OSError as exc:
        raise UsageError(f"{out}: {exc.strerror or exc}") from None
    print(f"{batch_id}: results written to {out}", file=sys.stderr)
    return EXIT_OK


# --- files ---------------------------------------------------------------------------------------


def upload(client: Client, path: Path, purpose: str) -> int:
    _out(client.upload(_readable(path), purpose)["id"])
    return EXIT_OK


def list_files(client: Client, limit: int, as_json: bool) -> int:
    items = client.files(limit)
    if as_json:
        _json(items)
        return EXIT_OK
    for f in items:
        size = f"{f['bytes']} bytes  {f['line_count']} lines"
        _out(f"{f['id']}  {f['filename']}  {size}  {f['created_at']}")
    return EXIT_OK


def delete_file(client: Client, file_id: str) -> int:
    client.delete_file(file_id)
    _out(f"{file_id} deleted")
    return EXIT_OK


# --- the emulator's clock and scenarios --------------------------------------------------------


def _seconds(text: str) -> float:
    from emulator.scenario.checks import duration_seconds

    try:
        return duration_seconds(text)
    except ValueError:
        raise UsageError(f"not a duration: {text!r} (say 90s, 30m, 2h or 1d)") from None


def show_clock(clock: dict[str, Any]) -> int:
    scale = f" x{clock['scale']:g}" if clock["mode"] == "scaled" else ""
    _out(f"{clock['now']} {clock['mode']}{scale}")
    return EXIT_OK


def use_scenario(client: Client, name: str, tenant: str | None) -> int:
    """A file is sent as its YAML (the server may not see this machine's files); anything else
    is a bundled name or inline YAML, as the server reads it."""
    path = Path(name)
    if path.is_file():
        try:
            body = {"yaml": path.read_text(encoding="utf-8")}
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: {exc}") from None
    else:
        body = {"name": name}
    who = None if tenant is None else (tenant or client.api_key)
    scenario = client.use_scenario(body, who)
    where = "global" if who is None else f"tenant {tenant or 'of this API key'}"
    _out(f"{where} scenario: {scenario['name']}")
    return EXIT_OK
