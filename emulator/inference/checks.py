"""Request validation for the four inference routes, before any answer is drawn.

`check_request` is the one entry point: it resolves the model a body names and checks every
field the route understands, raising one `ValidationError` that lists all the problems at once
(a client fixes them in one round trip). Fields a route does not know are ignored, as ScaiGrid
does. The live routes and the batch worker both go through the engine, so a batch line is held
to exactly the same rules as a live request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulator.endpoints import CHAT, EMBED, ENDPOINTS, GENERATE, IMAGES
from emulator.errors import RouteNotFound, ValidationError
from emulator.inference.catalogue import Catalogue
from emulator.inference.images import sizes_of
from emulator.records import Model

_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
_ROLE_LIST = ", ".join(sorted(_ROLES))  # for the error message, in a stable order
_MAX_N = 10
_MAX_STOPS = 4
_MAX_EMBED_INPUTS = 2048

_IMAGE_QUALITIES = ("standard", "hd")
_IMAGE_STYLES = ("vivid", "natural")
_IMAGE_FORMATS = ("url", "b64_json")

# isinstance() against a tuple, built once: an `int | float` union written inline is rebuilt on
# every call and checked several times slower, and validation runs on every request.
_NUMBER = (int, float)
_CONTENT = (str, list, type(None))
_SCHEMA = (dict, bool)

Errors = list[dict[str, Any]]


def check_request(route: str, body: Any, catalogue: Catalogue) -> Model:
    """The model `body` names for `route`, once the whole body is valid.

    Raises RouteNotFound for an unknown route, ModelNotFound for an unknown model, and
    ValidationError otherwise. A body that is not an object, or names no usable model, fails on
    that alone: the remaining fields cannot be judged without a model's limits."""
    if route == CHAT:
        model = _plain_chat_model(body, catalogue)
        if model is not None:
            return model
    endpoint = ENDPOINTS.get(route)
    if endpoint is None:
        raise RouteNotFound(f"No inference route {route}.")
    need = endpoint.modality
    if not isinstance(body, dict):
        raise _invalid("body", "The request body must be a JSON object.")
    slug = body.get("model")
    if not isinstance(slug, str) or not slug:
        raise _invalid("model", "model is required and must be a string.")
    model = catalogue.get(slug)
    if model.modality != need:
        msg = f"Model {slug} is {_a(model.modality)} model; {route} needs {_a(need)} model."
        raise _invalid("model", msg)
    errs: Errors = []
    _CHECKS[route](body, model, errs)
    if errs:
        summary = errs[0]["message"] if len(errs) == 1 else f"{len(errs)} fields are invalid."
        raise ValidationError(summary, details=errs)
    return model


# --- the fast path for plain chat ----------------------------------------------------------------

_NONE = type(None)
_CONTENT_TYPES = frozenset({str, list, _NONE})
_NUMBER_TYPES = frozenset({int, float})
_PLAIN_TOOL_CHOICES = (None, "none", "auto")  # a tuple: a dict tool_choice is unhashable


def _plain_chat_model(body: Any, catalogue: Catalogue) -> Model | None:
    """The model of a well-formed chat body without tools or a response format, or None.

    Most live traffic is exactly such a body, and the general checks cost several times more than
    this one pass. It only ever accepts: a body it does not recognise as valid (including every
    invalid one) gets None and goes through the general checks, which own every error message.
    Exact `type(...) is` tests are stricter than the general checks' isinstance and reject bool
    where a number is expected, as those do."""
    if type(body) is not dict:
        return None
    get = body.get
    slug = get("model")
    model = catalogue.find(slug) if type(slug) is str else None
    if (
        model is None
        or model.modality != "chat"
        or get("tools") is not None
        or get("response_format") is not None
        or get("tool_choice") not in _PLAIN_TOOL_CHOICES
        or not _plain_messages(get("messages"))
    ):
        return None
    limit = model.max_output_tokens or 0
    max_tokens, max_completion = get("max_tokens"), get("max_completion_tokens")
    temperature, top_p, n = get("temperature"), get("top_p"), get("n")
    if (
        max_tokens is not None
        and not (type(max_tokens) is int and 1 <= max_tokens <= limit)
        or max_completion is not None
        and not (type(max_completion) is int and 1 <= max_completion <= limit)
        or temperature is not None
        and not (type(temperature) in _NUMBER_TYPES and 0.0 <= temperature <= 2.0)
        or top_p is not None
        and not (type(top_p) in _NUMBER_TYPES and 0.0 <= top_p <= 1.0)
        or n is not None
        and not (type(n) is int and 1 <= n <= _MAX_N)
        or type(get("stream", False)) is not bool
    ):
        return None
    stop, options = get("stop"), get("stream_options")
    if stop is not None and not (type(stop) is str and stop):
        return None
    if options is not None and not (
        type(options) is dict and type(options.get("include_usage", False)) is bool
    ):
        return None
    return model


