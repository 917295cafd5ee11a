"""A chat answer's choices: the (content, tool_calls, finish_reason) tuple, and tool calls.

Separate from the engine because the choice tuple is what its whole answers, their streamed
chunks (`streaming`) and their token counts (`tokens`) share, including for an upstream's answer
restreamed or counted; and because picking the function a choice calls and faking its arguments
is its own concept beside drawing text.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import orjson

from emulator.inference.jsonfake import fake_value

__all__ = ["Choice", "dumps", "message", "tool_choice", "tool_to_call"]

# (content, tool_calls, finish_reason): a plain tuple, as a NamedTuple's __new__ runs in Python.
Choice = tuple[str | None, list[dict[str, Any]] | None, str]


def dumps(value: Any) -> str:
    """Compact JSON of a choice's JSON content or tool-call arguments."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def message(choice: Choice) -> dict[str, Any]:
    """The assistant message of a whole (not streamed) answer's choice."""
    content, calls, _ = choice
    if calls:
        return {"role": "assistant", "content": content, "tool_calls": calls}
    return {"role": "assistant", "content": content}


def tool_to_call(body: dict[str, Any], pick: int) -> dict[str, Any] | None:
    """The function spec a choice calls, or None: tools present and tool_choice not "none"."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    functions: list[dict[str, Any]] = [t["function"] for t in tools]
    if isinstance(choice, dict):
        wanted = choice["function"]["name"]
        return next(f for f in functions if f["name"] == wanted)
    return functions[pick % len(functions)]


def tool_choice(function: dict[str, Any], digest: bytes, index: int, name: bytes) -> Choice:
    """A choice calling `function` with arguments drawn from `digest`; its id from `name`."""
    rng = random.Random(digest + b"tool" + bytes((index,)))
    arguments = fake_value(function.get("parameters", {"type": "object"}), rng)
    call = {
        "id": "call_" + hashlib.sha256(name + b"call" + bytes((index,))).hexdigest()[:24],
        "type": "function",
        "function": {"name": function["name"], "arguments": dumps(arguments)},
    }
    return None, [call], "tool_calls"
