"""The fake inference engine: determinism, shapes, honest usage, validation, tools, JSON, images."""

from __future__ import annotations

import base64
import copy
import json
import math
import struct
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from emulator.endpoints import CHAT, EMBED, GENERATE, IMAGES
from emulator.errors import ModelNotFound, RouteNotFound, ValidationError
from emulator.inference.catalogue import Catalogue, load_catalogue
from emulator.inference.engine import Engine, canonical
from emulator.inference.tokens import estimate_tokens

GPT = "openai/gpt-4o"
SMALL = "openai/text-embedding-3-small"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture(scope="module")
def engine(catalogue: Catalogue) -> Engine:
    return Engine(42, catalogue, FixedLinks())


class FixedLinks:
    """Image links without signing: where each image would be served."""

    def __init__(self) -> None:
        self.served: list[str] = []

    def url(self, digest: str, base_url: str | None = None) -> str:
        self.served.append(digest)
        return f"{base_url or 'http://emulator.test'}/{digest}.png"


def chat_body(**extra: Any) -> dict[str, Any]:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Tell me about the weather in Utrecht."},
    ]
    return {"model": GPT, "messages": messages, **extra}


def content_of(response: dict[str, Any], index: int = 0) -> str:
    content = response["choices"][index]["message"]["content"]
    assert isinstance(content, str)
    return content


def validation_details(excinfo: pytest.ExceptionInfo[ValidationError]) -> list[dict[str, Any]]:
    error = excinfo.value
    assert error.status == 422
    assert error.code == "VALIDATION_ERROR"
    assert error.details
    return error.details


# --- determinism ------------------------------------------------------------------------------


SAMPLE_REQUESTS = [
    (CHAT, chat_body(max_tokens=50)),
    (GENERATE, {"model": GPT, "prompt": "Once upon a time"}),
    (EMBED, {"model": SMALL, "input": ["alpha beta", "gamma"]}),
    (IMAGES, {"model": "openai/dall-e-3", "prompt": "a lighthouse", "n": 2}),
]


@pytest.mark.parametrize(("route", "body"), SAMPLE_REQUESTS)
def test_same_request_twice_is_byte_identical(
    catalogue: Catalogue, route: str, body: dict[str, Any]
) -> None:
    first = Engine(7, catalogue).infer(route, copy.deepcopy(body), created=1000)
    again = Engine(7, catalogue).infer(route, copy.deepcopy(body), created=1000)
    assert orjson.dumps(first) == orjson.dumps(again)


@pytest.mark.parametrize(("route", "body"), SAMPLE_REQUESTS)
def test_a_different_seed_gives_a_different_answer(
    catalogue: Catalogue, route: str, body: dict[str, Any]
) -> None:
    one = Engine(1, catalogue).infer(route, body, created=1000)
    two = Engine(2, catalogue).infer(route, body, created=1000)
    assert orjson.dumps(one) != orjson.dumps(two)


def test_different_seeds_differ_in_text_and_id(catalogue: Catalogue) -> None:
    one = Engine(1, catalogue).chat(chat_body(), created=0)
    two = Engine(2, catalogue).chat(chat_body(), created=0)
    assert one["id"] != two["id"]
    assert content_of(one) != content_of(two)


def test_key_order_and_stream_flags_do_not_change_the_answer(engine: Engine) -> None:
    body = chat_body(temperature=0.5)
    shuffled = dict(reversed(list(body.items())))
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    answers = [engine.chat(b, created=5) for b in (body, shuffled, streamed)]
    assert answers[0] == answers[1] == answers[2]


def test_ids_are_deterministic_and_prefixed(engine: Engine) -> None:
    chat = engine.chat(chat_body(), created=0)
    text = engine.generate({"model": GPT, "prompt": "x"}, created=0)
    assert chat["id"].startswith("chatcmpl-") and len(chat["id"]) == len("chatcmpl-") + 24
    assert text["id"].startswith("cmpl-") and len(text["id"]) == len("cmpl-") + 24
    assert int(chat["id"].removeprefix("chatcmpl-"), 16) >= 0


