"""Token estimates, and the cuts `max_tokens` and `stop` make to an answer's text.

Separate from the engine because one estimate counts everywhere: the engine's answers, their
streamed usage chunk, and the usage of an upstream's answer that gave none
(`Engine.estimated_usage`); it is plain arithmetic on text, with no seed and no state.

Token counts are estimates, documented and honest rather than a real tokenizer's:

* `estimate_tokens(text)` is ceil(len(text) / 4) characters-per-token, 0 for "".
* Chat prompt tokens: 3 + sum over messages of (4 + tokens of the content), where string content
  counts `estimate_tokens`, each text part of a list counts `estimate_tokens` of its text, each
  image part counts 85, and null content counts 0.
* Completion tokens: `estimate_tokens` of each choice's content; for a tool call, of its function
  name plus its arguments string. Summed over the `n` choices.
* Generate, embed and images count `estimate_tokens` of the prompt (of each input, for embed).
"""

from __future__ import annotations

from typing import Any

from emulator.inference.choices import Choice

__all__ = [
    "choice_tokens",
    "cut_at_stop",
    "cut_to",
    "estimate_tokens",
    "prompt_tokens",
    "token_usage",
]

_IMAGE_PARTS = frozenset({"image_url", "image", "input_image"})
_IMAGE_PART_TOKENS = 85
_MESSAGE_TOKENS = 4
_REPLY_TOKENS = 3


def estimate_tokens(text: str) -> int:
    """The emulator's token estimate: ceil(len(text) / 4) characters per token; 0 for ""."""
    return (len(text) + 3) // 4


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Chat prompt tokens by the documented formula (see the module docstring)."""
    total = _REPLY_TOKENS + _MESSAGE_TOKENS * len(messages)
    for message in messages:
        content = message.get("content")
        # String content is the common case: counted inline, without a call per message.
        total += (len(content) + 3) // 4 if isinstance(content, str) else _content_tokens(content)
    return total


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return estimate_tokens(content)
    if not isinstance(content, list):
        return 0
    total = 0
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _IMAGE_PARTS:
            total += _IMAGE_PART_TOKENS
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            total += estimate_tokens(part["text"])
    return total


def choice_tokens(choice: Choice) -> int:
    """Completion tokens of one chat choice: its content, or its tool calls."""
    content, calls, _ = choice
    tokens = estimate_tokens(content) if content else 0
    for call in calls or ():
        tokens += estimate_tokens(call["function"]["name"] + call["function"]["arguments"])
    return tokens


def token_usage(prompt: int, completion: int) -> dict[str, int]:
    """The `usage` object of a chat or generate answer."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def cut_to(text: str, max_tokens: int) -> str:
    """`text` cut to at most `max_tokens` estimated tokens, at a word boundary when there is one."""
    head = text[: 4 * max_tokens]
    space = head.rfind(" ")
    trimmed = head[:space].rstrip() if space > 0 else ""
    return trimmed or head


def cut_at_stop(text: str, stops: list[str]) -> str:
    """`text` cut before the first occurrence of any of `stops`."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return text[: min(hits)] if hits else text
