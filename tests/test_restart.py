"""State that survives a restart: the clock, the scenarios set through the control plane and the
journal are kept in the database, and only one server at a time may serve a database file."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import KEY, OTHER_KEY, Harness, b64, chat_line
from test_serve import _env, _start

from emulator.tenancy import open_tenant_id

MakeEmu = Callable[..., Awaitable[Harness]]
TENANT = open_tenant_id(KEY)
OTHER = open_tenant_id(OTHER_KEY)
AUTH = {"Authorization": f"Bearer {KEY}"}


def ok(resp: httpx.Response) -> Any:
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


async def restart(make_emu: MakeEmu, old: Harness, db: str, **settings: Any) -> Harness:
    """A clean stop of `old`, then a new emulator on the same database."""
    await old.close()
    await old.core.stop()
    return await make_emu(db=db, **settings)


async def crash(make_emu: MakeEmu, old: Harness, db: str) -> Harness:
    """As a kill -9: the store closes before anything else can be saved."""
    await old.close()
    await old.core.store.close()
    await old.core.stop()
    return await make_emu(db=db)


async def test_a_frozen_clock_comes_back_where_it_was(make_emu: MakeEmu, tmp_path: Path) -> None:
    db = str(tmp_path / "e.db")
    h = await make_emu(db=db)
    ok(await h.client.post("/_emulator/clock/advance", json={"hours": 9, "minutes": 25}))
    h = await restart(make_emu, h, db)  # the settings say frozen at 00:00: the store wins
    assert ok(await h.client.get("/_emulator/clock")) == {
        "now": "2026-01-01T09:25:00.000Z", "mode": "frozen", "scale": 1.0,
    }  # fmt: skip
    # an advance is saved when it is made, so a crash right after it loses nothing
    ok(await h.client.post("/_emulator/clock/advance", json={"minutes": 5}))
    h = await crash(make_emu, h, db)
    assert ok(await h.client.get("/_emulator/clock"))["now"] == "2026-01-01T09:30:00.000Z"


async def test_a_scaled_clock_keeps_its_mode_and_scale(make_emu: MakeEmu, tmp_path: Path) -> None:
    db = str(tmp_path / "e.db")
    h = await make_emu(db=db)
    set_to = {"mode": "scaled", "scale": 60, "start": "2026-01-01T10:00:00Z"}
    ok(await h.client.put("/_emulator/clock", json=set_to))
    h = await restart(make_emu, h, db)
    clock = ok(await h.client.get("/_emulator/clock"))
    assert (clock["mode"], clock["scale"]) == ("scaled", 60.0)
    assert clock["now"] >= "2026-01-01T10:00:00.000Z"


async def test_after_a_crash_the_clock_is_never_before_what_is_stored(
    make_emu: MakeEmu, tmp_path: Path
) -> None:
    db = str(tmp_path / "e.db")
    h = await make_emu(db=db)
    await h.advance(3600)  # moved in process, not through the control plane: not saved yet
    batch = await h.submit([chat_line("a")])
    await h.settle()
    assert (await h.batch(batch["id"]))["started_at"] == "2026-01-01T01:00:00.000Z"
    h = await crash(make_emu, h, db)
    now = ok(await h.client.get("/_emulator/clock"))["now"]
    after = await h.batch(batch["id"])
    assert after["started_at"] <= now and after["created_at"] <= now
    assert now == "2026-01-01T01:00:00.000Z"


async def test_after_a_crash_no_webhook_was_made_after_the_clock(
    make_emu: MakeEmu, tmp_path: Path
) -> None:
    """A webhook registered (or updated) at an instant the crash kept from being saved still
    holds the clock back: its timestamps are never in the restarted clock's future."""
    db = str(tmp_path / "e.db")
    h = await make_emu(db=db)
    await h.advance(7200)  # moved in process, not through the control plane: not saved yet
    body = {"url": "http://127.0.0.1:9/hook", "secret": "whsec_" + "0" * 32}
    hook = ok(await h.client.post("/v1/webhooks", json=body))
    h = await crash(make_emu, h, db)
    assert ok(await h.client.get("/_emulator/clock"))["now"] == "2026-01-01T02:00:00.000Z"
    assert hook["created_at"] == "2026-01-01T02:00:00.000Z"