def test_canonical_sorts_keys_and_drops_transport_fields() -> None:
    body = {"b": 1, "a": {"y": "é", "x": [1, 2]}, "stream": True, "stream_options": {}}
    assert canonical(body) == '{"a":{"x":[1,2],"y":"é"},"b":1}'.encode()
    assert canonical({"n": 2**70}) == b'{"n":1180591620717411303424}'


# --- chat shape, lengths and usage ------------------------------------------------------------


def test_estimate_tokens_is_ceil_of_quarter_length() -> None:
    assert [estimate_tokens("x" * n) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]


def test_chat_shape(engine: Engine) -> None:
    out = engine.chat(chat_body(), created=1234)
    assert out["object"] == "chat.completion"
    assert out["created"] == 1234
    assert out["model"] == GPT
    [choice] = out["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    assert "tool_calls" not in choice["message"]
    assert 12 <= estimate_tokens(content_of(out)) <= 80


def test_prompt_tokens_follow_the_documented_formula(engine: Engine) -> None:
    messages = [
        {"role": "system", "content": "abcdefgh"},  # 2 tokens
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "abcde"},  # 2 tokens
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},  # 85
            ],
        },
        {"role": "assistant", "content": None},  # 0
    ]
    out = engine.chat({"model": GPT, "messages": messages}, created=0)
    assert out["usage"]["prompt_tokens"] == 3 + (4 + 2) + (4 + 2 + 85) + (4 + 0)


def test_natural_answers_stop_and_usage_is_honest(engine: Engine) -> None:
    for i in range(30):
        out = engine.chat(chat_body(user=f"u{i}"), created=0)
        usage = out["usage"]
        assert out["choices"][0]["finish_reason"] == "stop"
        assert usage["completion_tokens"] == estimate_tokens(content_of(out))
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("max_tokens", [1, 3, 7, 11])
def test_max_tokens_cuts_with_finish_reason_length(engine: Engine, max_tokens: int) -> None:
    out = engine.chat(chat_body(max_tokens=max_tokens), created=0)
    content = content_of(out)
    assert out["choices"][0]["finish_reason"] == "length"
    assert 0 < estimate_tokens(content) <= max_tokens
    assert out["usage"]["completion_tokens"] == estimate_tokens(content)
    natural = content_of(engine.chat(chat_body(), created=0))
    assert natural.startswith(content) and natural != content  # a cut, not another answer


def test_max_completion_tokens_is_an_alias(engine: Engine) -> None:
    out = engine.chat(chat_body(max_completion_tokens=2), created=0)
    assert out["choices"][0]["finish_reason"] == "length"
    assert estimate_tokens(content_of(out)) <= 2


def test_generous_max_tokens_leaves_finish_reason_stop(engine: Engine) -> None:
    out = engine.chat(chat_body(max_tokens=16384), created=0)
    assert out["choices"][0]["finish_reason"] == "stop"


def test_n_gives_distinct_choices_and_summed_usage(engine: Engine) -> None:
    out = engine.chat(chat_body(n=3), created=0)
    texts = [content_of(out, i) for i in range(3)]
    assert [c["index"] for c in out["choices"]] == [0, 1, 2]
    assert len(set(texts)) == 3
    assert out["usage"]["completion_tokens"] == sum(estimate_tokens(t) for t in texts)


def test_stop_string_cuts_before_it(engine: Engine) -> None:
    natural = content_of(engine.chat(chat_body(max_tokens=500), created=0))
    word = natural.split()[3]
    out = engine.chat(chat_body(max_tokens=500, stop=[word, "zzzz-never"]), created=0)
    assert content_of(out) == natural[: natural.index(word)]
    assert out["choices"][0]["finish_reason"] == "stop"
    single = engine.chat(chat_body(max_tokens=500, stop=word), created=0)
    assert content_of(single) == content_of(out)


