"""Deterministic fake inference: the four inference routes as pure functions of the request.

No HTTP and no I/O here: live routes and the batch worker both call `Engine`, so a batch line and
the same request sent live get the same answer.

Determinism: a response is a pure function of (engine seed, model slug, `canonical(body)`) plus the
`created` timestamp passed in. Everything random is drawn from sha256 of those three, so the same
request twice serialises to the same bytes, and `stream` / `stream_options` do not change the text.

Token counts are the estimates `emulator.inference.tokens` documents.

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

Request validation lives in `checks`, token counts and cuts in `tokens`, the choice tuple and tool
calls in `choices`, streamed chunks in `streaming`, embedding maths in `embeddings` and the PNGs
behind generated images in `images` (all in this package); `png_for` is re-exported here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import struct
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from emulator.endpoints import CHAT, EMBED, ENDPOINTS, GENERATE, IMAGES
from emulator.errors import RouteNotFound, ValidationError
from emulator.inference import streaming
from emulator.inference.catalogue import Catalogue
from emulator.inference.checks import check_request
from emulator.inference.choices import Choice, dumps, message, tool_choice, tool_to_call
from emulator.inference.corpus import corpus
from emulator.inference.embeddings import Embedder, float32_base64
from emulator.inference.images import image_name, png_for, size_for
from emulator.inference.jsonfake import fake_value
from emulator.inference.tokens import (
    choice_tokens,
    cut_at_stop,
    cut_to,
    estimate_tokens,
    prompt_tokens,
    token_usage,
)
from emulator.records import Model

__all__ = ["Engine", "canonical", "png_for"]

_ANSWER_TOKENS = (12, 80)  # natural answer length, before max_tokens
_TARGET_SPAN = _ANSWER_TOKENS[1] - _ANSWER_TOKENS[0] - 3  # how many answer lengths there are
#: an answer's 64 drawn bytes as 32 unsigned 16-bit picks in native order (as a memoryview's
#: "H" cast reads them; unpacked into a tuple at once, which is quicker to walk)
_PICKS = struct.Struct("=32H").unpack
_VOLATILE = ("stream", "stream_options")  # transport options, not part of the request's identity
_CUTS = frozenset({"max_tokens", "max_completion_tokens", "stop"})  # options that only cut text
_JSON_FORMATS = ("json_object", "json_schema")
#: what a response id starts with, by route (embeddings and images carry no id)
_ID_PREFIXES = {CHAT: "chatcmpl-", GENERATE: "cmpl-"}
_INDEX_BYTES = tuple(bytes((i,)) for i in range(256))  # bytes((i,)) without building a tuple
_REVISES_PROMPT = frozenset({"openai/dall-e-3"})  # models that answer with a revised_prompt


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


class Links(Protocol):
    """Mints the URL an image is served at (`emulator.inference.images.ImageLinks`), from the
    image's name (`emulator.inference.images.image_name`: its digest and size)."""

    def url(self, name: str, base_url: str | None) -> str: ...


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
            items.append({"index": i, "message": message(choice), "finish_reason": choice[2]})
            completion += choice_tokens(choice)
        return {
            "id": "chatcmpl-" + digest.hex()[:24],
            "object": "chat.completion",
            "created": created,
            "model": model.slug,
            "choices": items,
            "usage": token_usage(prompt_tokens(body["messages"]), completion),
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
        completion = sum(map(choice_tokens, choices))
        return streaming.chunks(
            head, choices, body, token_usage(prompt_tokens(body["messages"]), completion)
        )

    @staticmethod
    def chunks_of(answer: dict[str, Any], body: dict[str, Any]) -> list[dict[str, Any]]:
        """The SSE chunks of a whole chat answer from elsewhere (an upstream), cut as the
        engine cuts its own."""
        return streaming.chunks_of(answer, body)

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
            completion = sum(map(choice_tokens, choices))
            return token_usage(prompt_tokens(body["messages"]), completion)
        completion = sum(estimate_tokens(c["text"]) for c in answer["choices"])
        return token_usage(estimate_tokens(body["prompt"]), completion)

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
            "usage": token_usage(prompt, completion),
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
    ) -> list[Choice]:
        """The choices, from the content `digest`; tool calls' ids from `name` (the response's
        identity, or for a response named after its body, the content digest)."""
        count = body.get("n") or 1
        fmt = (body.get("response_format") or {}).get("type")
        if canned is not None or (tool_to_call(body, 0) is None and fmt not in _JSON_FORMATS):
            return self._text_choices(body, digest, count, canned)  # the common case: plain text
        out = []
        for i in range(count):  # tools (which take precedence) or a JSON format
            tool = tool_to_call(body, digest[i])
            if tool is not None:
                out.append(tool_choice(tool, digest, i, name))
            else:
                out.append(self._json_choice(body["response_format"], digest, i))
        return out

    def _text_choices(
        self, body: dict[str, Any], digest: bytes, count: int, canned: str | None
    ) -> list[Choice]:
        """`count` text choices: the cut options are read once, not once per choice."""
        stop = body.get("stop")
        stops = ([stop] if isinstance(stop, str) else stop) if stop else None
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        out: list[Choice] = []
        for i in range(count):
            text = canned if canned is not None else self._answer(digest, i)
            if stops is not None:
                text = cut_at_stop(text, stops)
            if limit is None or len(text) <= 4 * limit:  # the common case: nothing to cut
                out.append((text, None, "stop"))
            else:
                out.append((cut_to(text, limit), None, "length"))
        return out

    def _answer(self, digest: bytes, index: int) -> str:
        """Natural text of a seeded 12..80 tokens, assembled from the corpus, ending a sentence."""
        # 32 native-order 16-bit picks: the first sets the length, the rest pick sentences
        picks = _PICKS(hashlib.shake_256(digest + _INDEX_BYTES[index]).digest(64))
        low = _ANSWER_TOKENS[0]
        # Cutting at a word boundary loses at most a 14-letter word, its space and a comma, so a
        # target of at least low + 4 tokens still leaves `low`.
        budget = 4 * (low + 4 + picks[0] % _TARGET_SPAN)
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

    def _json_choice(self, fmt: dict[str, Any], digest: bytes, index: int) -> Choice:
        rng = random.Random(digest + b"json" + bytes((index,)))
        if fmt["type"] == "json_object":
            value: Any = {"answer": self._answer(digest, index)}
        else:
            value = fake_value(fmt["json_schema"].get("schema", {}), rng)
        return dumps(value), None, "stop"

    def _revised_prompt(self, prompt: str, digest: bytes, index: int) -> str:
        corpus = (self._text or self._make_text())[0]
        sentence = corpus[int.from_bytes(digest[index : index + 2]) % len(corpus)]
        return f"{prompt.strip().rstrip('.')}. {sentence}"
