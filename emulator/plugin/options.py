"""The plugin's options: the ini options that configure the session's emulator (parsed as
`serve` parses its flags) and the `@pytest.mark.scaigrid(...)` marker of a test, each checked,
a bad value being a `pytest.UsageError` that names it."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from emulator.errors import ConfigError
from emulator.settings import SETTINGS, Settings

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}
MARKER_KEYS = ("seed", "scenario", "tenants", "clock_start", "verdict")
#: the verdict's modes: `strict` fails a test at teardown on any finding of its tenants
VERDICT_MODES = ("off", "strict")
INI_OPTIONS = {
    "scaigrid_seed": "seed of the session's emulator (ids, fake inference, every random draw)",
    "scaigrid_scenario": "global scenario of the session's emulator: a bundled name or a file",
    "scaigrid_tenants": "how many tenants each test gets (default 1; `scaigrid.tenants`)",
    "scaigrid_clock_start": "ISO-8601 instant the session's frozen clock starts at",
    "scaigrid_verdict": "off (default) or strict: fail a test at teardown on verdict findings",
}
#: the settings of `serve` that relay and replay, each an ini option `scaigrid_<name>`
UPSTREAM_SETTINGS = (
    "upstream", "upstream_key", "upstream_model_map", "upstream_concurrency", "upstream_timeout",
    "record", "replay", "replay_miss",
)  # fmt: skip
#: the settings ini options give the session's server
SESSION_SETTINGS = ("seed", "scenario", "clock_start", *UPSTREAM_SETTINGS)
#: folders a suite keeps with its code: a relative one is the ini file's, whatever the cwd
FOLDERS = ("record", "replay")
#: kept out of a committed ini file: without the option, the variable `serve` reads
FROM_ENV = ("upstream_key",)


def _help(name: str) -> str:
    """An upstream option's help: its setting's, and where a default or a folder comes from."""
    s = SETTINGS_BY_NAME[name]
    shown = "" if s.default is None else f" (default {s.default})"
    where = "; relative: to the ini file" if name in FOLDERS else ""
    env = f"; unset: ${s.env}" if name in FROM_ENV else ""
    return f"{s.help}{shown}{where}{env}"


INI_OPTIONS.update({f"scaigrid_{name}": _help(name) for name in UPSTREAM_SETTINGS})


def ini(config: pytest.Config, name: str) -> str | None:
    value = config.getini(name)
    text = str(value).strip() if value is not None else ""
    return text or None


_BY_FLAG = {s.flag: s.name for s in SETTINGS}
#: a whole flag (`--replay`, not the start of `--replay-miss` or of a folder's name)
_FLAG = re.compile(
    r"(?<![\w-])("
    + "|".join(sorted(map(re.escape, _BY_FLAG), key=len, reverse=True))
    + r")(?![\w-])"
)


def session_settings(config: pytest.Config, db: Path) -> Settings:
    """The session server's settings: a frozen clock, seed 0, and the ini options. Without
    `scaigrid_clock_start` the clock starts now, to the second (an instant it can be put back
    to exactly)."""
    changes: dict[str, Any] = {}
    for name in SESSION_SETTINGS:  # parsed as `serve` parses its flags
        raw = ini(config, f"scaigrid_{name}")
        if raw is None and name in FROM_ENV:
            raw = os.environ.get(SETTINGS_BY_NAME[name].env) or None
        if raw is not None:
            try:
                changes[name] = SETTINGS_BY_NAME[name].parse(raw)
            except (ValueError, ConfigError) as exc:
                raise pytest.UsageError(f"ini option scaigrid_{name}: {raw!r}: {exc}") from None
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    for name in FOLDERS:
        if name in changes:
            changes[name] = base / changes[name]  # an absolute path stays as it is
    tenant_count(ini(config, "scaigrid_tenants") or "1", "ini option scaigrid_tenants")
    now = datetime.now(UTC).replace(microsecond=0)
    return Settings(db=str(db), clock="frozen", seed=0, clock_start=now).replace(**changes)


def refused(exc: ConfigError) -> pytest.UsageError:
    """The server's refusal of settings the ini options gave together (`--record` without
    `--upstream`, a `--replay` folder that is not there), naming the ini options."""
    said = _FLAG.sub(lambda m: "scaigrid_" + _BY_FLAG[m[0]], str(exc))
    return pytest.UsageError(f"the scaigrid ini options: {said}")


def tenant_count(value: Any, where: str) -> int:
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = 0
    if isinstance(value, bool) or count < 1:
        raise pytest.UsageError(f"{where}: tenants must be a whole number >= 1, got {value!r}")
    return count


def marker_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The test's `@pytest.mark.scaigrid(...)` options (the closest marker wins, key by key),
    checked: an unknown key, a positional argument or a per-test clock start is an error."""
    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("scaigrid"))):
        if marker.args:
            raise pytest.UsageError(
                f"@pytest.mark.scaigrid takes keyword arguments only ({', '.join(MARKER_KEYS)})"
            )
        unknown = sorted(set(marker.kwargs) - set(MARKER_KEYS))
        if unknown:
            raise pytest.UsageError(
                f"@pytest.mark.scaigrid: unknown option(s) {', '.join(unknown)} "
                f"(known: {', '.join(MARKER_KEYS)})"
            )
        options.update(marker.kwargs)
    if options.get("clock_start") is not None:
        raise pytest.UsageError(
            "@pytest.mark.scaigrid(clock_start=...) cannot apply per test: the session's "
            "emulator has one clock that every test shares. Set the ini option "
            "scaigrid_clock_start for the session, or move the clock with scaigrid.advance()"
        )
    return options


def verdict_mode(request: pytest.FixtureRequest, options: dict[str, Any]) -> str:
    where = "@pytest.mark.scaigrid(verdict=...)" if "verdict" in options else "scaigrid_verdict"
    mode = options.get("verdict") or ini(request.config, "scaigrid_verdict") or "off"
    if mode not in VERDICT_MODES:
        raise pytest.UsageError(f"{where}: {mode!r} is not one of {', '.join(VERDICT_MODES)}")
    return str(mode)
