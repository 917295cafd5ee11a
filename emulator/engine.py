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
so equal texts get equal vectors in any request.

Cuts: the text is drawn without looking at `max_tokens`, `max_completion_tokens` and `stop`, so
those only cut the answer the same request would get without them (the response id still
differs). `max_tokens` (or its newer alias `max_completion_tokens`) cuts text to at most
4 * max_tokens characters at a word boundary, finish_reason "length"; a `stop` string cuts before
its first occurrence, finish_reason "stop". JSON content (`response_format` json_object or
json_schema) is never cut, so it always parses: finish_reason "stop", completion tokens the
estimate as usual. `canned` text (scenario responses) replaces generated content, tool calls and
JSON formats, and is cut like generated text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from emulator.catalogue import ROUTE_MODALITY, Catalogue, Model
from emulator.errors import RouteNotFound, ValidationError
from emulator.jsonfake import WORDS, fake_value

CHAT = "/v1/inference/chat"
GENERATE = "/v1/inference/generate"
EMBED = "/v1/inference/embed"
IMAGES = "/v1/inference/images/generate"
ROUTES = (CHAT, GENERATE, EMBED, IMAGES)

_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
_IMAGE_PARTS = frozenset({"image_url", "image", "input_image"})
_IMAGE_PART_TOKENS = 85
_MESSAGE_TOKENS = 4
_REPLY_TOKENS = 3
_MAX_N = 10
_MAX_STOPS = 4
_MAX_EMBED_INPUTS = 2048
_ANSWER_TOKENS = (12, 80)  # natural answer length, before max_tokens
_CORPUS_SENTENCES = 2048
_STREAM_WORDS = 3  # words per streamed content delta
_VOLATILE = ("stream", "stream_options")  # transport options, not part of the request's identity
_CUTS = ("max_tokens", "max_completion_tokens", "stop")  # options that only cut the text

_IMAGE_SIZES = ("256x256", "512x512", "1024x1024", "1792x1024", "1024x1792")
_IMAGE_QUALITIES = ("standard", "hd")
_IMAGE_STYLES = ("vivid", "natural")
_IMAGE_FORMATS = ("url", "b64_json")
_REVISES_PROMPT = frozenset({"openai/dall-e-3"})  # models that answer with a revised_prompt
_PNG_SIDE, _PNG_CELL = 32, 8  # a 4x4 grid of 8-pixel cells: small, valid, visibly distinct

# Embeddings: each word is a pseudo-random vector of uint16 lanes; a text's vector is the sum of
# its distinct words' vectors (weight _WORD_WEIGHT) plus one vector of the whole text (weight 1),
# so texts sharing words are close and different texts never coincide. Lanes are 32 bits wide in
# one big int, so summing vectors is a single C-level addition; a chunk of words never overflows.
_WORD_WEIGHT = 4
_LANE_BYTES = 4
_MAGIC = 1 << 52  # a double's bits 0x4330_0000_xxxx_xxxx read as 2**52 + x (see _as_doubles)
_WORDS_PER_CHUNK = ((1 << 32) - 1) // 0xFFFF // _WORD_WEIGHT - 1
_WORD_CACHE = 2048
_WORD_RE = re.compile(r"\w+")
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
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- validation -----------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _err(field: str, message: str) -> dict[str, Any]:
    return {"field": field, "message": message}


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError(message, details=[_err(field, message)])


Errors = list[dict[str, Any]]


def _check_range(body: dict[str, Any], key: str, lo: float, hi: float, errs: Errors) -> None:
    value = body.get(key)
    if value is None:
        return
    whole = isinstance(lo, int) and isinstance(hi, int)
    if not (_is_int(value) if whole else _is_num(value)) or not lo <= value <= hi:
        kind = "an integer" if whole else "a number"
        errs.append(_err(key, f"{key} must be {kind} between {lo} and {hi}."))


def _check_enum(body: dict[str, Any], key: str, allowed: tuple[str, ...], errs: Errors) -> None:
    value = body.get(key)
    if value is not None and value not in allowed:
        errs.append(_err(key, f"{key} must be one of: {', '.join(allowed)}."))


