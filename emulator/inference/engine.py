"""Deterministic fake inference: the four inference routes as pure functions of the request.

No HTTP and no I/O here: live routes and the batch worker both call `Engine`, so a batch line and
the same request sent live get the same answer.

Determinism: a response is a pure function of (engine seed, model slug, `canonical(body)`) plus the
`created` timestamp passed in. Everything random is drawn from sha256 of those three, so the same
request twice serialises to the same bytes, and `stream` / `stream_options` do not change the text.

Token counts are estimates, documented and honest rather than a real tokenizer's:

* `estimate_tokens(text)` is ceil(len(text) / 4) characters-per-token, 0 for "".
* Chat prompt tokens: 3 + sum over messages of (4 + tokens of the content), where string content
  counts `estimate_tokens`, each text part of a list counts `estimate_tokens` of its text, each
  image part counts 85, and null content counts 0.
* Completion tokens: `estimate_tokens` of each choice's content; for a tool call, of its function
  name plus its arguments string. Summed over the `n` choices.
* Generate, embed and images count `estimate_tokens` of the prompt (of each input, for embed).

Embeddings depend on the input text alone (with the seed and model), not on the rest of the body,
so equal texts get equal vectors in any request (see `emulator.inference.embeddings`).

Cuts: the text is drawn without looking at `max_tokens`, `max_completion_tokens` and `stop`, so
those only cut the answer the same request would get without them (the response id still
differs). `max_tokens` (or its newer alias `max_completion_tokens`) cuts text to at most
4 * max_tokens characters at a word boundary, finish_reason "length"; a `stop` string cuts before
its first occurrence, finish_reason "stop". JSON content (`response_format` json_object or
json_schema) is never cut, so it always parses: finish_reason "stop", completion tokens the
estimate as usual. `canned` text (scenario responses) replaces generated content, tool calls and
JSON formats, and is cut like generated text.

Request validation lives in `checks`, embedding maths in `embeddings` and the PNGs behind generated
images in `images` (all in this package); `png_for` is re-exported here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import orjson

from emulator.endpoints import CHAT, EMBED, ENDPOINTS, GENERATE, IMAGES
from emulator.errors import RouteNotFound, ValidationError
from emulator.inference.catalogue import Catalogue
from emulator.inference.checks import check_request
from emulator.inference.corpus import corpus
from emulator.inference.embeddings import Embedder, float32_base64
from emulator.inference.images import image_name, png_for, size_for
from emulator.inference.jsonfake import fake_value
from emulator.records import Model

__all__ = ["Engine", "canonical", "estimate_tokens", "png_for", "prompt_tokens"]

_IMAGE_PARTS = frozenset({"image_url", "image", "input_image"})
_IMAGE_PART_TOKENS = 85
_MESSAGE_TOKENS = 4
_REPLY_TOKENS = 3
_ANSWER_TOKENS = (12, 80)  # natural answer length, before max_tokens
_STREAM_WORDS = 3  # words per streamed content delta
_VOLATILE = ("stream", "stream_options")  # transport options, not part of the request's identity
_CUTS = frozenset({"max_tokens", "max_completion_tokens", "stop"})  # options that only cut text
_JSON_FORMATS = ("json_object", "json_schema")
#: what a response id starts with, by route (embeddings and images carry no id)
_ID_PREFIXES = {CHAT: "chatcmpl-", GENERATE: "cmpl-"}
_INDEX_BYTES = tuple(bytes((i,)) for i in range(256))  # bytes((i,)) without building a tuple
_REVISES_PROMPT = frozenset({"openai/dall-e-3"})  # models that answer with a revised_prompt
_PIECE_RE = re.compile(r"(?<=\s)(?=\S)")


def estimate_tokens(text: str) -> int:
    """The emulator's token estimate: ceil(len(text) / 4) characters per token; 0 for ""."""
    return (len(text) + 3) // 4