def test_canned_text_replaces_the_answer_and_is_cut(engine: Engine) -> None:
    canned = "The canned answer is forty-two, said the scenario author, twice."
    whole = engine.chat(chat_body(), created=0, canned=canned)
    assert content_of(whole) == canned
    assert whole["usage"]["completion_tokens"] == estimate_tokens(canned)
    cut = engine.chat(chat_body(max_tokens=4), created=0, canned=canned)
    assert canned.startswith(content_of(cut))
    assert estimate_tokens(content_of(cut)) <= 4
    assert cut["choices"][0]["finish_reason"] == "length"
    via_infer = engine.infer(CHAT, chat_body(), created=0, canned=canned)
    assert content_of(via_infer) == canned


def test_generate_shape_and_usage(engine: Engine) -> None:
    out = engine.generate({"model": GPT, "prompt": "Write a haiku", "max_tokens": 3}, created=9)
    assert out["object"] == "text_completion"
    [choice] = out["choices"]
    assert choice["finish_reason"] == "length"
    assert out["usage"]["prompt_tokens"] == estimate_tokens("Write a haiku")
    assert out["usage"]["completion_tokens"] == estimate_tokens(choice["text"]) <= 3
    canned = engine.generate({"model": GPT, "prompt": "p"}, created=0, canned="Fixed.")
    assert canned["choices"][0]["text"] == "Fixed."


# --- streaming --------------------------------------------------------------------------------


def streamed_text(chunks: list[dict[str, Any]], index: int = 0) -> str:
    return "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in chunks
        if c["choices"] and c["choices"][0]["index"] == index
    )


@pytest.mark.parametrize("extra", [{}, {"max_tokens": 5}, {"stop": "e"}])
def test_stream_concatenates_to_the_plain_answer(engine: Engine, extra: dict[str, Any]) -> None:
    plain = engine.chat(chat_body(**extra), created=3)
    chunks = engine.chat_stream(chat_body(stream=True, **extra), created=3)
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == plain["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert streamed_text(chunks) == content_of(plain)
    if not extra:
        assert len(chunks) > 3  # a natural answer arrives in several pieces
    last = chunks[-1]["choices"][0]
    assert last["delta"] == {}
    assert last["finish_reason"] == plain["choices"][0]["finish_reason"]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])


def test_stream_include_usage_adds_a_final_usage_chunk(engine: Engine) -> None:
    body = chat_body(stream=True, stream_options={"include_usage": True})
    chunks = engine.chat_stream(body, created=3)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == engine.chat(body, created=3)["usage"]
    assert "usage" not in engine.chat_stream(chat_body(stream=True), created=3)[-1]


def test_stream_with_n_streams_each_choice(engine: Engine) -> None:
    plain = engine.chat(chat_body(n=2), created=0)
    chunks = engine.chat_stream(chat_body(n=2, stream=True), created=0)
    assert streamed_text(chunks, 0) == content_of(plain, 0)
    assert streamed_text(chunks, 1) == content_of(plain, 1)


def test_stream_tool_calls_come_in_one_delta(engine: Engine) -> None:
    body = chat_body(tools=[weather_tool()])
    plain = engine.chat(body, created=0)
    chunks = engine.chat_stream({**body, "stream": True}, created=0)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    [with_calls] = [d for d in deltas if "tool_calls" in d]
    expected = plain["choices"][0]["message"]["tool_calls"]
    assert with_calls["tool_calls"] == [{"index": 0, **expected[0]}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


# --- tools and JSON output --------------------------------------------------------------------


def weather_tool(name: str = "get_weather") -> dict[str, Any]:
    parameters = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city"],
    }
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


