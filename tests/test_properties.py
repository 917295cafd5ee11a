"""Property tests (hypothesis) for the two readers of what clients write: the batch input's JSONL
parser and the scenario loader. Whatever they are given, they answer with their documented
outcome (rows or an `INPUT_PARSE_ERROR`'s problems; a scenario or a `ScenarioError`), never an
exception of another kind, and a good input reads back exactly as it was written.
(`Signer.verify`'s properties are in `test_signing.py`.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import yaml
from conftest import CHAT, chat_line
from hypothesis import given
from hypothesis import strategies as st

from emulator.batch.parsing import MAX_PROBLEMS, InputParser, lines_of
from emulator.scenario.model import Scenario, parse_scenario
from emulator.scenario.schema import SCHEMA, ScenarioError

# --- the JSONL parser ----------------------------------------------------------------------------


async def _chunks(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    """`data` in pieces cut at `cuts` (the store hands the parser 1 MiB chunks, cut anywhere)."""
    start = 0
    for cut in sorted(set(cuts)):
        if start < cut < len(data):
            yield data[start:cut]
            start = cut
    yield data[start:]


def _collect(data: bytes, cuts: list[int], limit: int) -> list[tuple[int, bytes | None]]:
    async def run() -> list[tuple[int, bytes | None]]:
        return [item async for item in lines_of(_chunks(data, cuts), limit)]

    return asyncio.run(run())


CONTENT = st.lists(st.sampled_from([b"a", b"bc", b"\n", b"{", b"\xff", b"\x00", b" "]), max_size=60)


@given(pieces=CONTENT, cuts=st.lists(st.integers(0, 80), max_size=8), limit=st.integers(1, 12))
def test_lines_are_the_lines_of_the_input_however_it_is_cut(
    pieces: list[bytes], cuts: list[int], limit: int
) -> None:
    data = b"".join(pieces)
    lines = data.split(b"\n")
    if lines[-1] == b"":  # a final newline ends the last line; it starts no other
        lines.pop()
    expected = [(n, line if len(line) <= limit else None) for n, line in enumerate(lines, 1)]
    assert _collect(data, cuts, limit) == expected


def _parse(data: bytes, cuts: list[int], endpoint: str | None = None) -> tuple[InputParser, list]:
    parser = InputParser(endpoint)

    async def run() -> list[Any]:
        return [row async for chunk in parser.rows(_chunks(data, cuts)) for row in chunk]

    return parser, asyncio.run(run())


#: lines with a known verdict: good ones (unique ids given later), and each fatal kind
BAD_LINES = {
    "not valid JSON": st.sampled_from([b"{", b"nope", b'{"custom_id": "x",}', b"\xff\xfe"]),
    "not a JSON object": st.sampled_from([b"[]", b"3", b'"s"', b"null"]),
    "missing or empty custom_id": st.sampled_from(
        [orjson.dumps({**chat_line("x"), "custom_id": v}) for v in ("", None, 5, ["a"])]
    ),
    "method must be POST": st.sampled_from(
        [orjson.dumps({**chat_line("x"), "method": m}) for m in ("GET", "post", None)]
    ),
    "is not a batchable route": st.sampled_from(
        [orjson.dumps({**chat_line("x"), "url": u}) for u in ("/v1/nope", "", None, CHAT + "/")]
    ),
    "body must be a JSON object": st.sampled_from(
        [orjson.dumps({**chat_line("x"), "body": v}) for v in ([], "x", None, 1)]
    ),
}
LINE = st.one_of(
    st.just("good"), *[st.tuples(st.just(kind), lines) for kind, lines in BAD_LINES.items()]
)


@given(kinds=st.lists(LINE, min_size=1, max_size=40), cuts=st.lists(st.integers(0, 5000)))
def test_the_parser_finds_exactly_the_bad_lines_and_keeps_the_good_ones_as_written(
    kinds: list[Any], cuts: list[int]
) -> None:
    lines: list[bytes] = []
    bad: list[tuple[int, str]] = []
    for number, kind in enumerate(kinds, 1):
        if kind == "good":  # a unique id per line, in a spacing of its own
            lines.append(orjson.dumps(chat_line(f"req-{number}")).replace(b":", b": ", number % 2))
        else:
            bad.append((number, kind[0]))
            # the id a bad line may carry is unique too, so only its own fault is found
            lines.append(kind[1].replace(b'"x"', f'"x{number}"'.encode()))
    parser, rows = _parse(b"\n".join(lines) + b"\n", cuts)
    found = [(p["line"], p["message"]) for p in parser.problems]
    assert [n for n, _ in found] == [n for n, _ in bad][:MAX_PROBLEMS]
    for (_, message), (_, kind) in zip(found, bad, strict=False):
        assert kind in message
    if not bad:
        assert parser.ok and parser.count == len(lines)
        assert [row[4] for row in rows] == lines  # each line's own bytes, in order
        assert [row[2] for row in rows] == [f"req-{n}" for n in range(1, len(lines) + 1)]
    else:
        assert not parser.ok and parser.error()["code"] == "INPUT_PARSE_ERROR"


@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=6))
def test_any_bytes_are_rows_or_problems(data: bytes, cuts: list[int]) -> None:
    for endpoint in (None, "/v1/chat/completions"):
        parser, rows = _parse(data, cuts, endpoint)
        assert len(rows) == (parser.count if parser.ok else len(rows))
        for problem in parser.problems:
            assert problem["line"] >= 1 and problem["message"]


# --- the scenario loader -------------------------------------------------------------------------

#: values that fit some checks and break others: durations, codes, globs, regexes, edge numbers
SCALAR = st.one_of(
    st.integers(-3, 5),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
    st.sampled_from(
        ["5s", "250ms", "1h", "2d", "-1s", "1e400", "1e400s", ".nan", "BACKEND_ERROR",
         "RATE_LIMITED", "NOPE", "*", "/v1/*", "[", "(?P<", "a{99999}", "fixed", "uniform",
         "lognormal", "key"]
    ),
)  # fmt: skip
JUNK = st.one_of(SCALAR, st.lists(SCALAR, max_size=2), st.dictionaries(st.text(max_size=4), SCALAR))


def _document(spec: Any) -> st.SearchStrategy[Any]:
    """Documents shaped by the scenario language's own table (so they reach deep into it), with
    values that may or may not fit, and sometimes junk where a part should be."""
    if isinstance(spec, dict):
        shaped = st.fixed_dictionaries({}, optional={k: _document(v) for k, v in spec.items()})
        return st.one_of(shaped, shaped, shaped, JUNK)
    if isinstance(spec, tuple) and spec[0] == "list":
        return st.one_of(st.lists(_document(spec[1]), max_size=3), JUNK)
    if isinstance(spec, tuple) and spec[0] == "either":
        return st.one_of(*[_document(s) for s in spec[1:]])
    return SCALAR


@given(doc=_document(SCHEMA))
def test_any_document_is_a_scenario_or_a_scenario_error(doc: Any) -> None:
    text = yaml.safe_dump(doc)
    try:
        scenario = parse_scenario(text, "<property>")
    except ScenarioError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
    else:
        assert isinstance(scenario, Scenario)


@given(text=st.text(max_size=200))
def test_any_text_is_a_scenario_or_a_scenario_error(text: str) -> None:
    try:
        parse_scenario(text, "<property>")
    except ScenarioError:
        pass