async def test_scenarios_set_through_the_control_plane_survive(
    make_emu: MakeEmu, tmp_path: Path
) -> None:
    db = str(tmp_path / "e.db")
    h = await make_emu(db=db)
    ok(await h.client.put("/_emulator/scenario", json={"name": "rate-limited"}))
    ok(await h.client.put(f"/_emulator/tenants/{KEY}/scenario", json={"name": "flaky-backend"}))
    yaml = "name: mine\ndescription: inline\nfaults:\n  - error: {code: BACKEND_ERROR}\n"
    ok(await h.client.put(f"/_emulator/tenants/{OTHER}/scenario", json={"yaml": yaml}))
    ok(await h.client.put("/_emulator/tenants/gone/scenario", json={"name": "cancellation"}))
    ok(await h.client.delete("/_emulator/tenants/gone/scenario"))
    before = ok(await h.client.get("/_emulator/scenarios"))
    h = await restart(make_emu, h, db)
    after = ok(await h.client.get("/_emulator/scenarios"))
    assert after == before
    assert after["global"]["name"] == "rate-limited"
    assert set(after["tenants"]) == {TENANT, OTHER}
    assert ok(await h.client.get(f"/_emulator/tenants/{OTHER}/scenario"))["yaml"] == yaml
    # a tenant's reset forgets its scenario for good
    ok(await h.client.post("/_emulator/reset", json={"api_key": KEY}))
    h = await restart(make_emu, h, db)
    assert set(ok(await h.client.get("/_emulator/scenarios"))["tenants"]) == {OTHER}


async def test_the_journal_is_saved_in_batches_and_survives(
    make_emu: MakeEmu, tmp_path: Path
) -> None:
    db = str(tmp_path / "e.db")
    h = await make_emu(db=db)
    ids = [(await h.client.get("/v1/models")).headers["x-request-id"] for _ in range(3)]
    assert await h.core.store.load_journal(100) == []  # no write per request
    await h.core.durable.save()
    assert [e[6] for e in await h.core.store.load_journal(100)] == ids
    h = await restart(make_emu, h, db)
    journal = ok(await h.client.get("/_emulator/journal", params={"tenant_id": TENANT}))
    assert [e["request_id"] for e in journal["items"]] == ids
    ok(await h.client.post("/_emulator/reset", json={}))
    h = await restart(make_emu, h, db)
    assert ok(await h.client.get("/_emulator/journal", params={"path": "/v1/models"})) == {
        "items": []
    }


async def test_the_journal_keeps_its_newest_entries_in_pages_and_a_tenants_reset_hides_its_own(
    make_emu: MakeEmu, tmp_path: Path
) -> None:
    """A save writes one page however many entries it holds; pages beyond the newest `keep`
    entries go; a tenant's reset hides that tenant's saved entries and no one else's."""
    db = str(tmp_path / "e.db")
    h = await make_emu(db=db)
    store = h.core.store
    entry = (1767225600.0, "GET", "/v1/models", b"", 200)
    for n in range(5):  # five saves of three entries: 15 entries, 5 pages
        await store.append_journal(
            [(*entry, TENANT if i % 2 else OTHER, f"req_{n}_{i}") for i in range(3)], keep=7
        )
    pages = await store._all("SELECT count FROM journal_pages ORDER BY seq")
    assert [r[0] for r in pages] == [3, 3, 3]  # the newest 7 reach into the third page
    kept = [e[6] for e in await store.load_journal(7)]
    assert kept == ["req_2_2", "req_3_0", "req_3_1", "req_3_2", "req_4_0", "req_4_1", "req_4_2"]
    await store.reset_state(TENANT)
    await store.append_journal([(*entry, TENANT, "req_after")], keep=100)
    h = await restart(make_emu, h, db)
    # whole pages are kept; TENANT's req_n_1 are hidden, its entry after the reset is not
    shown = [e["request_id"] for e in h.core.journal.entries()]
    assert shown == ["req_2_0", "req_2_2", "req_3_0", "req_3_2", "req_4_0", "req_4_2", "req_after"]


