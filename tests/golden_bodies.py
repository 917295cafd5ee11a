"""The request bodies whose engine answers are pinned in `tests/golden/engine.jsonl`.

Run `python -m tests.golden_bodies` to rewrite the file after a deliberate change of fake content
(and say so in the README): the golden test then pins the new answers.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson

GOLDEN = Path(__file__).parent / "golden" / "engine.jsonl"
SEED = 7
CREATED = 1_700_000_000

CHAT_MODELS = ("scailabs/poolnoodle-omni", "openai/gpt-4o")
EMBED_MODELS = ("openai/text-embedding-3-small", "mistral/mistral-embed")
PROMPTS = ("Summarise the meeting notes.", "Write a haiku about ducks.", "¿Qué hora es?", "")
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city"],
        },
    },
}
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer", "minimum": 0, "maximum": 120},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            },
            "required": ["name", "age"],
            "additionalProperties": False,
        },
    },
}


def cases() -> list[tuple[str, dict[str, Any]]]:
    """(route, body) pairs covering each route and each option that shapes an answer."""
    out: list[tuple[str, dict[str, Any]]] = []
    for model, prompt in itertools.product(CHAT_MODELS, PROMPTS):
        messages = [{"role": "user", "content": prompt or "Hi"}]
        out.append(("/v1/inference/chat", {"model": model, "messages": messages}))
        out.append(("/v1/inference/chat", {"model": model, "messages": messages, "n": 2}))
        out.append(("/v1/inference/chat", {"model": model, "messages": messages, "max_tokens": 5}))
        out.append(
            ("/v1/inference/chat", {"model": model, "messages": messages, "stop": ["e", "."]})
        )
        out.append(
            ("/v1/inference/chat", {"model": model, "messages": messages, "tools": [WEATHER]})
        )
        out.append(
            (
                "/v1/inference/chat",
                {"model": model, "messages": messages, "response_format": SCHEMA},
            )
        )
        out.append(
            (
                "/v1/inference/chat",
                {"model": model, "messages": messages, "response_format": {"type": "json_object"}},
            )
        )
        out.append(("/v1/inference/generate", {"model": model, "prompt": prompt or "Go"}))
        out.append(
            ("/v1/inference/generate", {"model": model, "prompt": prompt or "Go", "max_tokens": 7})
        )
    for model, prompt in itertools.product(EMBED_MODELS, PROMPTS[:3]):
        out.append(("/v1/inference/embed", {"model": model, "input": prompt}))
        out.append(
            ("/v1/inference/embed", {"model": model, "input": [prompt, "x y"], "dimensions": 8})
        )
        out.append(
            (
                "/v1/inference/embed",
                {"model": model, "input": prompt, "dimensions": 64, "encoding_format": "base64"},
            )
        )
    for n in (1, 2):
        body = {
            "model": "openai/dall-e-3",
            "prompt": "a red fox",
            "n": 1,
            "response_format": "b64_json",
        }
        out.append(("/v1/inference/images/generate", {**body, "n": n} if n > 1 else body))
    return out


def answers(engine: Any) -> list[bytes]:
    """One JSON line per case: the route, the body and the engine's answer (or its error)."""
    lines = []
    for route, body in cases():
        try:
            answer: Any = engine.infer(route, body, created=CREATED)
        except Exception as exc:  # an error is an answer too, pinned by its code
            answer = {"error": getattr(exc, "code", type(exc).__name__)}
        lines.append(orjson.dumps({"route": route, "body": body, "answer": answer}) + b"\n")
    stream_body = {"model": CHAT_MODELS[0], "messages": [{"role": "user", "content": "Stream"}]}
    chunks = engine.chat_stream(stream_body, created=CREATED)
    lines.append(orjson.dumps({"route": "stream", "body": stream_body, "answer": chunks}) + b"\n")
    return lines


if __name__ == "__main__":
    from emulator.inference.catalogue import load_catalogue
    from emulator.inference.engine import Engine

    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_bytes(b"".join(answers(Engine(SEED, load_catalogue(None)))))
    print(f"wrote {GOLDEN} ({len(cases()) + 1} answers)")
