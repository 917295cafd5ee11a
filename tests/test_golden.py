"""The engine's answers are pinned: refactors and speed-ups must give byte-identical output.

`tests/golden/engine.jsonl` holds the answers of seed 7 for the bodies in `golden_bodies.py`.
"""

from __future__ import annotations

from emulator.inference.catalogue import load_catalogue
from emulator.inference.engine import Engine
from tests.golden_bodies import GOLDEN, SEED, answers


def test_the_engine_gives_the_pinned_answers() -> None:
    expected = GOLDEN.read_bytes().splitlines(keepends=True)
    got = answers(Engine(SEED, load_catalogue(None)))
    assert len(got) == len(expected)
    for line, (want, have) in enumerate(zip(expected, got, strict=True), 1):
        assert have == want, f"answer {line} of {GOLDEN.name} changed"