async def test_a_large_save_is_written_in_pages_and_read_back_in_order(
    make_emu: MakeEmu, tmp_path: Path
) -> None:
    """A save of more than a page's entries (a second of live load) is split into pages of
    `JOURNAL_PAGE`, encoded one at a time; reading them back gives every entry in order."""
    from emulator.store.state import JOURNAL_PAGE

    h = await make_emu(db=str(tmp_path / "e.db"))
    store = h.core.store
    count = 2 * JOURNAL_PAGE + 7
    entries = [(1767225600.0 + i, "GET", "/v1/models", b"", 200, TENANT, f"req_{i}")
               for i in range(count)]  # fmt: skip
    await store.append_journal(entries, keep=10 * count)
    pages = await store._all("SELECT count, last_time FROM journal_pages ORDER BY seq")
    assert pages == [
        (JOURNAL_PAGE, entries[JOURNAL_PAGE - 1][0]),
        (JOURNAL_PAGE, entries[2 * JOURNAL_PAGE - 1][0]),
        (7, entries[-1][0]),
    ]
    assert await store.load_journal(count) == entries


async def test_a_database_with_journal_rows_keeps_them_as_its_first_page(
    make_emu: MakeEmu, tmp_path: Path
) -> None:
    """A database written before journal pages held one row per entry; opening it moves them."""
    import sqlite3

    db = str(tmp_path / "e.db")
    h = await make_emu(db=db)
    h = await restart(make_emu, h, db)  # a database of this version ...
    await h.close()
    await h.core.stop()
    with sqlite3.connect(db) as con:  # ... as the previous layout left it
        con.execute("DROP TABLE journal_pages")
        con.execute(
            "CREATE TABLE journal (seq INTEGER PRIMARY KEY, time REAL NOT NULL, method TEXT NOT"
            " NULL, path TEXT NOT NULL, query BLOB NOT NULL, status INTEGER NOT NULL, tenant_id"
            " TEXT, request_id TEXT NOT NULL)"
        )
        con.executemany(
            "INSERT INTO journal (time, method, path, query, status, tenant_id, request_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(1767225600.0 + i, "GET", "/v1/models", b"", 200, TENANT, f"req_{i}") for i in (1, 2)],
        )
    h = await make_emu(db=db)
    assert [e["request_id"] for e in h.core.journal.entries()] == ["req_1", "req_2"]
    tables = await h.core.store._all("SELECT name FROM sqlite_master WHERE name LIKE 'journal%'")
    assert sorted(r[0] for r in tables) == ["journal_forgotten", "journal_pages"]


async def test_ids_continue_after_a_restart_as_without_one(
    make_emu: MakeEmu, tmp_path: Path
) -> None:
    async def three_files(
        h: Harness, restart_after: int | None = None
    ) -> tuple[Harness, list[str]]:
        ids = []
        for n in range(3):
            files = {"file": (f"{n}.jsonl", b'{"x": 1}\n', "application/jsonl")}
            ids.append(ok(await h.client.post("/v1/files", files=files))["id"])
            if n == restart_after:
                # the newest file goes first: its id is not given again after the restart
                assert (await h.client.delete(f"/v1/files/{ids[-1]}")).status_code == 200
                h = await restart(make_emu, h, str(tmp_path / "restarted.db"))
        return h, ids

    _, straight = await three_files(await make_emu(db=str(tmp_path / "straight.db")))
    _, restarted = await three_files(await make_emu(db=str(tmp_path / "restarted.db")), 1)
    assert restarted == straight and len(set(straight)) == 3


# --- real servers --------------------------------------------------------------------------------


