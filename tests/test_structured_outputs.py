"""JSON answers to realistic schemas validate: 1,000 chat answers over the corpus in tests/schemas.

Each schema is one a client might send as `response_format` (or as a tool's parameters): the
JSON Schema subset OpenAI's structured outputs accept (`pattern`, `format`, `enum`, `const`,
`anyOf`/`oneOf`, `$ref`/`$defs` with recursion, numeric and length bounds, `required`,
`additionalProperties: false`, nullable type lists). Every answer goes through the engine's chat
and is checked by `jsonschema` with format checking on for every format the generator claims.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import Harness
from jsonschema import Draft202012Validator, validators
from jsonschema.protocols import Validator

from emulator.inference.catalogue import load_catalogue
from emulator.inference.engine import Engine

SCHEMAS = {
    path.stem: json.loads(path.read_text(encoding="utf-8"))
    for path in sorted((Path(__file__).parent / "schemas").glob("*.json"))
}
ANSWERS = 1000
#: the formats the generator claims; the test fails if jsonschema would not check one of them
CLAIMED_FORMATS = ("date-time", "date", "time", "email", "uri", "uuid", "ipv4", "ipv6", "hostname")
# The latest draft's checker for every schema: a draft-07 one has no "uuid". It checks date-time,
# time, uri and hostname only with the test extra's rfc3339-validator, rfc3986-validator and fqdn.
FORMATS = Draft202012Validator.FORMAT_CHECKER


def validator(schema: dict[str, Any]) -> Validator:
    cls = validators.validator_for(schema)  # the draft the schema names, 2020-12 otherwise
    cls.check_schema(schema)
    return cls(schema, format_checker=FORMATS)


def chat(engine: Engine, name: str, index: int, **extra: Any) -> dict[str, Any]:
    body = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": f"Extract the {name} from document {index}."}],
        **extra,
    }
    answer: dict[str, Any] = engine.chat(body, created=0)
    return answer


def response_format(name: str) -> dict[str, Any]:
    schema = SCHEMAS[name]
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(7, load_catalogue())


@pytest.fixture(scope="module")
def answers(engine: Engine) -> list[tuple[str, Any]]:
    """(schema name, parsed answer) for ANSWERS chat requests, the corpus round-robin."""
    names = list(SCHEMAS)
    out = []
    for index in range(ANSWERS):
        name = names[index % len(names)]
        answer = chat(engine, name, index, response_format=response_format(name))
        [choice] = answer["choices"]
        assert choice["finish_reason"] == "stop"
        out.append((name, json.loads(choice["message"]["content"])))
    return out


def test_the_corpus_is_large_and_every_claimed_format_is_checked() -> None:
    assert len(SCHEMAS) >= 20
    assert set(CLAIMED_FORMATS) <= set(FORMATS.checkers), "install the test extra"
    used = json.dumps(list(SCHEMAS.values()))
    for keyword in ('"pattern"', '"oneOf"', '"anyOf"', '"$ref": "#"', '"const"', '"multipleOf"'):
        assert keyword in used, keyword
    assert all(f'"format": "{fmt}"' in used for fmt in CLAIMED_FORMATS)


def test_every_answer_validates(answers: list[tuple[str, Any]]) -> None:
    checkers = {name: validator(schema) for name, schema in SCHEMAS.items()}
    failures = []
    for name, value in answers:
        errors = [f"{e.json_path}: {e.message}" for e in checkers[name].iter_errors(value)]
        if errors:
            failures.append((name, errors[:3]))
    assert not failures, failures[:5]
    assert len(answers) == ANSWERS
    assert Counter(name for name, _ in answers).keys() == SCHEMAS.keys()


def test_answers_vary_across_requests(answers: list[tuple[str, Any]]) -> None:
    for name in SCHEMAS:
        values = [json.dumps(v, sort_keys=True) for n, v in answers if n == name]
        assert len(set(values)) == len(values), name  # no two requests got the same answer


def test_every_branch_and_null_shows_up(answers: list[tuple[str, Any]]) -> None:
    """oneOf branches, nullable fields and enums are all drawn, not only the first option."""
    methods = Counter(v["payment"]["method"] for n, v in answers if n == "order")
    assert methods.keys() == {"card", "bank_transfer", "paypal"}
    kinds = Counter(a["kind"] for n, v in answers if n == "survey_response" for a in v["answers"])
    assert kinds.keys() == {"rating", "choice", "text", "multi"}
    recurrences = {v["recurrence"] for n, v in answers if n == "calendar_event"}
    assert None in recurrences and len(recurrences) >= 4
    seats = [p["seat"] for n, v in answers if n == "flight_booking" for p in v["passengers"]]
    assert None in seats and any(seats)


def test_recursive_schemas_nest_and_end(answers: list[tuple[str, Any]]) -> None:
    def depth(node: dict[str, Any]) -> int:
        return 1 + max((depth(child) for child in node["children"]), default=0)

    trees = [v for n, v in answers if n == "category_tree"]
    assert max(map(depth, trees)) >= 2
    components = [v for n, v in answers if n == "ui_component"]  # recursive through "#"
    assert max(map(depth, components)) >= 2


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_tool_call_arguments_validate_too(engine: Engine, name: str) -> None:
    tool = {"type": "function", "function": {"name": "record", "parameters": SCHEMAS[name]}}
    check = validator(SCHEMAS[name])
    for index in range(4):
        answer = chat(engine, name, index, tools=[tool], tool_choice="required")
        [call] = answer["choices"][0]["message"]["tool_calls"]
        arguments = json.loads(call["function"]["arguments"])
        assert not [e.message for e in check.iter_errors(arguments)], arguments


@pytest.mark.parametrize(
    "pattern",
    ["(?i)^abc$", r"^\p{Lu}+$", "(unclosed", "[z-a]", "a{3,1}", "(?(1)a|b)"],
    ids=["inline-flag", "unicode-property", "unclosed", "bad-range", "min-over-max", "cond"],
)
def test_a_pattern_the_generator_cannot_read_still_gets_an_answer(
    engine: Engine, pattern: str
) -> None:
    """Documented fallback: the string is drawn as if there were no pattern."""
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": pattern, "maxLength": 12}},
        "required": ["code"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    answer = chat(engine, "code", 0, response_format=fmt)
    value = json.loads(answer["choices"][0]["message"]["content"])
    assert isinstance(value["code"], str) and 0 < len(value["code"]) <= 12


async def test_over_http_an_unreadable_pattern_is_still_a_200(emu: Harness) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": "(?i)(x"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    resp = await emu.client.post("/v1/inference/chat", json={**body, "response_format": fmt})
    assert resp.status_code == 200, resp.text
    content = resp.json()["data"]["choices"][0]["message"]["content"]
    assert isinstance(json.loads(content)["a"], str)
