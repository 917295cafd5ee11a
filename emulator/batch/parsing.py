"""Parsing a batch's JSONL input: fatal problems (which fail the batch) with 1-based line numbers.

The input is read once, as a stream: each good line becomes a stored request row (its raw bytes,
not a re-encoding), in chunks, so an input of any size is never held in memory. Per-request
problems (an unknown model, a missing field) are not found here: they become error records when
the request runs, as on the real service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from emulator.endpoints import BATCHABLE, OPENAI_PATHS, route_of
from emulator.errors import InputParseError
from emulator.records import RequestRow

MAX_PROBLEMS = 100
#: the longest input line read (a request with a large image or document is a few MiB); a longer
#: one fails the batch with its line number, and is skipped as it arrives instead of held
MAX_LINE_BYTES = 8 * 1024 * 1024
ROWS_PER_CHUNK = 2000


class InputParser:
    """Checks lines one by one; remembers the custom_ids seen and the first problems found."""

    def __init__(self, endpoint: str | None = None) -> None:
        # A batch made on the OpenAI surface names its endpoint: each line's url must name that
        # same route, by its OpenAI (or its native) path.
        self.endpoint = route_of(endpoint)
        self.count = 0
        self.problems: list[dict[str, Any]] = []
        self._seen: set[str] = set()

    @property
    def ok(self) -> bool:
        return not self.problems and self.count > 0

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

    async def rows(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[list[RequestRow]]:
        """The request rows of the input, a chunk at a time; after the first problem no more
        rows come (the batch will fail), but the rest is still read for its problems."""
        rows: list[RequestRow] = []
        async for number, raw in lines_of(chunks):
            if raw is None:
                self._problem(number, f"line is over {MAX_LINE_BYTES} bytes")
                continue
            if not raw.strip():
                continue
            row = self.feed(number, raw)
            if row is None or self.problems:
                continue
            rows.append(row)
            if len(rows) >= ROWS_PER_CHUNK:
                yield rows
                rows = []
        if rows and not self.problems:
            yield rows

    def feed(self, number: int, raw: bytes) -> RequestRow | None:
        """The row for input line `number`, or None (and a problem noted) if it is bad."""
        found = self._check(raw)
        if isinstance(found, str):
            self._problem(number, found)
            return None
        custom_id, url = found
        self.count += 1
        return (self.count - 1, number, custom_id, url, raw)

    def _problem(self, number: int, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append({"line": number, "message": message})

    def _check(self, raw: bytes) -> tuple[str, str] | str:
        """(custom_id, the native route) of a good line, or what is wrong with it."""
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return "not valid JSON"
        if not isinstance(line, dict):
            return "not a JSON object"
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            return "missing or empty custom_id"
        if custom_id in self._seen:
            return f"duplicate custom_id '{custom_id}'"
        self._seen.add(custom_id)
        if line.get("method") != "POST":
            return f"method must be POST, got {line.get('method')!r}"
        url = line.get("url")
        # a native batch takes the native routes; an OpenAI batch its endpoint's, by either path
        endpoint = self.endpoint
        route = route_of(url) if endpoint is not None else url if url in BATCHABLE else None
        if route is None:
            known = ", ".join(sorted(BATCHABLE if endpoint is None else OPENAI_PATHS))
            return f"url {url!r} is not a batchable route ({known})"
        if endpoint is not None and route != endpoint:
            return f"url {url!r} does not match the batch's endpoint"
        if not isinstance(line.get("body"), dict):
            return "body must be a JSON object"
        return custom_id, route


async def lines_of(
    chunks: AsyncIterator[bytes], limit: int = MAX_LINE_BYTES
) -> AsyncIterator[tuple[int, bytes | None]]:
    """(1-based line number, line) for every line of a chunked byte stream; a line over `limit`
    bytes is None, and what is past the limit is skipped as it arrives, never held."""
    carry: list[bytes] = []  # the start of a line a chunk ended in (a list: no quadratic joins)
    carried = 0
    skipping = False  # inside a line already over the limit
    number = 0
    async for chunk in chunks:
        parts = chunk.split(b"\n")
        tail = parts.pop()
        if parts:
            number += 1
            first = parts[0]
            if skipping:
                yield number, None
            elif carried + len(first) > limit:
                yield number, None
            else:
                yield number, b"".join((*carry, first)) if carry else first
            carry, carried, skipping = [], 0, False
            for part in parts[1:]:
                number += 1
                yield number, part if len(part) <= limit else None
        if not skipping and tail:
            if carried + len(tail) > limit:
                carry, carried, skipping = [], 0, True
            else:
                carry.append(tail)
                carried += len(tail)
    if skipping:
        yield number + 1, None
    elif carried:
        yield number + 1, b"".join(carry)
