"""Parsing a batch's JSONL input: fatal problems (which fail the batch) with 1-based line numbers.

Per-request problems (an unknown model, a missing field) are not found here: they become error
records when the request runs, as on the real service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from emulator.endpoints import BATCHABLE, OPENAI_PATHS, route_of
from emulator.errors import InputParseError
from emulator.records import RequestRecord

MAX_PROBLEMS = 100


@dataclass
class ParsedInput:
    requests: list[RequestRecord] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.requests)

    def error(self) -> dict[str, Any]:
        """The batch's `error` object for a fatal parse failure."""
        problems = self.problems or [{"message": "the input file has no requests"}]
        first = problems[0]
        where = f"line {first['line']}: " if "line" in first else ""
        return {
            "code": InputParseError.code,
            "message": f"Input file could not be parsed ({where}{first['message']}).",
            "details": problems,
        }


async def lines_of(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    """(1-based line number, line) for every line of a chunked byte stream."""
    carry = b""
    number = 0
    async for chunk in chunks:
        parts = (carry + chunk).split(b"\n")
        carry = parts.pop()
        for part in parts:
            number += 1
            yield number, part
    if carry:
        yield number + 1, carry


async def parse_input(chunks: AsyncIterator[bytes], endpoint: str | None = None) -> ParsedInput:
    """Every request of the input. A batch made on the OpenAI surface names its `endpoint`, and
    then each line's url must name that same route, by its OpenAI (or its native) path."""
    out = ParsedInput()
    seen: set[str] = set()
    async for number, raw in lines_of(chunks):
        if not raw.strip():
            continue
        problem = _check_line(number, raw, seen, out.requests, route_of(endpoint))
        if problem and len(out.problems) < MAX_PROBLEMS:
            out.problems.append({"line": number, "message": problem})
    return out


def _check_line(
    number: int,
    raw: bytes,
    seen: set[str],
    requests: list[RequestRecord],
    endpoint: str | None = None,
) -> str | None:
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "not valid JSON"
    if not isinstance(line, dict):
        return "not a JSON object"
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "missing or empty custom_id"
    if custom_id in seen:
        return f"duplicate custom_id '{custom_id}'"
    seen.add(custom_id)
    if line.get("method") != "POST":
        return f"method must be POST, got {line.get('method')!r}"
    url = line.get("url")
    # a native batch takes the native routes; an OpenAI batch its endpoint's, by either path
    route = route_of(url) if endpoint is not None else url if url in BATCHABLE else None
    if route is None:
        known = ", ".join(sorted(BATCHABLE if endpoint is None else OPENAI_PATHS))
        return f"url {url!r} is not a batchable route ({known})"
    if endpoint is not None and route != endpoint:
        return f"url {url!r} does not match the batch's endpoint"
    if not isinstance(line.get("body"), dict):
        return "body must be a JSON object"
    requests.append(RequestRecord(len(requests), number, custom_id, route, line["body"]))
    return None