def _check_sampling(body: dict[str, Any], model: Model, errs: Errors) -> None:
    """The options chat and generate share: length limit, sampling, n and stop."""
    limit = model.max_output_tokens or 0
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if not _is_int(value) or value < 1:
            errs.append(_err(key, f"{key} must be a positive integer."))
        elif value > limit:
            errs.append(_err(key, f"{key} must be at most {limit} for model {model.slug}."))
    _check_range(body, "temperature", 0.0, 2.0, errs)
    _check_range(body, "top_p", 0.0, 1.0, errs)
    _check_range(body, "n", 1, _MAX_N, errs)
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop
    if stop is not None and not (
        isinstance(stops, list)
        and len(stops) <= _MAX_STOPS
        and all(isinstance(s, str) and s for s in stops)
    ):
        errs.append(_err("stop", f"stop must be a non-empty string or up to {_MAX_STOPS} of them."))


def _check_messages(messages: Any, errs: Errors) -> None:
    if not isinstance(messages, list) or not messages:
        errs.append(_err("messages", "messages is required and must be a non-empty list."))
        return
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            errs.append(_err(f"messages[{i}]", "Each message must be an object."))
        elif message.get("role") not in _ROLES:
            roles = ", ".join(sorted(_ROLES))
            errs.append(_err(f"messages[{i}].role", f"role must be one of: {roles}."))
        elif not isinstance(message.get("content"), str | list | None):
            errs.append(_err(f"messages[{i}].content", "content must be a string, list or null."))


def _tool_names(tools: Any, errs: Errors) -> list[str]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        errs.append(_err("tools", "tools must be a list of function tools."))
        return []
    names = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not function["name"]
            or not isinstance(function.get("parameters", {}), dict)
        ):
            msg = 'Each tool must be {"type": "function", "function": {"name", "parameters"?}}.'
            errs.append(_err(f"tools[{i}]", msg))
        else:
            names.append(function["name"])
    return names


def _check_tool_choice(choice: Any, names: list[str], errs: Errors) -> None:
    if choice is None or choice in ("none", "auto"):
        return
    if choice == "required":
        if not names:
            errs.append(_err("tool_choice", "tool_choice 'required' needs tools."))
        return
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        msg = 'tool_choice must be none, auto, required or {"type": "function", ...}.'
        errs.append(_err("tool_choice", msg))
    elif name not in names:
        errs.append(_err("tool_choice", f"tool_choice names unknown tool '{name}'."))


def _check_response_format(value: Any, errs: Errors) -> None:
    if value is None:
        return
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        msg = "response_format.type must be text, json_object or json_schema."
        errs.append(_err("response_format", msg))
        return
    spec = value.get("json_schema")
    if kind == "json_schema" and not (
        isinstance(spec, dict)
        and isinstance(spec.get("name"), str)
        and isinstance(spec.get("schema", {}), dict | bool)
    ):
        msg = "json_schema needs a name and, optionally, a schema object."
        errs.append(_err("response_format.json_schema", msg))


def _check_chat(body: dict[str, Any], model: Model, errs: Errors) -> None:
    _check_messages(body.get("messages"), errs)
    _check_sampling(body, model, errs)
    _check_tool_choice(body.get("tool_choice"), _tool_names(body.get("tools"), errs), errs)
    _check_response_format(body.get("response_format"), errs)
    if not isinstance(body.get("stream", False), bool):
        errs.append(_err("stream", "stream must be a boolean."))
    options = body.get("stream_options")
    if options is not None and not (
        isinstance(options, dict) and isinstance(options.get("include_usage", False), bool)
    ):
        errs.append(_err("stream_options", "stream_options must be {include_usage: boolean}."))


def _check_generate(body: dict[str, Any], model: Model, errs: Errors) -> None:
    if not isinstance(body.get("prompt"), str):
        errs.append(_err("prompt", "prompt is required and must be a string."))
    _check_sampling(body, model, errs)


def _check_embed(body: dict[str, Any], model: Model, errs: Errors) -> None:
    texts = body.get("input")
    texts = [texts] if isinstance(texts, str) else texts
    if not (
        isinstance(texts, list)
        and 0 < len(texts) <= _MAX_EMBED_INPUTS
        and all(isinstance(t, str) and t for t in texts)
    ):
        msg = f"input must be a non-empty string or a list of 1..{_MAX_EMBED_INPUTS} of them."
        errs.append(_err("input", msg))
    _check_range(body, "dimensions", 1, model.dimensions or 0, errs)
    _check_enum(body, "encoding_format", ("float", "base64"), errs)


