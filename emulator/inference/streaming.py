"""A chat answer as SSE chunk objects: each choice's deltas, then the usage if asked.

Separate from the engine because streaming is a view of an answer already made, not a way of
making one: the engine's own answers and an upstream's whole answer (`chunks_of`) stream the
same way, and `stream` / `stream_options` never change the text (see the engine's docstring).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from emulator.inference.choices import Choice

__all__ = ["chunks", "chunks_of"]

_STREAM_WORDS = 3  # words per streamed content delta
_PIECE_RE = re.compile(r"(?<=\s)(?=\S)")


def chunks_of(answer: dict[str, Any], body: dict[str, Any]) -> list[dict[str, Any]]:
    """The SSE chunks of a whole chat answer from elsewhere (an upstream), cut as the
    engine cuts its own."""
    head = {
        "id": answer["id"],
        "object": "chat.completion.chunk",
        "created": answer["created"],
        "model": answer["model"],
    }
    choices: list[Choice] = [
        (c["message"]["content"], c["message"].get("tool_calls"), c["finish_reason"])
        for c in answer["choices"]
    ]
    return chunks(head, choices, body, answer["usage"])


def chunks(
    head: dict[str, Any], choices: list[Choice], body: dict[str, Any], usage: dict[str, int]
) -> list[dict[str, Any]]:
    """A chat answer's SSE chunks: each choice's deltas, then its usage if the body asks."""
    out = []
    for i, choice in enumerate(choices):
        for delta, finish in _deltas(choice):
            chunk = {"index": i, "delta": delta, "finish_reason": finish}
            out.append({**head, "choices": [chunk]})
    if (body.get("stream_options") or {}).get("include_usage") is True:
        out.append({**head, "choices": [], "usage": usage})
    return out


def _deltas(choice: Choice) -> Iterator[tuple[dict[str, Any], str | None]]:
    """(delta, finish_reason) pairs of one streamed choice."""
    content, calls, finish = choice
    if calls:
        yield {"role": "assistant", "content": None}, None
        yield {"tool_calls": [{"index": j, **c} for j, c in enumerate(calls)]}, None
    else:
        yield {"role": "assistant", "content": ""}, None
        for piece in _stream_pieces(content or ""):
            yield {"content": piece}, None
    yield {}, finish


def _stream_pieces(text: str) -> Iterator[str]:
    """`text` in deltas of a few words; they concatenate back to exactly `text`."""
    words = _PIECE_RE.split(text)
    for i in range(0, len(words), _STREAM_WORDS):
        yield "".join(words[i : i + _STREAM_WORDS])