SCHEMAS: dict[str, dict[str, Any]] = {
    "nested objects": {
        "type": "object",
        "properties": {
            "user": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "age": {"type": "integer", "minimum": 0, "maximum": 120},
                    "address": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                        "required": ["city"],
                    },
                },
                "required": ["name", "age", "address"],
                "additionalProperties": False,
            }
        },
        "required": ["user"],
    },
    "arrays with bounds": {
        "type": "object",
        "properties": {
            "tags": {
                "type": "array",
                "items": {"enum": ["red", "green", "blue", "cyan"]},
                "minItems": 2,
                "maxItems": 3,
                "uniqueItems": True,
            },
            "rows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"k": {"type": "string"}},
                    "required": ["k"],
                },
                "minItems": 3,
                "maxItems": 5,
            },
            "point": {
                "type": "array",
                "prefixItems": [{"type": "number"}, {"type": "number"}],
                "items": False,
                "minItems": 2,
            },
        },
        "required": ["tags", "rows", "point"],
    },
    "enums": {
        "type": "object",
        "properties": {
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "level": {"type": "integer", "enum": [1, 2, 3]},
            "mixed": {"enum": ["a", 1, None, True]},
        },
        "required": ["unit", "level", "mixed"],
    },
    "exclusive bounds": {
        "type": "object",
        "properties": {
            "p": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "q": {"type": "integer", "exclusiveMinimum": 5, "exclusiveMaximum": 7},
            "r": {"type": "integer", "multipleOf": 5, "minimum": 1, "maximum": 12},
            "s": {"type": "number", "minimum": -3.5, "maximum": -3.25},
            "price": {"type": "number", "multipleOf": 0.01, "minimum": 0, "maximum": 100},
        },
        "required": ["p", "q", "r", "s", "price"],
    },
    "anyOf": {
        "type": "object",
        "properties": {
            "id": {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "integer"}]},
            "a": {"type": "string"},
            "b": {"type": "string"},
        },
        "anyOf": [{"required": ["a"]}, {"required": ["b"]}],
        "required": ["id"],
    },
    "oneOf": {
        "type": "object",
        "properties": {
            "shape": {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {"kind": {"const": "circle"}, "r": {"type": "number"}},
                        "required": ["kind", "r"],
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "properties": {"kind": {"const": "square"}, "side": {"type": "number"}},
                        "required": ["kind", "side"],
                        "additionalProperties": False,
                    },
                ]
            },
            "amount": {"oneOf": [{"type": "number"}, {"type": "integer"}]},
            "label": {"oneOf": [{"type": "string", "maxLength": 4}, {"type": "string"}]},
        },
        "required": ["shape", "amount", "label"],
    },
    "allOf": {
        "$defs": {
            "base": {
                "type": "object",
                "properties": {"id": {"type": "integer", "minimum": 1}},
                "required": ["id"],
            }
        },
        "allOf": [
            {"$ref": "#/$defs/base"},
            {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]},
            {"properties": {"id": {"maximum": 3}}},
        ],
    },
    "$ref and $defs": {
        "$defs": {
            "address": {
                "type": "object",
                "properties": {
                    "street": {"type": "string"},
                    "zip": {"type": "string", "minLength": 5, "maxLength": 5},
                },
                "required": ["street", "zip"],
                "additionalProperties": False,
            }
        },
        "type": "object",
        "properties": {"home": {"$ref": "#/$defs/address"}, "work": {"$ref": "#/$defs/address"}},
        "required": ["home", "work"],
    },
    "definitions (draft 7 style)": {
        "definitions": {"money": {"type": "number", "minimum": 0, "maximum": 1000}},
        "type": "object",
        "properties": {"total": {"$ref": "#/definitions/money"}},
        "required": ["total"],
    },
    "recursive tree": {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2},
                },
                "required": ["name", "children"],
            }
        },
        "$ref": "#/$defs/node",
    },
    "formats": {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "email": {"type": "string", "format": "email"},
            "site": {"type": "string", "format": "uri"},
            "id": {"type": "string", "format": "uuid"},
            "host": {"type": "string", "format": "ipv4"},
        },
        "required": ["when", "day", "email", "site", "id", "host"],
    },
    "nullable type lists": {
        "type": "object",
        "properties": {
            "note": {"type": ["string", "null"]},
            "count": {"type": ["integer", "null"], "minimum": 1},
            "flag": {"type": ["boolean", "null"]},
        },
        "required": ["note", "count", "flag"],
    },
    "additionalProperties false": {
        "type": "object",
        "properties": {"a": {"type": "boolean"}, "b": {"type": "null"}, "c": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    },
    "const": {
        "type": "object",
        "properties": {"version": {"const": 2}, "kind": {"type": "string", "const": "report"}},
        "required": ["version", "kind"],
    },
    "string lengths": {
        "type": "object",
        "properties": {
            "code": {"type": "string", "minLength": 8, "maxLength": 8},
            "title": {"type": "string", "maxLength": 3},
            "essay": {"type": "string", "minLength": 60},
        },
        "required": ["code", "title", "essay"],
    },
    "map with minProperties": {
        "type": "object",
        "additionalProperties": {"type": "integer", "minimum": 0},
        "minProperties": 2,
        "maxProperties": 4,
    },
    "strict structured output": {
        "type": "object",
        "properties": {
            "steps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"explanation": {"type": "string"}, "output": {"type": "string"}},
                    "required": ["explanation", "output"],
                    "additionalProperties": False,
                },
            },
            "final_answer": {"type": "string"},
        },
        "required": ["steps", "final_answer"],
        "additionalProperties": False,
    },
}