def _plain_messages(messages: Any) -> bool:
    if type(messages) is not list or not messages:
        return False
    for message in messages:
        if type(message) is not dict:
            return False
        role = message.get("role")
        if type(role) is not str or role not in _ROLES:
            return False
        if type(message.get("content")) not in _CONTENT_TYPES:
            return False
    return True


# --- helpers --------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but `"n": true` is a client bug, not n=1.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool)


def _a(word: str) -> str:
    """`word` with its indefinite article: "an image", "a chat"."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _err(field: str, message: str) -> dict[str, Any]:
    return {"field": field, "message": message}


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError(message, details=[_err(field, message)])


def _check_range(body: dict[str, Any], key: str, lo: float, hi: float, errs: Errors) -> None:
    value = body.get(key)
    if value is None:
        return
    # Integer bounds mean an integer field (n, dimensions); float bounds accept any number.
    whole = isinstance(lo, int) and isinstance(hi, int)
    if not (_is_int(value) if whole else _is_num(value)) or not lo <= value <= hi:
        kind = "an integer" if whole else "a number"
        errs.append(_err(key, f"{key} must be {kind} between {lo} and {hi}."))


def _check_enum(body: dict[str, Any], key: str, allowed: tuple[str, ...], errs: Errors) -> None:
    value = body.get(key)
    if value is not None and value not in allowed:
        errs.append(_err(key, f"{key} must be one of: {', '.join(allowed)}."))


# --- options shared by chat and generate ----------------------------------------------------------


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
    _check_stop(body.get("stop"), errs)


def _check_stop(stop: Any, errs: Errors) -> None:
    if stop is None:
        return
    stops = [stop] if isinstance(stop, str) else stop
    # An empty stop string would cut every answer to nothing: reject it rather than honour it.
    if not (
        isinstance(stops, list)
        and len(stops) <= _MAX_STOPS
        and all(isinstance(s, str) and s for s in stops)
    ):
        errs.append(_err("stop", f"stop must be a non-empty string or up to {_MAX_STOPS} of them."))


# --- chat -----------------------------------------------------------------------------------------


def _check_chat(body: dict[str, Any], model: Model, errs: Errors) -> None:
    _check_messages(body.get("messages"), errs)
    _check_sampling(body, model, errs)
    _check_tool_choice(body.get("tool_choice"), _tool_names(body.get("tools"), errs), errs)
    _check_response_format(body.get("response_format"), errs)
    _check_streaming(body, errs)


def _check_messages(messages: Any, errs: Errors) -> None:
    if not isinstance(messages, list) or not messages:
        errs.append(_err("messages", "messages is required and must be a non-empty list."))
        return
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            errs.append(_err(f"messages[{i}]", "Each message must be an object."))
        elif not isinstance(message.get("role"), str) or message["role"] not in _ROLES:
            errs.append(_err(f"messages[{i}].role", f"role must be one of: {_ROLE_LIST}."))
        elif not isinstance(message.get("content"), _CONTENT):
            errs.append(_err(f"messages[{i}].content", "content must be a string, list or null."))


def _tool_names(tools: Any, errs: Errors) -> list[str]:
    """The names of the well-formed tools (tool_choice is checked against them)."""
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
        and isinstance(spec.get("schema", {}), _SCHEMA)
    ):
        msg = "json_schema needs a name and, optionally, a schema object."
        errs.append(_err("response_format.json_schema", msg))


def _check_streaming(body: dict[str, Any], errs: Errors) -> None:
    if not isinstance(body.get("stream", False), bool):
        errs.append(_err("stream", "stream must be a boolean."))
    options = body.get("stream_options")
    if options is not None and not (
        isinstance(options, dict) and isinstance(options.get("include_usage", False), bool)
    ):
        errs.append(_err("stream_options", "stream_options must be {include_usage: boolean}."))


# --- generate, embed, images ----------------------------------------------------------------------


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
    _check_size(body.get("size"), model, errs)
    _check_enum(body, "quality", _IMAGE_QUALITIES, errs)
    _check_enum(body, "style", _IMAGE_STYLES, errs)
    _check_enum(body, "response_format", _IMAGE_FORMATS, errs)


def _check_size(size: Any, model: Model, errs: Errors) -> None:
    sizes = sizes_of(model)
    if size is not None and size not in sizes:
        allowed = ", ".join(sizes)
        errs.append(_err("size", f"size must be one of: {allowed} for model {model.slug}."))


_CHECKS: dict[str, Callable[[dict[str, Any], Model, Errors], None]] = {
    CHAT: _check_chat,
    GENERATE: _check_generate,
    EMBED: _check_embed,
    IMAGES: _check_images,
}