@pytest.mark.slow
def test_one_server_per_database_and_a_killed_one_blocks_nothing(tmp_path: Path) -> None:
    first = _start(tmp_path, "--clock", "frozen", "--clock-start", "2026-01-01T08:00:00Z")
    try:
        with httpx.Client(base_url=first.base_url, timeout=10) as client:
            ok(client.post("/_emulator/clock/advance", json={"hours": 1, "minutes": 25}))
            body = {"input_file_base64": b64([chat_line("a")])}
            batch = ok(client.post("/v1/inference/batch", headers=AUTH, json=body))
        second = subprocess.run(
            [sys.executable, "-m", "emulator", "serve", "--port", "0", "--db",
             str(tmp_path / "e.db")],
            capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=30,
        )  # fmt: skip
        assert second.returncode == 2
        assert "listening" not in second.stdout
        assert f"another emulator (pid {first.proc.pid}) is serving this database" in (
            second.stderr
        )
        assert str(tmp_path / "e.db") in second.stderr
    finally:
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
    # the killed server's lock is gone with it; the clock and the batch are where they were
    again = _start(tmp_path, "--clock", "real")
    try:
        with httpx.Client(base_url=again.base_url, timeout=10) as client:
            assert ok(client.get("/_emulator/clock")) == {
                "now": "2026-01-01T09:25:00.000Z", "mode": "frozen", "scale": 1.0,
            }  # fmt: skip
            got = ok(client.get(f"/v1/inference/batch/{batch['id']}", headers=AUTH))
            assert got["created_at"] == "2026-01-01T09:25:00.000Z"
    finally:
        again.proc.terminate()
        again.proc.wait(timeout=10)


async def test_a_stored_clock_that_overrides_the_settings_says_so(
    make_emu: MakeEmu, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = str(tmp_path / "e.db")
    h = await make_emu(db=db)
    ok(await h.client.put("/_emulator/clock", json={"mode": "scaled", "scale": 10}))
    h = await restart(make_emu, h, db)  # configured: frozen
    assert "the database's clock (scaled, scale 10.0" in caplog.text
    assert "overrides the configured frozen clock" in caplog.text
    assert ok(await h.client.get("/_emulator/clock"))["mode"] == "scaled"


async def test_a_new_database_has_large_pages_and_an_old_one_keeps_its_own(
    make_emu: MakeEmu, tmp_path: Path
) -> None:
    """Large pages make a file chunk a few pages instead of hundreds; a database made with
    another page size opens as it is (changing it would need a full rewrite)."""
    import sqlite3

    from emulator.store import PAGE_SIZE

    db = str(tmp_path / "new.db")
    h = await make_emu(db=db)
    assert (await h.core.store._all("PRAGMA page_size"))[0][0] == PAGE_SIZE == 65536
    old = str(tmp_path / "old.db")
    with sqlite3.connect(old) as con:
        con.execute("PRAGMA page_size=4096")
        con.execute("CREATE TABLE t (x)")
    h = await make_emu(db=old)
    assert (await h.core.store._all("PRAGMA page_size"))[0][0] == 4096
    upload = await h.client.post("/v1/files", files={"file": ("a.jsonl", b"{}\n")})
    assert upload.status_code == 200, upload.text


class Killed(BaseException):
    """The process dies here: nothing after it runs."""


async def test_a_crash_before_a_submit_is_stored_leaves_no_input_file(
    make_emu: MakeEmu, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A submit's inline input is stored with its batch, in one transaction: a crash just
    before leaves neither (the file used to be committed on its own, and a restart listed an
    input whose batch was never made)."""
    db = str(tmp_path / "e.db")
    h = await make_emu(db=db)

    async def die(*args: Any) -> None:
        raise Killed

    async def no_cleanup(*args: Any) -> None:  # a dead process cleans nothing up
        pass

    monkeypatch.setattr(h.core.store, "insert_batch", die)
    monkeypatch.setattr(h.core.files, "discard", no_cleanup)
    with pytest.raises(Killed):
        await h.core.batches.create_batch(TENANT, {"input_file_base64": b64([chat_line("a")])})
    monkeypatch.undo()
    h = await crash(make_emu, h, db)
    assert ok(await h.client.get("/v1/files", headers=AUTH))["items"] == []
    assert await h.core.store._all("SELECT file_seq FROM file_chunks") == []
    batch = ok(await h.client.post("/v1/inference/batch", headers=AUTH,
                                   json={"input_file_base64": b64([chat_line("b")])}))  # fmt: skip
    assert (
        ok(await h.client.get("/v1/files", headers=AUTH))["items"][0]["id"]
        == (batch["input_file_id"])
    )