def assert_valid(schema: dict[str, Any], value: Any) -> None:
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [e.message for e in validator.iter_errors(value)]
    assert not errors, (value, errors)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_tool_call_arguments_validate_against_the_schema(engine: Engine, name: str) -> None:
    schema = SCHEMAS[name]
    tool = {"type": "function", "function": {"name": "act", "parameters": schema}}
    for variant in range(8):
        out = engine.chat(chat_body(tools=[tool], user=f"v{variant}"), created=0)
        [choice] = out["choices"]
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["content"] is None
        [call] = choice["message"]["tool_calls"]
        assert call["type"] == "function" and call["function"]["name"] == "act"
        assert call["id"].startswith("call_")
        assert_valid(schema, json.loads(call["function"]["arguments"]))


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_json_schema_response_format_validates(engine: Engine, name: str) -> None:
    schema = SCHEMAS[name]
    fmt = {"type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": True}}
    for variant in range(8):
        out = engine.chat(
            chat_body(response_format=fmt, user=f"v{variant}", max_tokens=1), created=0
        )
        assert out["choices"][0]["finish_reason"] == "stop"  # JSON is never cut
        assert_valid(schema, json.loads(content_of(out)))
        assert out["usage"]["completion_tokens"] == estimate_tokens(content_of(out))


def test_json_object_response_format_parses(engine: Engine) -> None:
    out = engine.chat(chat_body(response_format={"type": "json_object"}), created=0)
    value = json.loads(content_of(out))
    assert isinstance(value, dict) and value
    text = engine.chat(chat_body(response_format={"type": "text"}), created=0)
    assert not content_of(text).startswith("{")


def test_tool_usage_counts_the_call(engine: Engine) -> None:
    out = engine.chat(chat_body(tools=[weather_tool()]), created=0)
    function = out["choices"][0]["message"]["tool_calls"][0]["function"]
    expected = estimate_tokens(function["name"] + function["arguments"])
    assert out["usage"]["completion_tokens"] == expected


