"""An upstream's answer in the emulator's terms.

A 200 becomes the emulator's own shape for the route (the fields its fake answers have, nothing
the upstream added), with the emulator's id, `created` and model name, so everything around the
content stays deterministic. Its usage is kept when it gives one; otherwise the caller estimates
it as for fake answers. Any other status, or a body that is not the route's shape, becomes the
error that request's record (or live answer) carries, with ScaiGrid's codes for a backend's
failures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulator.endpoints import CHAT, EMBED, GENERATE
from emulator.errors import (
    BackendError,
    BackendRateLimited,
    BackendTimeout,
    EmulatorError,
    UpstreamShapeMismatch,
)
from emulator.upstream.client import Reply

#: how much of an upstream's error message an error record repeats
_MESSAGE_CHARS = 300


def translate(
    route: str, reply: Reply, *, model: str, response_id: str | None, created: int
) -> dict[str, Any]:
    if reply.status != 200:
        raise error_of(reply)
    try:
        answer = _SHAPES[route](reply.body, model, response_id, created)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise UpstreamShapeMismatch(
            f"The upstream's answer is not a {route} answer ({type(exc).__name__}: {exc})."
        ) from exc
    usage = _usage(reply.body.get("usage"), completion=route != EMBED)
    if usage is not None:
        answer["usage"] = usage
    return answer


def error_of(reply: Reply) -> EmulatorError:
    """The error an upstream's non-200 answer becomes."""
    said = _message(reply.body)
    message = f"The upstream answered {reply.status}" + (f": {said}" if said else ".")
    if reply.status == 429:
        return BackendRateLimited(message, retry_after=reply.retry_after)
    if reply.status in (408, 504):
        return BackendTimeout(message)
    return BackendError(message)


def _message(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    said = error.get("message") if isinstance(error, dict) else error
    return said[:_MESSAGE_CHARS] if isinstance(said, str) else ""


def _chat(body: Any, model: str, response_id: str | None, created: int) -> dict[str, Any]:
    choices = []
    for i, choice in enumerate(_list(body["choices"])):
        got = choice["message"]
        message: dict[str, Any] = {"role": "assistant", "content": _text(got.get("content"))}
        if got.get("tool_calls"):
            message["tool_calls"] = _calls(got["tool_calls"])
        choices.append({"index": i, "message": message, "finish_reason": _finish(choice)})
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
    }


def _generate(body: Any, model: str, response_id: str | None, created: int) -> dict[str, Any]:
    choices = [
        {"index": i, "text": _text(choice["text"]) or "", "finish_reason": _finish(choice)}
        for i, choice in enumerate(_list(body["choices"]))
    ]
    return {
        "id": response_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
    }


def _embed(body: Any, model: str, response_id: str | None, created: int) -> dict[str, Any]:
    data = []
    for i, item in enumerate(_list(body["data"])):
        vector = item["embedding"]
        if not isinstance(vector, (list, str)):
            raise TypeError("an embedding is a list of numbers or a base64 string")
        data.append({"object": "embedding", "index": i, "embedding": vector})
    return {"object": "list", "data": data, "model": model}


_SHAPES: dict[str, Callable[[Any, str, str | None, int], dict[str, Any]]] = {
    CHAT: _chat,
    GENERATE: _generate,
    EMBED: _embed,
}


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ValueError("expected a non-empty list")
    return value


def _calls(value: Any) -> list[Any]:
    """Tool calls as OpenAI gives them: each a function's name and its arguments as text."""
    for call in _list(value):
        function = call["function"]
        if not (isinstance(function["name"], str) and isinstance(function["arguments"], str)):
            raise TypeError("a tool call's name and arguments are text")
    return list(value)


def _text(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError("content is not text")
    return value


def _finish(choice: dict[str, Any]) -> str:
    reason = choice.get("finish_reason")
    return reason if isinstance(reason, str) else "stop"


def _usage(usage: Any, *, completion: bool) -> dict[str, int] | None:
    """The upstream's usage in the emulator's shape, or None if it gave none (or half of one)."""
    if not isinstance(usage, dict):
        return None
    prompt, done = usage.get("prompt_tokens", -1), usage.get("completion_tokens", 0)
    if not (_count(prompt) and (_count(done) or not completion)):
        return None
    prompt, done = int(prompt), int(done) if completion else 0
    if not completion:
        return {"prompt_tokens": prompt, "total_tokens": prompt}
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