def canonical(body: dict[str, Any]) -> bytes:
    """The request's identity for determinism: compact JSON with sorted keys, UTF-8 unescaped
    (like `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`), without the
    transport fields `stream` and `stream_options`."""
    if "stream" in body or "stream_options" in body:
        body = {k: v for k, v in body.items() if k not in _VOLATILE}
    try:
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # integers beyond 64 bits: the standard library copes
        pass
    try:
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except RecursionError:  # nested deeper than orjson writes (254) and Python's stack allows
        raise ValidationError(
            "Request body is nested too deeply.",
            details=[{"field": "body", "message": "objects and arrays nested too deeply"}],
        ) from None


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- text helpers ---------------------------------------------------------------------------------


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


def _cut_to(text: str, max_tokens: int) -> str:
    """`text` cut to at most `max_tokens` estimated tokens, at a word boundary when there is one."""
    head = text[: 4 * max_tokens]
    space = head.rfind(" ")
    trimmed = head[:space].rstrip() if space > 0 else ""
    return trimmed or head


def _cut_at_stop(text: str, stops: list[str]) -> str:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return text[: min(hits)] if hits else text


def _stream_pieces(text: str) -> Iterator[str]:
    """`text` in deltas of a few words; they concatenate back to exactly `text`."""
    words = _PIECE_RE.split(text)
    for i in range(0, len(words), _STREAM_WORDS):
        yield "".join(words[i : i + _STREAM_WORDS])


class Links(Protocol):
    """Mints the URL an image is served at (`emulator.inference.images.ImageLinks`), from the
    image's name (`emulator.inference.images.image_name`: its digest and size)."""

    def url(self, name: str, base_url: str | None) -> str: ...


# (content, tool_calls, finish_reason): a plain tuple, as a NamedTuple's __new__ runs in Python.
_Choice = tuple[str | None, list[dict[str, Any]] | None, str]


# --- the engine -----------------------------------------------------------------------------------