def test_tool_choice_controls_which_tool_is_called(engine: Engine) -> None:
    tools = [weather_tool("alpha"), weather_tool("beta"), weather_tool("gamma")]
    for name in ("alpha", "beta", "gamma"):
        choice = {"type": "function", "function": {"name": name}}
        out = engine.chat(chat_body(tools=tools, tool_choice=choice), created=0)
        assert out["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == name
    auto = engine.chat(chat_body(tools=tools, tool_choice="required"), created=0)
    assert auto["choices"][0]["finish_reason"] == "tool_calls"
    none = engine.chat(chat_body(tools=tools, tool_choice="none"), created=0)
    assert none["choices"][0]["finish_reason"] == "stop"
    assert "tool_calls" not in none["choices"][0]["message"]


def test_canned_text_wins_over_tools(engine: Engine) -> None:
    out = engine.chat(chat_body(tools=[weather_tool()]), created=0, canned="Plain words.")
    assert content_of(out) == "Plain words."


# --- validation -------------------------------------------------------------------------------


def test_unknown_model_is_model_not_found(engine: Engine) -> None:
    with pytest.raises(ModelNotFound) as excinfo:
        engine.infer(CHAT, {"model": "nope/nothing", "messages": []}, created=0)
    assert excinfo.value.status == 404
    assert excinfo.value.code == "MODEL_NOT_FOUND"


def test_max_tokens_over_the_model_limit(engine: Engine) -> None:
    with pytest.raises(ValidationError) as excinfo:
        engine.chat(chat_body(max_tokens=16385), created=0)
    [detail] = validation_details(excinfo)
    assert detail["field"] == "max_tokens"
    assert "16384" in detail["message"]


@pytest.mark.parametrize(
    ("route", "model"),
    [(CHAT, SMALL), (EMBED, GPT), (IMAGES, GPT), (GENERATE, "openai/dall-e-2")],
)
def test_wrong_modality_names_route_and_modality(engine: Engine, route: str, model: str) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "x"}], "prompt": "p"}
    body["input"] = "x"
    with pytest.raises(ValidationError) as excinfo:
        engine.infer(route, body, created=0)
    [detail] = validation_details(excinfo)
    assert detail["field"] == "model"
    assert route in detail["message"]
    assert engine.catalogue.get(model).modality in detail["message"]


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        (CHAT, {"model": GPT}, "messages"),
        (CHAT, {"model": GPT, "messages": []}, "messages"),
        (CHAT, {"model": GPT, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        (CHAT, {"model": GPT, "messages": ["hi"]}, "messages[0]"),
        (CHAT, {"messages": [{"role": "user", "content": "x"}]}, "model"),
        (CHAT, {"model": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        (CHAT, chat_body(max_tokens=0), "max_tokens"),
        (CHAT, chat_body(max_tokens=True), "max_tokens"),
        (CHAT, chat_body(max_tokens=2.5), "max_tokens"),
        (CHAT, chat_body(temperature=2.5), "temperature"),
        (CHAT, chat_body(temperature="hot"), "temperature"),
        (CHAT, chat_body(top_p=1.5), "top_p"),
        (CHAT, chat_body(n=0), "n"),
        (CHAT, chat_body(n=11), "n"),
        (CHAT, chat_body(n=True), "n"),
        (CHAT, chat_body(stop=["a", "b", "c", "d", "e"]), "stop"),
        (CHAT, chat_body(stop=3), "stop"),
        (CHAT, chat_body(tools={"type": "function"}), "tools"),
        (CHAT, chat_body(tools=[{"type": "retrieval"}]), "tools[0]"),
        (CHAT, chat_body(tools=[weather_tool()], tool_choice="sometimes"), "tool_choice"),
        (
            CHAT,
            chat_body(
                tools=[weather_tool()],
                tool_choice={"type": "function", "function": {"name": "missing"}},
            ),
            "tool_choice",
        ),
        (CHAT, chat_body(tool_choice="required"), "tool_choice"),
        (CHAT, chat_body(response_format={"type": "yaml"}), "response_format"),
        (CHAT, chat_body(response_format={"type": "json_schema"}), "response_format.json_schema"),
        (GENERATE, {"model": GPT}, "prompt"),
        (GENERATE, {"model": GPT, "prompt": ["a", "b"]}, "prompt"),
        (EMBED, {"model": SMALL}, "input"),
        (EMBED, {"model": SMALL, "input": ""}, "input"),
        (EMBED, {"model": SMALL, "input": []}, "input"),
        (EMBED, {"model": SMALL, "input": [[1, 2, 3]]}, "input"),
        (EMBED, {"model": SMALL, "input": "x", "dimensions": 1537}, "dimensions"),
        (EMBED, {"model": SMALL, "input": "x", "dimensions": 0}, "dimensions"),
        (EMBED, {"model": SMALL, "input": "x", "encoding_format": "hex"}, "encoding_format"),
        (IMAGES, {"model": "openai/dall-e-3"}, "prompt"),
        (IMAGES, {"model": "openai/dall-e-3", "prompt": "  "}, "prompt"),
        (IMAGES, {"model": "openai/dall-e-3", "prompt": "x", "n": 11}, "n"),
        (IMAGES, {"model": "openai/dall-e-3", "prompt": "x", "size": "10x10"}, "size"),
        (IMAGES, {"model": "openai/dall-e-3", "prompt": "x", "quality": "ultra"}, "quality"),
        (IMAGES, {"model": "openai/dall-e-3", "prompt": "x", "style": "noir"}, "style"),
        (
            IMAGES,
            {"model": "openai/dall-e-3", "prompt": "x", "response_format": "gif"},
            "response_format",
        ),
    ],
)
def test_invalid_bodies_name_the_field(
    engine: Engine, route: str, body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as excinfo:
        engine.infer(route, body, created=0)
    assert field in [d["field"] for d in validation_details(excinfo)]


@pytest.mark.parametrize("body", [None, [], "text", 3])
def test_body_must_be_an_object(engine: Engine, body: Any) -> None:
    with pytest.raises(ValidationError) as excinfo:
        engine.validate(CHAT, body)
    assert validation_details(excinfo)[0]["field"] == "body"


def test_several_errors_are_reported_together(engine: Engine) -> None:
    with pytest.raises(ValidationError) as excinfo:
        engine.chat(chat_body(temperature=9, top_p=9, n=99), created=0)
    fields = {d["field"] for d in validation_details(excinfo)}
    assert fields == {"temperature", "top_p", "n"}


def test_unknown_fields_are_ignored_and_validate_returns_the_model(engine: Engine) -> None:
    model = engine.validate(CHAT, chat_body(frobnicate={"x": 1}, seed=3, logprobs=False))
    assert model.slug == GPT


def test_unknown_route(engine: Engine) -> None:
    with pytest.raises(RouteNotFound):
        engine.infer("/v1/inference/audio", {"model": GPT}, created=0)


# --- embeddings -------------------------------------------------------------------------------


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def embed_one(engine: Engine, text: str, model: str = SMALL, **extra: Any) -> list[float]:
    out = engine.embed({"model": model, "input": text, **extra}, created=0)
    vector = out["data"][0]["embedding"]
    assert isinstance(vector, list)
    return vector


def test_embedding_shape_and_usage(engine: Engine) -> None:
    out = engine.embed({"model": SMALL, "input": ["one two", "three"]}, created=0)
    assert out["object"] == "list" and out["model"] == SMALL
    assert [(d["object"], d["index"]) for d in out["data"]] == [("embedding", 0), ("embedding", 1)]
    tokens = estimate_tokens("one two") + estimate_tokens("three")
    assert out["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    assert Engine.usage(EMBED, out) == (tokens, 0)


def test_each_embedding_model_gives_unit_vectors_of_its_dimension(
    engine: Engine, catalogue: Catalogue
) -> None:
    models = catalogue.list(modality="embedding")
    assert len(models) >= 4
    for model in models:
        assert model.dimensions is not None
        for width in (model.dimensions, 256, 1):
            vector = embed_one(engine, "Unit vectors, please!", model.slug, dimensions=width)
            assert len(vector) == width
            assert math.isclose(math.hypot(*vector), 1.0, abs_tol=1e-6)
            assert all(isinstance(v, float) for v in vector)


def test_equal_text_equal_vector(engine: Engine) -> None:
    out = engine.embed({"model": SMALL, "input": ["same text", "other", "same text"]}, created=0)
    data = out["data"]
    assert data[0]["embedding"] == data[2]["embedding"] != data[1]["embedding"]
    assert embed_one(engine, "same text") == data[0]["embedding"]


def test_shared_words_are_closer(engine: Engine) -> None:
    for model in (SMALL, "openai/text-embedding-3-large", "google/text-embedding-004"):
        base = embed_one(engine, "the cat sat on the mat", model)
        near = embed_one(engine, "the cat sat", model)
        far = embed_one(engine, "quantum chromodynamics lecture", model)
        assert cosine(base, near) > cosine(base, far) + 0.3
        assert abs(cosine(base, far)) < 0.2
    # Same words in another order still differ a little (the whole-text component).
    ab, ba = embed_one(engine, "red blue"), embed_one(engine, "blue red")
    assert ab != ba and cosine(ab, ba) > 0.9


def test_embedding_depends_on_the_seed(catalogue: Catalogue) -> None:
    one = embed_one(Engine(1, catalogue), "hello world")
    two = embed_one(Engine(2, catalogue), "hello world")
    assert abs(cosine(one, two)) < 0.2


def test_base64_encoding_format_is_float32(engine: Engine) -> None:
    floats = embed_one(engine, "pack me")
    out = engine.embed({"model": SMALL, "input": "pack me", "encoding_format": "base64"}, created=0)
    raw = base64.b64decode(out["data"][0]["embedding"])
    unpacked = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert len(unpacked) == len(floats)
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(unpacked, floats, strict=True))


# --- usage helper -----------------------------------------------------------------------------


def test_usage_helper_reads_each_shape(engine: Engine) -> None:
    chat = engine.chat(chat_body(), created=0)
    usage = chat["usage"]
    assert Engine.usage(CHAT, chat) == (usage["prompt_tokens"], usage["completion_tokens"])
    text = engine.generate({"model": GPT, "prompt": "abc"}, created=0)
    assert Engine.usage(GENERATE, text) == (1, text["usage"]["completion_tokens"])


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "minLength": 10**12},
        {"type": "array", "minItems": 10**9, "items": {"type": "integer"}},
        {"type": "object", "minProperties": 10**9},
        {"type": "string", "pattern": "^a{1000000000}$"},
        {"type": "string", "pattern": "((a{1000}){1000}){1000}", "minLength": 10**9},
    ],
)
def test_a_schema_that_asks_for_too_much_is_answered_at_once(schema: dict[str, Any]) -> None:
    """Caps keep a hostile schema from hanging a live call or the batch worker."""
    engine = Engine(1, load_catalogue())
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    answer = engine.infer(CHAT, {**body, "response_format": fmt}, created=1)
    assert len(answer["choices"][0]["message"]["content"]) < 100_000


