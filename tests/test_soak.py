"""A short run of `benchmarks/soak.py` on a real `serve` process: ten batches processing on the
real clock while 16 clients poll their status, live chats run and a second tenant's batches send
webhook events to a loopback receiver. Nothing may fail: no error answer, no exception, no
"database is locked" and no traceback in the server's log; afterwards every batch ends, the large
ones' results are complete and in order, and every event arrived. Latency and memory are the
script's figures (README), never asserted here."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.soak import Soak, run_soak

pytestmark = pytest.mark.slow


def test_a_short_soak_has_no_errors_and_no_locked_database(tmp_path: Path) -> None:
    soak = run_soak(Soak(seconds=8, batches=10, lines=500, pollers=16, chats=2), tmp_path)
    figures = soak.figures()
    assert soak.errors == [], soak.errors[:10]
    assert soak.problems == [], soak.problems[:10]
    assert figures["database_locked"] == 0, soak.log[-3000:]
    assert figures["tracebacks"] == 0, soak.log[-3000:]
    # the load really ran: every kind of traffic was served
    assert figures["status_requests"] > 0 and figures["chat_requests"] > 0
    assert len(soak.small_batches) >= 4
    assert figures["webhook_posts"] >= 10 + len(soak.small_batches)
    assert len(soak.rss_mb) >= 4
