"""Crash safety: `benchmarks/crash_trials.py` with one trial per moment and small inputs. Each
trial SIGKILLs a real `serve` process (mid-upload, mid-submit, mid-processing, in the last results
chunk, in a webhook's retry backoff, mid-cancel), restarts it on the same database, drives it to
the end on the emulator clock and checks that nothing accepted was lost or half-stored. The full
run (20 trials, larger inputs) is the script's; its figure is in the README."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from benchmarks.crash_checks import check_database
from benchmarks.crash_trials import MOMENTS, Sizes, plan, run_trials

pytestmark = pytest.mark.slow

SIZES = Sizes(lines=1_000, upload_lines=2_000, inline_lines=1_000, small_lines=50)


def test_a_kill_at_each_moment_loses_nothing_accepted(tmp_path: Path) -> None:
    results = run_trials(len(MOMENTS), seed=7, sizes=SIZES, workdir=tmp_path)
    assert sorted(r.moment for r in results) == sorted(MOMENTS)
    for r in results:
        assert r.ok, (r.moment, r.landed, r.problems)
        assert r.landed.startswith(r.moment), r.landed
        assert r.found, r  # the restarted server answered and was checked
    # what the checks read is really there: tampering with a checked database is found
    db = tmp_path / "trial-001" / "emulator.db"
    assert check_database(db) == []
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM results WHERE rowid = (SELECT min(rowid) FROM results)")
    [problem] = check_database(db)
    assert "stored counters" in problem


def test_the_moments_come_in_turn_and_follow_the_seed() -> None:
    first = plan(12, seed=3)
    assert first == plan(12, seed=3)
    assert first != plan(12, seed=4)
    for start in (0, 6):
        assert sorted(m for _, m in first[start : start + 6]) == sorted(MOMENTS)