def _check_images(body: dict[str, Any], model: Model, errs: Errors) -> None:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        errs.append(_err("prompt", "prompt is required and must be a non-empty string."))
    _check_range(body, "n", 1, _MAX_N, errs)
    _check_enum(body, "size", _IMAGE_SIZES, errs)
    _check_enum(body, "quality", _IMAGE_QUALITIES, errs)
    _check_enum(body, "style", _IMAGE_STYLES, errs)
    _check_enum(body, "response_format", _IMAGE_FORMATS, errs)


_CHECKS: dict[str, Callable[[dict[str, Any], Model, Errors], None]] = {
    CHAT: _check_chat,
    GENERATE: _check_generate,
    EMBED: _check_embed,
    IMAGES: _check_images,
}


# --- text helpers ---------------------------------------------------------------------------------


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Chat prompt tokens by the documented formula (see the module docstring)."""
    total = _REPLY_TOKENS
    for message in messages:
        total += _MESSAGE_TOKENS + _content_tokens(message.get("content"))
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


def _build_corpus(seed: int) -> list[str]:
    """Sentences of Faker's English words that answers are assembled from (made once per seed)."""
    rng = random.Random(f"scaigrid-emulator:corpus:{seed}")
    out = []
    for _ in range(_CORPUS_SENTENCES):
        words = rng.choices(WORDS, k=rng.randint(6, 14))
        if len(words) >= 10:  # longer sentences read better with a pause
            words[len(words) // 2 - 1] += ","
        sentence = " ".join(words)
        while len(sentence) < 24:  # a floor, so 31 picks always fill the longest answer
            sentence += " " + rng.choice(WORDS)
        out.append(sentence[0].upper() + sentence[1:] + ".")
    return out


class _Choice(NamedTuple):
    content: str | None
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str


# --- images ---------------------------------------------------------------------------------------


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


@lru_cache(maxsize=512)
def png_for(digest: str) -> bytes:
    """The PNG for an image digest: a 32x32 RGB grid of 4x4 colour cells derived from `digest`.

    The pixel size is always 32x32 whatever `size` the request asked for: clients get a real,
    decodable image without the emulator storing or computing megapixels."""
    colours = hashlib.sha512(digest.encode()).digest()
    per_row = _PNG_SIDE // _PNG_CELL
    rows = []
    for r in range(per_row):
        cells = (colours[3 * (r * per_row + c) :][:3] * _PNG_CELL for c in range(per_row))
        rows.append((b"\x00" + b"".join(cells)) * _PNG_CELL)  # filter type 0 per scanline
    header = struct.pack(">IIBBBBB", _PNG_SIDE, _PNG_SIDE, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + _png_chunk(b"IEND", b"")
    )


# --- the engine -----------------------------------------------------------------------------------


class Engine:
    """Answers inference requests for one seed and catalogue; see the module docstring."""

    def __init__(
        self, seed: int, catalogue: Catalogue, image_url: Callable[[str], str] | None = None
    ) -> None:
        self.seed = seed
        self.catalogue = catalogue
        self.image_url = image_url
        self._prefix = f"{seed}\x00".encode()
        self._corpus = _build_corpus(seed)
        self._word_lanes: dict[tuple[str, str], int] = {}
        self._routes: dict[str, Callable[[Any, int, str | None], dict[str, Any]]] = {
            CHAT: lambda body, created, canned: self.chat(body, created=created, canned=canned),
            GENERATE: lambda body, created, canned: self.generate(
                body, created=created, canned=canned
            ),
            EMBED: lambda body, created, canned: self.embed(body, created=created),
            IMAGES: lambda body, created, canned: self.images(body, created=created),
        }

    # ---- public API ----

    def infer(
        self, route: str, body: Any, *, created: int, canned: str | None = None
    ) -> dict[str, Any]:
        """The response data object for `route`; validates first."""
        handler = self._routes.get(route)
        if handler is None:
            raise RouteNotFound(f"No inference route {route}.")
        return handler(body, created, canned)

    def validate(self, route: str, body: Any) -> Model:
        """Check `body` for `route`; the model it names, or ValidationError / ModelNotFound."""
        need = ROUTE_MODALITY.get(route)
        if need is None:
            raise RouteNotFound(f"No inference route {route}.")
        if not isinstance(body, dict):
            raise _invalid("body", "The request body must be a JSON object.")
        slug = body.get("model")
        if not isinstance(slug, str) or not slug:
            raise _invalid("model", "model is required and must be a string.")
        model = self.catalogue.get(slug)
        if model.modality != need:
            msg = f"Model {slug} is a {model.modality} model; {route} needs a {need} model."
            raise _invalid("model", msg)
        errs: Errors = []
        _CHECKS[route](body, model, errs)
        if errs:
            summary = errs[0]["message"] if len(errs) == 1 else f"{len(errs)} fields are invalid."
            raise ValidationError(summary, details=errs)
        return model

    def chat(self, body: Any, *, created: int, canned: str | None = None) -> dict[str, Any]:
        model = self.validate(CHAT, body)
        digest = self._digest(model, body)
        choices = self._chat_choices(body, self._content_digest(model, body, digest), canned)
        return {
            "id": "chatcmpl-" + digest.hex()[:24],
            "object": "chat.completion",
            "created": created,
            "model": model.slug,
            "choices": [
                {"index": i, "message": _message(choice), "finish_reason": choice.finish_reason}
                for i, choice in enumerate(choices)
            ],
            "usage": self._chat_usage(body, choices),
        }

    def chat_stream(
        self, body: Any, *, created: int, canned: str | None = None
    ) -> list[dict[str, Any]]:
        """The SSE chunk objects of a streamed chat answer, in order, without the "[DONE]"."""
        model = self.validate(CHAT, body)
        digest = self._digest(model, body)
        choices = self._chat_choices(body, self._content_digest(model, body, digest), canned)
        head = {
            "id": "chatcmpl-" + digest.hex()[:24],
            "object": "chat.completion.chunk",
            "created": created,
            "model": model.slug,
        }
        chunks = []
        for i, choice in enumerate(choices):
            for delta, finish in _deltas(choice):
                chunk = {"index": i, "delta": delta, "finish_reason": finish}
                chunks.append({**head, "choices": [chunk]})
        if (body.get("stream_options") or {}).get("include_usage") is True:
            chunks.append({**head, "choices": [], "usage": self._chat_usage(body, choices)})
        return chunks

    def generate(self, body: Any, *, created: int, canned: str | None = None) -> dict[str, Any]:
        model = self.validate(GENERATE, body)
        digest = self._digest(model, body)
        content = self._content_digest(model, body, digest)
        choices = [self._text_choice(body, content, i, canned) for i in range(body.get("n") or 1)]
        completion = sum(estimate_tokens(c.content or "") for c in choices)
        prompt = estimate_tokens(body["prompt"])
        return {
            "id": "cmpl-" + digest.hex()[:24],
            "object": "text_completion",
            "created": created,
            "model": model.slug,
            "choices": [
                {"index": i, "text": c.content, "finish_reason": c.finish_reason}
                for i, c in enumerate(choices)
            ],
            "usage": _usage(prompt, completion),
        }

    def embed(self, body: Any, *, created: int) -> dict[str, Any]:
        """Embeddings; `created` is accepted for a uniform signature (the shape has no field)."""
        model = self.validate(EMBED, body)
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        width = body.get("dimensions") or model.dimensions or 0
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(texts):
            vector = self._embedding(model, text, width)
            encoded = _float32_base64(vector) if as_base64 else vector
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = sum(estimate_tokens(t) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": model.slug, "usage": usage}

    def images(self, body: Any, *, created: int) -> dict[str, Any]:
        model = self.validate(IMAGES, body)
        digest = self._digest(model, body)
        count = body.get("n") or 1
        # "url" is the default; without an image_url callback only b64_json can be served.
        url = self.image_url if body.get("response_format") != "b64_json" else None
        data = []
        for i in range(count):
            image = hashlib.sha256(digest + b"image" + bytes((i,))).hexdigest()[:32]
            item: dict[str, Any] = (
                {"url": url(image)}
                if url is not None
                else {"b64_json": base64.b64encode(png_for(image)).decode("ascii")}
            )
            if model.slug in _REVISES_PROMPT:
                item["revised_prompt"] = self._revised_prompt(body["prompt"], digest, i)
            data.append(item)
        usage = {"prompt_tokens": estimate_tokens(body["prompt"]), "images": count}
        return {"created": created, "data": data, "model": model.slug, "usage": usage}

    @staticmethod
    def usage(route: str, response: dict[str, Any]) -> tuple[int, int]:
        """(input tokens, output tokens) of a response object from `infer`."""
        if route not in ROUTE_MODALITY:
            raise RouteNotFound(f"No inference route {route}.")
        usage = response.get("usage") or {}
        output = usage.get("completion_tokens", 0) if route in (CHAT, GENERATE) else 0
        return int(usage.get("prompt_tokens", 0)), int(output)

    def _embedding(self, model: Model, text: str, width: int) -> list[float]:
        """The unit vector for `text`: the model's full vector cut to `width` and renormalised."""
        full = model.dimensions or width
        words = sorted(set(_WORD_RE.findall(text.lower())))
        chunks = [words[i : i + _WORDS_PER_CHUNK] for i in range(0, len(words), _WORDS_PER_CHUNK)]
        parts = []
        for i, chunk in enumerate(chunks or [[]]):
            packed = _WORD_WEIGHT * sum(self._lanes(model.slug, full, w) for w in chunk)
            terms = _WORD_WEIGHT * len(chunk)
            if i == 0:  # the whole-text vector rides in the first chunk
                packed += self._text_lanes(model.slug, full, text)
                terms += 1
            parts.append(_as_doubles(packed, terms, full, width))
        values, centre = parts[0] if len(parts) == 1 else _add_parts(parts)
        # dist() and the one comprehension run over floats with an exact offset: the cheapest
        # way to centre and normalise without numpy.
        scale = 1.0 / (math.dist(values, (centre,) * width) or 1.0)
        return [(v - centre) * scale for v in values]

    # ---- chat internals ----

    def _digest(self, model: Model, body: dict[str, Any]) -> bytes:
        """The request's identity: response ids, and the content of images and embeddings."""
        return hashlib.sha256(
            self._prefix + model.slug.encode() + b"\x00" + canonical(body)
        ).digest()

    def _content_digest(self, model: Model, body: dict[str, Any], digest: bytes) -> bytes:
        """What text is drawn from: the identity without the cut options, so a request with
        max_tokens or stop gets a prefix of the answer it would get without them."""
        if not any(key in body for key in _CUTS):
            return digest
        return self._digest(model, {k: v for k, v in body.items() if k not in _CUTS})

    def _chat_choices(
        self, body: dict[str, Any], digest: bytes, canned: str | None
    ) -> list[_Choice]:
        fmt = (body.get("response_format") or {}).get("type")
        out = []
        for i in range(body.get("n") or 1):
            tool = None if canned is not None else _tool_to_call(body, digest[i])
            if tool is not None:
                out.append(_tool_choice(tool, digest, i))
            elif canned is None and fmt in ("json_object", "json_schema"):
                out.append(self._json_choice(body["response_format"], digest, i))
            else:
                out.append(self._text_choice(body, digest, i, canned))
        return out

    def _text_choice(
        self, body: dict[str, Any], digest: bytes, index: int, canned: str | None
    ) -> _Choice:
        text = canned if canned is not None else self._answer(digest, index)
        stop = body.get("stop")
        if stop:
            text = _cut_at_stop(text, [stop] if isinstance(stop, str) else stop)
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if limit is None or len(text) <= 4 * limit:  # the common case: nothing to cut
            return _Choice(text, None, "stop")
        return _Choice(_cut_to(text, limit), None, "length")

    def _answer(self, digest: bytes, index: int) -> str:
        """Natural text of a seeded 12..80 tokens, assembled from the corpus, ending a sentence."""
        picks = memoryview(hashlib.shake_256(digest + bytes((index,))).digest(64)).cast("H")
        low, high = _ANSWER_TOKENS
        # Cutting at a word boundary loses at most a 14-letter word, its space and a comma, so a
        # target of at least low + 4 tokens still leaves `low`.
        target = low + 4 + picks[0] % (high - low - 3)
        budget = 4 * target
        corpus = self._corpus
        parts: list[str] = []
        length = -1
        for pick in picks[1:]:
            parts.append(corpus[pick % len(corpus)])
            length += len(parts[-1]) + 1
            if length >= budget:
                break
        text = " ".join(parts)
        if len(text) <= budget:
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
        return _Choice(_dumps(value), None, "stop")

    def _chat_usage(self, body: dict[str, Any], choices: list[_Choice]) -> dict[str, int]:
        completion = sum(_choice_tokens(c) for c in choices)
        return _usage(prompt_tokens(body["messages"]), completion)

    def _revised_prompt(self, prompt: str, digest: bytes, index: int) -> str:
        sentence = self._corpus[int.from_bytes(digest[index : index + 2]) % len(self._corpus)]
        return f"{prompt.strip().rstrip('.')}. {sentence}"

    # ---- embedding internals ----

    def _lanes(self, slug: str, width: int, word: str) -> int:
        key = (slug, word)
        cache = self._word_lanes
        packed = cache.pop(key, None)  # pop and re-insert: dict order is then recency order
        if packed is None:
            packed = _to_lanes(self._shake(slug, b"w", word, width))
            if len(cache) >= _WORD_CACHE:
                del cache[next(iter(cache))]
        cache[key] = packed
        return packed

    def _text_lanes(self, slug: str, width: int, text: str) -> int:
        return _to_lanes(self._shake(slug, b"t", text, width))

    def _shake(self, slug: str, kind: bytes, text: str, width: int) -> bytes:
        material = self._prefix + slug.encode() + b"\x00" + kind + b"\x00" + text.encode()
        return hashlib.shake_256(material).digest(2 * width)


# --- module helpers used by the engine ------------------------------------------------------------


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _message(choice: _Choice) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": choice.content}
    if choice.tool_calls:
        message["tool_calls"] = choice.tool_calls
    return message


def _choice_tokens(choice: _Choice) -> int:
    calls = choice.tool_calls or []
    spoken = sum(estimate_tokens(c["function"]["name"] + c["function"]["arguments"]) for c in calls)
    return spoken + estimate_tokens(choice.content or "")


def _deltas(choice: _Choice) -> Iterator[tuple[dict[str, Any], str | None]]:
    """(delta, finish_reason) pairs of one streamed choice."""
    if choice.tool_calls:
        yield {"role": "assistant", "content": None}, None
        yield {"tool_calls": [{"index": j, **c} for j, c in enumerate(choice.tool_calls)]}, None
    else:
        yield {"role": "assistant", "content": ""}, None
        for piece in _stream_pieces(choice.content or ""):
            yield {"content": piece}, None
    yield {}, choice.finish_reason


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


def _tool_choice(function: dict[str, Any], digest: bytes, index: int) -> _Choice:
    rng = random.Random(digest + b"tool" + bytes((index,)))
    arguments = fake_value(function.get("parameters", {"type": "object"}), rng)
    call = {
        "id": "call_" + hashlib.sha256(digest + b"call" + bytes((index,))).hexdigest()[:24],
        "type": "function",
        "function": {"name": function["name"], "arguments": _dumps(arguments)},
    }
    return _Choice(None, [call], "tool_calls")


def _to_lanes(data: bytes) -> int:
    """uint16 values spread into 32-bit little-endian lanes of one int, ready to be summed."""
    buf = bytearray(2 * len(data))
    buf[0::_LANE_BYTES] = data[0::2]
    buf[1::_LANE_BYTES] = data[1::2]
    return int.from_bytes(buf, "little")


def _as_doubles(packed: int, terms: int, full: int, width: int) -> tuple[array[float], float]:
    """The first `width` of `full` lanes of a sum of `terms` lane vectors as doubles, and the
    double that is their expected value (subtract it to centre them).

    Each 32-bit lane x is written under the exponent of 2**52, so the bytes read back as the
    double 2**52 + x exactly: ints become floats with slice copies instead of a Python loop."""
    raw = packed.to_bytes(_LANE_BYTES * full, "little")
    buf = bytearray(8 * width)
    for i in range(_LANE_BYTES):
        buf[i::8] = raw[i : _LANE_BYTES * width : _LANE_BYTES]
    buf[6::8] = b"\x30" * width
    buf[7::8] = b"\x43" * width
    values = array("d")
    values.frombytes(bytes(buf))
    if sys.byteorder == "big":
        values.byteswap()
    # The mean of a sum of `terms` uniform uint16 values, rounded to stay exact next to 2**52.
    return values, float(_MAGIC + round(terms * 32767.5))


def _add_parts(parts: list[tuple[array[float], float]]) -> tuple[array[float], float]:
    """Centred chunk sums added up (only for texts with more distinct words than a chunk holds)."""
    total = [0.0] * len(parts[0][0])
    for values, centre in parts:
        total = [t + v - centre for t, v in zip(total, values, strict=True)]
    return array("d", total), 0.0


def _float32_base64(vector: list[float]) -> str:
    packed = array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")
