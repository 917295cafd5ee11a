"""Settings, declared once as a table: each row gives the CLI flag, the environment variable, the
default and the help text. `serve --help` and the README's settings table are generated from it.

Precedence: command-line flag > `SCAIGRID_EMULATOR_<NAME>` environment variable > default. Settings
are built once (by the CLI or a test fixture) and passed in; nothing reads the environment later.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from emulator.clock import MODES, parse_instant
from emulator.errors import ConfigError

ENV_PREFIX = "SCAIGRID_EMULATOR_"
DEFAULT_DB = "scaigrid-emulator.db"
#: the bundled scenario in force when none is named
DEFAULT_SCENARIO = "happy-path"


def _path(value: str) -> Path:
    return Path(value).expanduser()


def _clock_mode(value: str) -> str:
    if value not in MODES:
        raise ValueError(f"must be {', '.join(MODES[:-1])} or {MODES[-1]}")
    return value


def _positive_int(value: str) -> int:
    out = int(value)
    if out <= 0:
        raise ValueError("must be a positive integer")
    return out


def _port(value: str) -> int:
    out = int(value)
    if not 0 <= out <= 65535:
        raise ValueError("must be a port number (0 picks a free one)")
    return out


def _secret(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


def _log_level(value: str) -> str:
    if value.lower() not in ("debug", "info", "warning", "error", "critical"):
        raise ValueError("must be debug, info, warning, error or critical")
    return value.lower()


def _positive_float(value: str) -> float:
    out = float(value)
    if out <= 0:
        raise ValueError("must be a positive number")
    return out


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


def _model_map(value: str) -> tuple[tuple[str, str], ...]:
    """`ours=theirs,...`: the model name the upstream is sent for each emulator model; `*=name`
    sends every other model as `name`. A model not named keeps its own name."""
    pairs = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        ours, sep, theirs = (side.strip() for side in item.partition("="))
        if not (sep and ours and theirs):
            raise ValueError(f"{item!r} is not ours=theirs")
        pairs.append((ours, theirs))
    return tuple(pairs)


#: what `--replay` does with a request it has no recording of
REPLAY_MISSES = ("error", "fake", "upstream")


def _replay_miss(value: str) -> str:
    if value not in REPLAY_MISSES:
        raise ValueError(f"must be {', '.join(REPLAY_MISSES[:-1])} or {REPLAY_MISSES[-1]}")
    return value


def _setting(
    default: Any, parse: Callable[[str], Any], help: str, metavar: str | None = None
) -> Any:
    """A field of `Settings` that is also a row of the settings table."""
    return dataclasses.field(
        default=default, metadata={"parse": parse, "help": help, "metavar": metavar}
    )


#: settings never shown back (the state dump writes them as `***`)
SECRET_SETTINGS = frozenset({"admin_token", "signing_secret"})


@dataclass(frozen=True)
class Settings:
    """The emulator's settings, declared once: each field is a row of the settings table
    (`SETTINGS`), from which the CLI flags, `--help` and the README's table are made."""

    host: str = _setting("127.0.0.1", str, "interface to bind")
    port: int = _setting(8080, _port, "port to bind (0 picks a free one)")
    db: str = _setting(DEFAULT_DB, str, "SQLite database file, or :memory:", "PATH")
    seed: int = _setting(0, int, "seed for ids, fake inference and every random choice")
    scenario: str = _setting(
        DEFAULT_SCENARIO, str, "global scenario: a bundled name or a YAML file", "NAME|FILE"
    )
    clock: str = _setting("real", _clock_mode, f"emulator clock: {', '.join(MODES)}", "MODE")
    clock_scale: float = _setting(
        1.0, _positive_float, "emulator seconds per real second (scaled clock)", "N"
    )
    clock_start: datetime | None = _setting(
        None, parse_instant, "instant the clock starts at (ISO-8601)", "INSTANT"
    )
    models: Path | None = _setting(
        None, _path, "model catalogue YAML replacing the bundled one", "FILE"
    )
    tenants: Path | None = _setting(
        None, _path, "tenants/keys/roles YAML: switches to configured tenancy", "FILE"
    )
    admin_token: str | None = _setting(
        None, str, "token the control plane (/_emulator) requires", "TOKEN"
    )
    signing_secret: str | None = _setting(
        None, _secret, "secret results and image links are signed with (default: from the seed)",
        "SECRET",
    )  # fmt: skip
    public_url: str | None = _setting(
        None, str, "base URL of links minted outside a request", "URL"
    )
    scaidrive_root: Path | None = _setting(
        None, _path, "local folder that scaidrive:// URLs map to", "DIR"
    )
    s3_endpoint_url: str | None = _setting(
        None, str, "S3 endpoint for s3:// input (e.g. a local MinIO)", "URL"
    )
    max_requests_per_batch: int = _setting(
        50_000, _positive_int, "QUOTA_EXCEEDED above this many lines"
    )
    max_input_bytes: int = _setting(
        500 * 1024 * 1024, _positive_int, "QUOTA_EXCEEDED above this size"
    )
    max_active_batches: int = _setting(
        10, _positive_int, "pending/processing batches allowed a tenant"
    )
    journal_bytes: int = _setting(
        32 * 1024 * 1024,
        _positive_int,
        "bytes of memory the journal's headers and bodies may take",
        "N",
    )
    verdict_min_poll_interval: float = _setting(
        10.0, _positive_float, "verdict: seconds a client should wait between polls of a batch", "S"
    )
    verdict_rate_limit: int = _setting(
        60, _positive_int, "verdict: requests a minute per key that production allows", "N"
    )
    upstream: str | None = _setting(
        None, _url, "OpenAI-compatible base URL that live calls and batch lines are sent to", "URL"
    )
    upstream_key: str | None = _setting(
        None, str, "bearer key sent to the upstream (never recorded)", "KEY"
    )
    upstream_model_map: tuple[tuple[str, str], ...] | None = _setting(
        None,
        _model_map,
        "model names for the upstream: ours=theirs,... (*=name for the rest)",
        "MAP",
    )
    upstream_concurrency: int = _setting(8, _positive_int, "upstream calls in flight at once", "N")
    upstream_timeout: float = _setting(
        60.0, _positive_float, "seconds an upstream call may take (then BACKEND_TIMEOUT)", "S"
    )
    record: Path | None = _setting(
        None, _path, "folder each upstream answer is recorded in, one JSON file each", "DIR"
    )
    replay: Path | None = _setting(None, _path, "folder of recordings to answer from", "DIR")
    replay_miss: str = _setting(
        "error", _replay_miss, f"a request not recorded: {', '.join(REPLAY_MISSES)}", "WHAT"
    )
    log_level: str = _setting("info", _log_level, "log level: debug, info, warning, error", "LEVEL")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def base_url(self) -> str:
        """The URL clients reach the emulator at, used where no request tells it."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:  # an IPv6 literal is bracketed in a URL
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    name: str
    default: Any
    parse: Callable[[str], Any]
    help: str
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, f.default, **f.metadata) for f in dataclasses.fields(Settings)
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one option per setting; defaults stay None so the environment can fill them."""
    for s in SETTINGS:
        shown = "" if s.default is None else f" (default: {s.default})"
        parser.add_argument(
            s.flag, dest=s.name, default=None, metavar=s.metavar,
            help=f"{s.help}{shown}; env {s.env}",
        )  # fmt: skip


def build_settings(args: Mapping[str, str | None], env: Mapping[str, str]) -> Settings:
    """flag > environment > default, each raw value parsed by its row's parser."""
    values: dict[str, Any] = {}
    for s in SETTINGS:
        raw = args.get(s.name)
        source = s.flag
        if raw is None:
            # An empty variable counts as unset (`VAR=` in a compose file or a CI matrix).
            raw, source = env.get(s.env) or None, s.env
        if raw is None:
            values[s.name] = s.default
            continue
        try:
            values[s.name] = s.parse(raw)
        except (ValueError, ConfigError) as exc:
            raise ConfigError(f"{source}={raw!r}: {exc}") from exc
    return Settings(**values)


def settings_table() -> Sequence[tuple[str, str, str, str]]:
    """(flag, environment variable, default, help) rows: the README's settings table."""
    return [(s.flag, s.env, "" if s.default is None else str(s.default), s.help) for s in SETTINGS]
