"""The emulator clock: modes, advancing, configuring, and the control routes that drive it.

Unit tests inject the wall clock, so no test waits for real time to pass.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from conftest import START, Harness, chat_line

from emulator.clock import Clock, iso, iso_or_none, parse_instant
from emulator.errors import ValidationError

T0 = START.timestamp()
CLOCK = "/_emulator/clock"
ADVANCE = "/_emulator/clock/advance"


class Wall:
    """A wall clock a test moves by hand."""

    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def ok(resp: httpx.Response) -> Any:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "ok"
    return body["data"]


def validation_error(resp: httpx.Response, field: str | None = None) -> dict[str, Any]:
    assert resp.status_code == 422, resp.text
    body: dict[str, Any] = resp.json()
    assert body["status"] == "error"
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert body["meta"]["request_id"] == resp.headers["x-request-id"]
    if field is not None:
        assert field in {d.get("field") for d in body["error"]["details"]}, body
    return body


# --- modes --------------------------------------------------------------------------------------


def test_real_clock_follows_the_wall_plus_what_was_advanced() -> None:
    wall = Wall()
    clock = Clock("real", wall=wall)
    assert clock.now() == wall.t
    wall.t += 10
    assert clock.now() == wall.t
    clock.advance(3600)
    assert clock.now() == wall.t + 3600
    wall.t += 5
    assert clock.now() == wall.t + 3600
    assert clock.mode == "real" and clock.scale == 1.0


def test_real_clock_from_a_start_instant_runs_at_wall_speed() -> None:
    wall = Wall()
    clock = Clock("real", start=START, wall=wall)
    assert clock.now() == T0
    wall.t += 2.5
    assert clock.now() == T0 + 2.5


def test_scaled_clock_runs_n_emulator_seconds_per_wall_second() -> None:
    wall = Wall()
    clock = Clock("scaled", 60.0, START, wall=wall)
    assert clock.now() == T0
    wall.t += 1
    assert clock.now() == T0 + 60
    clock.advance(30)
    assert clock.now() == T0 + 90
    wall.t += 0.5
    assert clock.now() == T0 + 120
    assert clock.to_dict() == {"now": iso(T0 + 120), "mode": "scaled", "scale": 60.0}


def test_frozen_clock_moves_only_when_advanced() -> None:
    wall = Wall()
    clock = Clock("frozen", start=START, wall=wall)
    wall.t += 86_400
    assert clock.now() == T0
    clock.advance(90)
    assert clock.now() == T0 + 90
    wall.t += 1
    assert clock.now() == T0 + 90


def test_frozen_clock_without_a_start_begins_at_the_wall_time() -> None:
    wall = Wall(1_700_000_000.0)
    clock = Clock("frozen", wall=wall)
    wall.t += 100
    assert clock.now() == 1_700_000_000.0


def test_scale_is_one_unless_the_clock_is_scaled() -> None:
    assert Clock("real", 10.0, wall=Wall()).scale == 1.0
    assert Clock("frozen", 10.0, wall=Wall()).scale == 1.0


@pytest.mark.parametrize("seconds", [-1.0, -0.001, math.nan, -math.inf])
def test_advance_never_moves_backwards(seconds: float) -> None:
    clock = Clock("frozen", start=START, wall=Wall())
    with pytest.raises(ValidationError) as caught:
        clock.advance(seconds)
    assert caught.value.status == 422 and caught.value.code == "VALIDATION_ERROR"
    assert clock.now() == T0


def test_advance_by_zero_is_allowed() -> None:
    clock = Clock("frozen", start=START, wall=Wall())
    clock.advance(0)
    assert clock.now() == T0


def test_configure_to_a_start_in_the_past_is_refused() -> None:
    clock = Clock("frozen", start=START, wall=Wall())
    clock.advance(60)
    with pytest.raises(ValidationError) as caught:
        clock.configure(start=START)
    assert caught.value.status == 422
    assert caught.value.details and caught.value.details[0]["field"] == "start"
    assert clock.now() == T0 + 60


def test_configure_to_now_or_later_jumps_there() -> None:
    clock = Clock("frozen", start=START, wall=Wall())
    clock.configure(start=START)
    assert clock.now() == T0
    clock.configure(start=START + timedelta(days=2))
    assert clock.now() == T0 + 2 * 86_400


def test_configure_changes_mode_and_scale_without_a_jump() -> None:
    wall = Wall()
    clock = Clock("frozen", start=START, wall=wall)
    clock.configure("scaled", 100.0)
    assert clock.now() == T0
    wall.t += 2
    assert clock.now() == T0 + 200
    clock.configure("real")
    assert clock.scale == 1.0 and clock.now() == T0 + 200
    wall.t += 2
    assert clock.now() == T0 + 202
    clock.configure("frozen")
    wall.t += 50
    assert clock.now() == T0 + 202


@pytest.mark.parametrize(
    ("mode", "scale", "field"), [("slow", None, "mode"), ("scaled", 0.0, "scale"),
                                 ("scaled", -2.0, "scale"), ("scaled", math.nan, "scale")],
)  # fmt: skip
def test_configure_refuses_bad_mode_or_scale(mode: str, scale: float | None, field: str) -> None:
    clock = Clock("frozen", start=START, wall=Wall())
    with pytest.raises(ValidationError) as caught:
        clock.configure(mode, scale)
    assert caught.value.details and caught.value.details[0]["field"] == field
    assert clock.mode == "frozen" and clock.now() == T0


def test_listeners_hear_every_advance_and_reconfiguration() -> None:
    clock = Clock("frozen", start=START, wall=Wall())
    heard: list[float] = []
    clock.subscribe(lambda: heard.append(clock.now()))
    clock.advance(5)
    clock.configure(start=START + timedelta(seconds=10))
    assert heard == [T0 + 5, T0 + 10]


def test_real_seconds_until_in_each_mode() -> None:
    wall = Wall()
    real = Clock("real", start=START, wall=wall)
    assert real.real_seconds_until(T0 + 30) == 30
    assert real.real_seconds_until(T0 - 30) == 0.0
    scaled = Clock("scaled", 60.0, START, wall=wall)
    assert scaled.real_seconds_until(T0 + 120) == 2.0
    assert scaled.real_seconds_until(T0) == 0.0
    frozen = Clock("frozen", start=START, wall=wall)
    assert frozen.real_seconds_until(T0 + 1) is None  # only an advance gets it there
    assert frozen.real_seconds_until(T0) == 0.0
    assert frozen.real_seconds_until(T0 - 1) == 0.0


# --- formatting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        (0, "2026-01-01T00:00:00.000Z"),
        (0.5, "2026-01-01T00:00:00.500Z"),
        (0.25, "2026-01-01T00:00:00.250Z"),
        (0.123, "2026-01-01T00:00:00.123Z"),
        (90061.007, "2026-01-02T01:01:01.007Z"),
    ],
)
def test_iso_has_milliseconds_and_z(offset: float, text: str) -> None:
    assert iso(T0 + offset) == text
    assert parse_instant(text).timestamp() == pytest.approx(T0 + offset, abs=1e-6)


def test_iso_or_none() -> None:
    assert iso_or_none(None) is None
    assert iso_or_none(T0) == "2026-01-01T00:00:00.000Z"


def test_parse_instant_takes_a_naive_instant_as_utc() -> None:
    assert parse_instant("2026-01-01T00:00:00") == START
    assert parse_instant("2026-01-01T01:00:00+01:00") == START
    with pytest.raises(ValueError):
        parse_instant("yesterday")


# --- the control routes -------------------------------------------------------------------------


async def test_get_clock(emu: Harness) -> None:
    data = ok(await emu.client.get(CLOCK))
    assert data == {"now": "2026-01-01T00:00:00.000Z", "mode": "frozen", "scale": 1.0}


@pytest.mark.parametrize(
    ("body", "now"),
    [
        ({"seconds": 90}, "2026-01-01T00:01:30.000Z"),
        ({"seconds": 0.25}, "2026-01-01T00:00:00.250Z"),
        ({"minutes": 2}, "2026-01-01T00:02:00.000Z"),
        ({"hours": 24}, "2026-01-02T00:00:00.000Z"),
        ({"hours": 1, "minutes": 1, "seconds": 1}, "2026-01-01T01:01:01.000Z"),
        ({"seconds": 0}, "2026-01-01T00:00:00.000Z"),
    ],
)
async def test_advance_answers_the_new_clock(emu: Harness, body: dict[str, Any], now: str) -> None:
    data = ok(await emu.client.post(ADVANCE, json=body))
    assert data == {"now": now, "mode": "frozen", "scale": 1.0}
    assert ok(await emu.client.get(CLOCK))["now"] == now


async def test_advances_add_up(emu: Harness) -> None:
    for _ in range(3):
        ok(await emu.client.post(ADVANCE, json={"minutes": 20}))
    assert ok(await emu.client.get(CLOCK))["now"] == "2026-01-01T01:00:00.000Z"


@pytest.mark.parametrize(
    "body",
    [
        {"seconds": -1},
        {"minutes": -5},
        {"hours": -0.5, "seconds": 10},
        {"seconds": "10"},
        {"seconds": None},
        {"seconds": True},
        {"minutes": [1]},
        {"hours": {"h": 1}},
    ],
)
async def test_advance_refuses_anything_but_forward_numbers(
    emu: Harness, body: dict[str, Any]
) -> None:
    validation_error(await emu.client.post(ADVANCE, json=body))
    assert ok(await emu.client.get(CLOCK))["now"] == "2026-01-01T00:00:00.000Z"


async def test_advance_past_the_last_representable_instant_is_refused(emu: Harness) -> None:
    validation_error(await emu.client.post(ADVANCE, json={"seconds": 1e12}), "seconds")
    validation_error(await emu.client.post(ADVANCE, json={"hours": 1e9}))
    # the clock still works
    assert ok(await emu.client.get(CLOCK))["now"] == "2026-01-01T00:00:00.000Z"
    data = ok(await emu.client.post(ADVANCE, json={"hours": 24 * 365 * 7000}))
    assert data["now"].startswith("902")


def test_clock_refuses_to_pass_year_9999() -> None:
    clock = Clock("frozen", start=START, wall=Wall())
    with pytest.raises(ValidationError):
        clock.advance(math.inf)
    with pytest.raises(ValidationError):
        clock.advance(1e12)
    assert clock.now() == T0


async def test_advance_with_a_body_that_is_not_json_is_422(emu: Harness) -> None:
    validation_error(await emu.client.post(ADVANCE, content=b"ten"))


async def test_put_clock_sets_mode_and_scale(emu: Harness) -> None:
    data = ok(await emu.client.put(CLOCK, json={"mode": "scaled", "scale": 10}))
    assert data["mode"] == "scaled" and data["scale"] == 10.0
    data = ok(await emu.client.put(CLOCK, json={"mode": "real"}))
    assert data["mode"] == "real" and data["scale"] == 1.0
    data = ok(await emu.client.put(CLOCK, json={"mode": "frozen"}))
    assert data["mode"] == "frozen"
    frozen_at = data["now"]
    assert ok(await emu.client.get(CLOCK))["now"] == frozen_at


async def test_put_clock_start_jumps_forward(emu: Harness) -> None:
    data = ok(await emu.client.put(CLOCK, json={"start": "2026-06-01T12:00:00Z"}))
    assert data == {"now": "2026-06-01T12:00:00.000Z", "mode": "frozen", "scale": 1.0}
    data = ok(await emu.client.put(CLOCK, json={"start": "2026-06-01T14:00:00+02:00"}))
    assert data["now"] == "2026-06-01T12:00:00.000Z"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mode": "slow"}, "mode"),
        ({"mode": 3}, "mode"),
        ({"mode": "scaled", "scale": 0}, "scale"),
        ({"mode": "scaled", "scale": -1}, "scale"),
        ({"mode": "scaled", "scale": "fast"}, "scale"),
        ({"scale": True}, "scale"),
        ({"start": "tomorrow"}, "start"),
        ({"start": 12}, "start"),
        ({"start": "2025-12-31T23:59:59Z"}, "start"),  # in the past
    ],
)
async def test_put_clock_refuses_bad_values(emu: Harness, body: dict[str, Any], field: str) -> None:
    validation_error(await emu.client.put(CLOCK, json=body), field)
    data = ok(await emu.client.get(CLOCK))
    assert data == {"now": "2026-01-01T00:00:00.000Z", "mode": "frozen", "scale": 1.0}


# --- everything follows the clock ---------------------------------------------------------------


async def test_batch_timestamps_follow_the_clock(emu: Harness) -> None:
    ok(await emu.client.post(ADVANCE, json={"hours": 5}))
    now = ok(await emu.client.get(CLOCK))["now"]
    assert now == "2026-01-01T05:00:00.000Z"
    batch = await emu.submit([chat_line("a")], endpoint_completion_window="4h")
    assert batch["created_at"] == now
    assert batch["expires_at"] == "2026-01-01T09:00:00.000Z"
    await emu.settle()
    done = await emu.batch(batch["id"])
    assert done["status"] == "completed"
    assert done["started_at"] == done["completed_at"] == now
    assert done["results_expires_at"] == "2026-01-01T06:00:00.000Z"
    assert f"expires={(int(START.timestamp()) + 6 * 3600) * 1000}" in done["results_url"]


async def test_results_url_expiry_follows_the_clock(emu: Harness) -> None:
    batch = await emu.submit([chat_line("a")])
    await emu.settle()
    url = (await emu.batch(batch["id"]))["results_url"]
    async with emu.client_for(None) as anon:
        await emu.advance(3599.999)
        assert (await anon.get(url)).status_code == 200
        await emu.advance(0.001)
        resp = await anon.get(url)
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"]["code"] == "RESULTS_URL_EXPIRED"
        fresh = await emu.batch(batch["id"])
        assert fresh["results_expires_at"] == "2026-01-01T02:00:00.000Z"
        assert (await anon.get(fresh["results_url"])).status_code == 200


async def test_file_and_live_timestamps_follow_the_clock(emu: Harness) -> None:
    await emu.advance(86_400 + 0.5)
    files = {"file": ("in.jsonl", b'{"x": 1}\n', "application/jsonl")}
    created = ok(await emu.client.post("/v1/files", files=files))
    assert created["created_at"] == "2026-01-02T00:00:00.500Z"
    chat = ok(await emu.client.post("/v1/inference/chat", json=chat_line("x")["body"]))
    assert chat["created"] == int(T0 + 86_400)


async def test_journal_times_follow_the_clock(emu: Harness) -> None:
    await emu.advance(7200)
    ok(await emu.client.get("/v1/models"))
    entries = ok(await emu.client.get("/_emulator/journal", params={"path": "/v1/models"}))
    assert entries["items"][-1]["time"] == "2026-01-01T02:00:00.000Z"


async def test_clock_start_setting(make_emu: Any) -> None:
    start = datetime(2030, 5, 17, 8, 30, tzinfo=UTC)
    h: Harness = await make_emu(clock_start=start)
    assert ok(await h.client.get(CLOCK))["now"] == "2030-05-17T08:30:00.000Z"


def test_a_scale_alone_switches_to_the_scaled_mode() -> None:
    clock = Clock("real", start=datetime(2026, 1, 1, tzinfo=UTC), wall=lambda: 100.0)
    clock.configure(scale=60)
    assert (clock.mode, clock.scale) == ("scaled", 60.0)
