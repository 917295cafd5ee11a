"""Settings precedence and parsing, `serve --help`, and the CLI's warnings and exits."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from emulator import __version__
from emulator.cli import is_loopback, main
from emulator.errors import ConfigError
from emulator.settings import SETTINGS, Settings, build_settings, settings_table


def args(**values: str) -> dict[str, str | None]:
    """Parsed CLI arguments as argparse gives them: every setting present, None when not given."""
    out: dict[str, str | None] = {s.name: None for s in SETTINGS}
    out.update(values)
    return out


# --- precedence ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "flag_value", "env_value", "flag_parsed", "env_parsed"),
    [
        ("port", "9001", "9002", 9001, 9002),
        ("seed", "7", "8", 7, 8),
        ("host", "0.0.0.0", "::1", "0.0.0.0", "::1"),
        ("clock", "frozen", "scaled", "frozen", "scaled"),
        ("clock_scale", "60", "3600", 60.0, 3600.0),
        ("max_active_batches", "3", "4", 3, 4),
        ("models", "a.yaml", "b.yaml", Path("a.yaml"), Path("b.yaml")),
        ("admin_token", "flag-token", "env-token", "flag-token", "env-token"),
        ("log_level", "DEBUG", "warning", "debug", "warning"),
    ],
)
def test_flag_beats_env_beats_default(
    name: str, flag_value: str, env_value: str, flag_parsed: Any, env_parsed: Any
) -> None:
    setting = next(s for s in SETTINGS if s.name == name)
    env = {setting.env: env_value}
    assert getattr(build_settings(args(**{name: flag_value}), env), name) == flag_parsed
    assert getattr(build_settings(args(), env), name) == env_parsed
    assert getattr(build_settings(args(), {}), name) == setting.default


def test_defaults_match_the_settings_dataclass() -> None:
    built = build_settings(args(), {})
    assert built == Settings()
    for s in SETTINGS:
        assert getattr(Settings(), s.name) == s.default, s.name


def test_settings_mix_sources_independently() -> None:
    env = {"SCAIGRID_EMULATOR_PORT": "9100", "SCAIGRID_EMULATOR_SEED": "5"}
    built = build_settings(args(seed="6", db=":memory:"), env)
    assert (built.port, built.seed, built.db, built.host) == (9100, 6, ":memory:", "127.0.0.1")


def test_empty_environment_variable_counts_as_unset() -> None:
    env = {"SCAIGRID_EMULATOR_PORT": "", "SCAIGRID_EMULATOR_MODELS": ""}
    built = build_settings(args(), env)
    assert (built.port, built.models) == (8080, None)


def test_clock_start_parses_iso_instants() -> None:
    built = build_settings(args(clock_start="2026-01-01T00:00:00Z"), {})
    assert built.clock_start == datetime(2026, 1, 1, tzinfo=UTC)
    naive = build_settings(args(clock_start="2026-01-01T12:00:00"), {})
    assert naive.clock_start == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_unrelated_environment_is_ignored() -> None:
    env = {"PORT": "1", "SCAIGRID_PORT": "2", "scaigrid_emulator_port": "3"}
    assert build_settings(args(), env).port == 8080


# --- bad values name their source ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("port", "x", "invalid literal"),
        ("port", "70000", "port number"),
        ("port", "-1", "port number"),
        ("clock", "sideways", "real, scaled or frozen"),
        ("clock_scale", "0", "positive number"),
        ("clock_scale", "fast", "could not convert"),
        ("clock_start", "yesterday", "ISO-8601"),
        ("max_active_batches", "-3", "positive integer"),
        ("max_requests_per_batch", "0", "positive integer"),
        ("max_input_bytes", "1.5", "invalid literal"),
        ("seed", "abc", "invalid literal"),
        ("log_level", "loud", "debug, info, warning, error"),
    ],
)
def test_bad_value_names_the_flag_or_env_var(name: str, value: str, hint: str) -> None:
    setting = next(s for s in SETTINGS if s.name == name)
    with pytest.raises(ConfigError) as from_flag:
        build_settings(args(**{name: value}), {})
    assert str(from_flag.value).startswith(f"{setting.flag}={value!r}: ")
    assert hint in str(from_flag.value)
    with pytest.raises(ConfigError) as from_env:
        build_settings(args(), {setting.env: value})
    assert str(from_env.value).startswith(f"{setting.env}={value!r}: ")


def test_cli_reports_bad_value_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "x"], env={}) == 2
    assert capsys.readouterr().err == (
        "scaigrid-emulator: error: --port='x': invalid literal for int() with base 10: 'x'\n"
    )
    assert main(["serve"], env={"SCAIGRID_EMULATOR_CLOCK": "sideways"}) == 2
    err = capsys.readouterr().err
    assert "SCAIGRID_EMULATOR_CLOCK='sideways'" in err and "real, scaled or frozen" in err
    assert main(["serve", "--max-active-batches", "-1"], env={}) == 2
    assert "--max-active-batches='-1'" in capsys.readouterr().err


def test_unknown_flag_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--no-such-flag"], env={})
    assert info.value.code == 2
    assert "--no-such-flag" in capsys.readouterr().err


# --- help and version -------------------------------------------------------------------------


def test_serve_help_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--help"], env={})
    assert info.value.code == 0
    text = capsys.readouterr().out
    words = set(text.replace(",", " ").replace(";", " ").replace("(", " ").split())
    for s in SETTINGS:
        assert s.flag in words, s.flag
        assert s.env in words, s.env
        assert s.help.split()[0] in text


def test_settings_table_has_a_row_per_setting() -> None:
    rows = settings_table()
    assert [r[0] for r in rows] == [s.flag for s in SETTINGS]
    assert all(r[1].startswith("SCAIGRID_EMULATOR_") and r[1].isupper() for r in rows)
    assert len({r[1] for r in rows}) == len(rows)
    # Every setting the dataclass has is in the table, and the other way round.
    assert [s.name for s in SETTINGS] == list(Settings.__dataclass_fields__)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"], env={})
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"scaigrid-emulator {__version__}"


def test_no_command_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([], env={})
    assert info.value.code == 2


# --- base URL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "public_url", "expected"),
    [
        ("127.0.0.1", 8080, None, "http://127.0.0.1:8080"),
        ("0.0.0.0", 9000, None, "http://127.0.0.1:9000"),
        ("::", 9000, None, "http://127.0.0.1:9000"),
        ("::1", 9000, None, "http://[::1]:9000"),
        ("localhost", 1, None, "http://localhost:1"),
        ("0.0.0.0", 9000, "https://emu.example/", "https://emu.example"),
    ],
)
def test_base_url(host: str, port: int, public_url: str | None, expected: str) -> None:
    assert Settings(host=host, port=port, public_url=public_url).base_url == expected


# --- binding beyond loopback ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("LocalHost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("10.0.0.1", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


class _FakeServer:
    """Stands in for uvicorn.Server so `serve` runs to the end without serving."""

    ran: list[Any] = []

    def __init__(self, config: Any) -> None:
        self.config = config

    def handle_exit(self, sig: int, frame: Any) -> None:
        """What `serve` installs for SIGINT and SIGTERM while the server runs."""

    def run(self, sockets: list[socket.socket]) -> None:
        _FakeServer.ran.append(sockets)
        for sock in sockets:
            sock.close()


@pytest.fixture
def no_serving(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    import uvicorn

    _FakeServer.ran = []
    monkeypatch.setattr(uvicorn, "Server", _FakeServer)
    return _FakeServer.ran


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "emulator" and r.levelno == logging.WARNING
    ]


@pytest.mark.parametrize(
    ("argv", "warned"),
    [
        (["--host", "0.0.0.0"], True),
        (["--host", "0.0.0.0", "--admin-token", "s3cret"], False),
        (["--host", "127.0.0.1"], False),
        (["--host", "localhost"], False),
    ],
)
def test_warning_when_serving_beyond_loopback_without_admin_token(
    no_serving: list[Any],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    warned: bool,
) -> None:
    with caplog.at_level(logging.WARNING, logger="emulator"):
        code = main(["serve", "--port", "0", "--db", ":memory:", *argv], env={})
    assert code == 0
    assert len(no_serving) == 1  # it got as far as serving
    messages = _warnings(caplog)
    if warned:
        assert any("without --admin-token" in m and "0.0.0.0" in m for m in messages), messages
    else:
        assert not any("admin-token" in m for m in messages), messages
    out = capsys.readouterr().out
    assert f"scaigrid-emulator {__version__} listening on http://" in out


def test_env_admin_token_silences_the_warning(
    no_serving: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    env = {"SCAIGRID_EMULATOR_HOST": "0.0.0.0", "SCAIGRID_EMULATOR_ADMIN_TOKEN": "t"}
    with caplog.at_level(logging.WARNING, logger="emulator"):
        assert main(["serve", "--port", "0", "--db", ":memory:"], env=env) == 0
    assert not any("admin-token" in m for m in _warnings(caplog))


def test_port_zero_is_replaced_by_the_bound_port(
    no_serving: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--port", "0", "--db", ":memory:"], env={}) == 0
    out = capsys.readouterr().out
    port = int(out.strip().rsplit(":", 1)[1])
    assert port > 0


def test_port_in_use_is_a_clean_error(
    no_serving: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "--port", str(port), "--db", ":memory:"], env={})
    assert code == 2
    assert no_serving == []
    err = capsys.readouterr().err
    assert err.startswith(f"scaigrid-emulator: error: cannot listen on 127.0.0.1:{port}: "), err


def test_bad_tenants_file_exits_2_before_serving(
    tmp_path: Path, no_serving: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text("tenants:\n  - keys: []\n", encoding="utf-8")
    code = main(["serve", "--port", "0", "--db", ":memory:", "--tenants", str(path)], env={})
    assert code == 2
    assert no_serving == []
    assert f"{path}: tenants[0]: needs a string 'id'" in capsys.readouterr().err


def test_a_refused_scenario_exits_2_with_every_problem_before_serving(
    no_serving: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = "{nmae: x, faults: [{error: {code: BACKEND_EROR}}]}"
    code = main(["serve", "--port", "0", "--db", ":memory:", "--scenario", scenario], env={})
    assert code == 2
    assert no_serving == []
    err = capsys.readouterr().err
    assert "<inline>: nmae (line 1): unknown key 'nmae'" in err
    assert "<inline>: faults[0].error.code (line 1): unknown error code 'BACKEND_EROR'" in err


def test_a_second_server_on_the_same_database_exits_2_before_serving(
    tmp_path: Path, no_serving: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from emulator.store import Store

    db = str(tmp_path / "e.db")
    holder = Store(db)
    holder.claim()
    try:
        code = main(["serve", "--port", "0", "--db", db], env={})
    finally:
        asyncio.run(holder.close())
    assert code == 2
    assert no_serving == []
    err = capsys.readouterr().err
    assert f"{db}: another emulator (pid {os.getpid()}) is serving this database" in err