def test_the_word_list_read_from_fakers_source_is_the_one_faker_imports() -> None:
    """`words()` reads Faker's English lorem words from the provider's source, not by importing
    Faker (~0.15 s); the import is its fallback. Both give the same tuple."""
    from emulator.inference import fakestrings

    from_source = fakestrings._words_from_source()
    assert from_source is not None
    assert from_source == fakestrings._words_from_faker()
    assert fakestrings.words() == from_source


def test_the_shipped_corpus_is_the_drawn_one() -> None:
    """Seed 0's sentences ship drawn (a first answer need not draw them); they apply to the
    Faker installed and are exactly what drawing them gives. If this fails after a change to
    `corpus.build` or to Faker's words, write the file again:
    `python -m emulator.inference.corpus`."""
    from emulator.inference import corpus

    shipped = corpus.read_shipped()
    assert shipped is not None, "the shipped corpus does not apply to the Faker installed"
    assert shipped == corpus.build(corpus.SHIPPED_SEED)
    assert corpus.corpus(corpus.SHIPPED_SEED) == shipped
    assert corpus.corpus(1) == corpus.build(1) != shipped


def test_a_shipped_corpus_for_other_words_is_not_used(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drawn from words other than the installed ones (another Faker), or damaged, the shipped
    file is passed over and the corpus drawn: answers never depend on which was used."""
    from emulator.inference import corpus

    other = tmp_path / "lorem.py"
    other.write_text("word_list = ('a', 'b')\n")
    monkeypatch.setattr(corpus, "lorem_source", lambda: other)
    assert corpus.read_shipped() is None
    assert corpus.corpus(0) == corpus.build(0)
    monkeypatch.undo()
    damaged = tmp_path / "corpus-0.txt.gz"
    damaged.write_bytes(corpus.SHIPPED.read_bytes()[:1000])
    monkeypatch.setattr(corpus, "SHIPPED", damaged)
    assert corpus.read_shipped() is None