class Engine:
    """Answers inference requests for one seed and catalogue; see the module docstring."""

    def __init__(self, seed: int, catalogue: Catalogue, links: Links | None = None) -> None:
        self.catalogue = catalogue
        self.links = links
        self.reseed(seed)
        self._routes: dict[str, Callable[..., dict[str, Any]]] = {
            CHAT: self.chat,
            GENERATE: self.generate,
            EMBED: self.embed,
            IMAGES: self.images,
        }

    def reseed(self, seed: int) -> None:
        """Answer for another seed from now on: everything derived from the seed is made anew."""
        self.seed = seed
        self._prefix = f"{seed}\x00".encode()
        self._text: tuple[list[str], tuple[int, ...]] | None = None  # made on first use
        # What every digest of a model starts with, made once (_digest copes with later models).
        self._slug_prefixes = {
            m.slug: self._prefix + m.slug.encode() + b"\x00" for m in self.catalogue.models
        }
        self._embedder = Embedder(self._prefix)

    def _make_text(self) -> tuple[list[str], tuple[int, ...]]:
        """The corpus answers are assembled from, and each sentence's length plus the space
        that joins it to the next (summed in `_answer`); made on first use, not at start."""
        sentences = corpus(self.seed)
        self._text = sentences, tuple(len(s) + 1 for s in sentences)
        return self._text

    # ---- public API ----

    def infer(
        self,
        route: str,
        body: Any,
        *,
        created: int,
        canned: str | None = None,
        base_url: str | None = None,
        identity: str | None = None,
    ) -> dict[str, Any]:
        """The response data object for `route`; validates first. Image links point at
        `base_url` (where the client reached us) when given. `identity` names this response
        among all others (`response_id`); without one, a response is named after its body."""
        handler = self._routes.get(route)
        if handler is None:
            raise RouteNotFound(f"No inference route {route}.")
        if route == IMAGES:
            return self.images(body, created=created, base_url=base_url)
        return handler(body, created=created, canned=canned, identity=identity)

    def validate(self, route: str, body: Any) -> Model:
        """Check `body` for `route`; the model it names, or ValidationError / ModelNotFound."""
        return check_request(route, body, self.catalogue)

    def response_id(self, route: str, identity: str) -> str:
        """The id of the response `identity` names (a live call, a batch line): unique per
        response, a pure function of the seed and the identity, whatever the body."""
        return _ID_PREFIXES[route] + self._named(identity).hex()[:24]

    def chat(
        self, body: Any, *, created: int, canned: str | None = None, identity: str | None = None
    ) -> dict[str, Any]:
        model = check_request(CHAT, body, self.catalogue)
        digest, content = self._digests(model, body, identity)
        items = []
        completion = 0
        name = digest if identity is not None else content  # what tool-call ids derive from
        for i, choice in enumerate(self._chat_choices(body, content, canned, name)):
            items.append({"index": i, "message": _message(choice), "finish_reason": choice[2]})
            completion += _choice_tokens(choice)
        return {
            "id": "chatcmpl-" + digest.hex()[:24],
            "object": "chat.completion",
            "created": created,
            "model": model.slug,
            "choices": items,
            "usage": _usage(prompt_tokens(body["messages"]), completion),
        }

    def chat_stream(
        self, body: Any, *, created: int, canned: str | None = None, identity: str | None = None
    ) -> list[dict[str, Any]]:
        """The SSE chunk objects of a streamed chat answer, in order, without the "[DONE]"."""
        model = self.validate(CHAT, body)
        digest, content = self._digests(model, body, identity)
        choices = self._chat_choices(
            body, content, canned, digest if identity is not None else content
        )
        head = {
            "id": "chatcmpl-" + digest.hex()[:24],
            "object": "chat.completion.chunk",
            "created": created,
            "model": model.slug,
        }
        completion = sum(map(_choice_tokens, choices))
        return _chunks(head, choices, body, _usage(prompt_tokens(body["messages"]), completion))

    @staticmethod
    def chunks_of(answer: dict[str, Any], body: dict[str, Any]) -> list[dict[str, Any]]:
        """The SSE chunks of a whole chat answer from elsewhere (an upstream), cut as the
        engine cuts its own."""
        head = {
            "id": answer["id"],
            "object": "chat.completion.chunk",
            "created": answer["created"],
            "model": answer["model"],
        }
        choices: list[_Choice] = [
            (c["message"]["content"], c["message"].get("tool_calls"), c["finish_reason"])
            for c in answer["choices"]
        ]
        return _chunks(head, choices, body, answer["usage"])

    @staticmethod
    def estimated_usage(route: str, body: dict[str, Any], answer: dict[str, Any]) -> Any:
        """The usage of an answer from elsewhere that gave none, by the engine's estimate."""
        if route == EMBED:
            texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
            tokens = sum(estimate_tokens(t) for t in texts)
            return {"prompt_tokens": tokens, "total_tokens": tokens}
        if route == CHAT:
            choices = [
                (c["message"]["content"], c["message"].get("tool_calls"), "")
                for c in answer["choices"]
            ]
            completion = sum(map(_choice_tokens, choices))
            return _usage(prompt_tokens(body["messages"]), completion)
        completion = sum(estimate_tokens(c["text"]) for c in answer["choices"])
        return _usage(estimate_tokens(body["prompt"]), completion)

    def generate(
        self, body: Any, *, created: int, canned: str | None = None, identity: str | None = None
    ) -> dict[str, Any]:
        model = self.validate(GENERATE, body)
        digest, content = self._digests(model, body, identity)
        choices = self._text_choices(body, content, body.get("n") or 1, canned)
        completion = sum(estimate_tokens(text or "") for text, _, _ in choices)
        prompt = estimate_tokens(body["prompt"])
        return {
            "id": "cmpl-" + digest.hex()[:24],
            "object": "text_completion",
            "created": created,
            "model": model.slug,
            "choices": [
                {"index": i, "text": text, "finish_reason": finish}
                for i, (text, _, finish) in enumerate(choices)
            ],
            "usage": _usage(prompt, completion),
        }

    def embed(
        self, body: Any, *, created: int, canned: str | None = None, identity: str | None = None
    ) -> dict[str, Any]:
        """Embeddings. `created`, `canned` and `identity` are accepted for a uniform signature:
        the shape has no `created` field or id, and canned text does not apply."""
        model = self.validate(EMBED, body)
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        width = body.get("dimensions") or model.dimensions or 0
        full = model.dimensions or width
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(texts):
            vector = self._embedder.embed(model.slug, full, text, width)
            encoded = float32_base64(vector) if as_base64 else vector
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = sum(estimate_tokens(t) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": model.slug, "usage": usage}

    def images(
        self,
        body: Any,
        *,
        created: int,
        canned: str | None = None,
        base_url: str | None = None,
    ) -> dict[str, Any]:
        """Generated images; `canned` is accepted for a uniform signature and does not apply."""
        model = self.validate(IMAGES, body)
        digest = self._digest(model, body)
        count = body.get("n") or 1
        # "url" is the default; without links only b64_json can be served.
        links = self.links if body.get("response_format") != "b64_json" else None
        size = size_for(model, body.get("size"))
        data = []
        for i in range(count):
            image = hashlib.sha256(digest + b"image" + bytes((i,))).hexdigest()[:32]
            item: dict[str, Any] = (
                {"url": links.url(image_name(image, size), base_url)}
                if links is not None
                else {"b64_json": base64.b64encode(png_for(image, size)).decode("ascii")}
            )
            if model.slug in _REVISES_PROMPT:
                item["revised_prompt"] = self._revised_prompt(body["prompt"], digest, i)
            data.append(item)
        usage = {"prompt_tokens": estimate_tokens(body["prompt"]), "images": count}
        return {"created": created, "data": data, "model": model.slug, "usage": usage}

    @staticmethod
    def usage(route: str, response: dict[str, Any]) -> tuple[int, int]:
        """(input tokens, output tokens) of a response object from `infer`."""
        if route not in ENDPOINTS:
            raise RouteNotFound(f"No inference route {route}.")
        usage = response.get("usage") or {}
        output = usage.get("completion_tokens", 0) if route in (CHAT, GENERATE) else 0
        return int(usage.get("prompt_tokens", 0)), int(output)

    # ---- chat internals ----

    def _digest(self, model: Model, body: dict[str, Any]) -> bytes:
        """The request's identity: response ids, and the content of images and embeddings."""
        slug = model.slug
        prefix = self._slug_prefixes.get(slug) or self._prefix + slug.encode() + b"\x00"
        return hashlib.sha256(prefix + canonical(body)).digest()

    def _named(self, identity: str) -> bytes:
        return hashlib.sha256(self._prefix + b"response\x00" + identity.encode()).digest()

    def _digests(
        self, model: Model, body: dict[str, Any], identity: str | None
    ) -> tuple[bytes, bytes]:
        """What names the response (its id and its tool calls' ids: `identity`'s digest, or the
        body's), and the digest text is drawn from: the body without the cut options, so a
        request with max_tokens or stop gets a prefix of the answer it would get without."""
        cut = "max_tokens" in body or "max_completion_tokens" in body or "stop" in body
        content = (
            self._digest(model, {k: v for k, v in body.items() if k not in _CUTS})
            if cut
            else self._digest(model, body)
        )
        if identity is not None:
            return self._named(identity), content
        return (self._digest(model, body) if cut else content), content

    def _chat_choices(
        self, body: dict[str, Any], digest: bytes, canned: str | None, name: bytes
    ) -> list[_Choice]:
        """The choices, from the content `digest`; tool calls' ids from `name` (the response's
        identity, or for a response named after its body, the content digest)."""
        count = body.get("n") or 1
        fmt = (body.get("response_format") or {}).get("type")
        if canned is not None or (_tool_to_call(body, 0) is None and fmt not in _JSON_FORMATS):
            return self._text_choices(body, digest, count, canned)  # the common case: plain text
        out = []
        for i in range(count):  # tools (which take precedence) or a JSON format
            tool = _tool_to_call(body, digest[i])
            if tool is not None:
                out.append(_tool_choice(tool, digest, i, name))
            else:
                out.append(self._json_choice(body["response_format"], digest, i))
        return out

    def _text_choices(
        self, body: dict[str, Any], digest: bytes, count: int, canned: str | None
    ) -> list[_Choice]:
        """`count` text choices: the cut options are read once, not once per choice."""
        stop = body.get("stop")
        stops = ([stop] if isinstance(stop, str) else stop) if stop else None
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        out: list[_Choice] = []
        for i in range(count):
            text = canned if canned is not None else self._answer(digest, i)
            if stops is not None:
                text = _cut_at_stop(text, stops)
            if limit is None or len(text) <= 4 * limit:  # the common case: nothing to cut
                out.append((text, None, "stop"))
            else:
                out.append((_cut_to(text, limit), None, "length"))
        return out

    def _answer(self, digest: bytes, index: int) -> str:
        """Natural text of a seeded 12..80 tokens, assembled from the corpus, ending a sentence."""
        picks = memoryview(hashlib.shake_256(digest + _INDEX_BYTES[index]).digest(64)).cast("H")
        low, high = _ANSWER_TOKENS
        # Cutting at a word boundary loses at most a 14-letter word, its space and a comma, so a
        # target of at least low + 4 tokens still leaves `low`.
        target = low + 4 + picks[0] % (high - low - 3)
        budget = 4 * target
        corpus, sizes = self._text or self._make_text()
        count = len(corpus)
        parts: list[str] = []
        length = -1  # len(" ".join(parts)), kept as parts are added
        for pick in picks[1:]:
            j = pick % count
            parts.append(corpus[j])
            length += sizes[j]
            if length >= budget:
                break
        text = " ".join(parts)
        if length <= budget:
            return text
        head = text[: text.rfind(" ", 0, budget)].rstrip(",")
        end = head.rfind(". ") + 1
        # Prefer ending on the previous full stop to leaving a one- or two-word fragment.
        if end >= 4 * low and head.count(" ", end) < 3:
            return head[:end]
        return head if head.endswith(".") else head + "."

    def _json_choice(self, fmt: dict[str, Any], digest: bytes, index: int) -> _Choice:
        rng = random.Random(digest + b"json" + bytes((index,)))
        if fmt["type"] == "json_object":
            value: Any = {"answer": self._answer(digest, index)}
        else:
            value = fake_value(fmt["json_schema"].get("schema", {}), rng)
        return _dumps(value), None, "stop"

    def _revised_prompt(self, prompt: str, digest: bytes, index: int) -> str:
        corpus = (self._text or self._make_text())[0]
        sentence = corpus[int.from_bytes(digest[index : index + 2]) % len(corpus)]
        return f"{prompt.strip().rstrip('.')}. {sentence}"


# --- module helpers used by the engine ------------------------------------------------------------


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _chunks(
    head: dict[str, Any], choices: list[_Choice], body: dict[str, Any], usage: dict[str, int]
) -> list[dict[str, Any]]:
    """A chat answer's SSE chunks: each choice's deltas, then its usage if the body asks."""
    chunks = []
    for i, choice in enumerate(choices):
        for delta, finish in _deltas(choice):
            chunk = {"index": i, "delta": delta, "finish_reason": finish}
            chunks.append({**head, "choices": [chunk]})
    if (body.get("stream_options") or {}).get("include_usage") is True:
        chunks.append({**head, "choices": [], "usage": usage})
    return chunks


def _message(choice: _Choice) -> dict[str, Any]:
    content, calls, _ = choice
    if calls:
        return {"role": "assistant", "content": content, "tool_calls": calls}
    return {"role": "assistant", "content": content}


def _choice_tokens(choice: _Choice) -> int:
    content, calls, _ = choice
    tokens = estimate_tokens(content) if content else 0
    for call in calls or ():
        tokens += estimate_tokens(call["function"]["name"] + call["function"]["arguments"])
    return tokens


def _deltas(choice: _Choice) -> Iterator[tuple[dict[str, Any], str | None]]:
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


def _tool_to_call(body: dict[str, Any], pick: int) -> dict[str, Any] | None:
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


def _tool_choice(function: dict[str, Any], digest: bytes, index: int, name: bytes) -> _Choice:
    rng = random.Random(digest + b"tool" + bytes((index,)))
    arguments = fake_value(function.get("parameters", {"type": "object"}), rng)
    call = {
        "id": "call_" + hashlib.sha256(name + b"call" + bytes((index,))).hexdigest()[:24],
        "type": "function",
        "function": {"name": function["name"], "arguments": _dumps(arguments)},
    }
    return None, [call], "tool_calls"
