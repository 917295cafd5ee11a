"""The live route's fast paths answer exactly as the general paths they shortcut.

* `checks._plain_chat_model` (the one-pass check for plain chat bodies) accepts only what the full
  validation accepts, with the same model, and the engine answers the same either way: a
  differential test over thousands of seeded, generated chat bodies.
* `inference.live.Live`'s memo (answers by exact request bytes): one engine call per repeated
  chat or generate body, the current `created` on every answer, never for embed or images, never
  without the bytes, never while the tenant's scenario injects faults or canned text, bounded by
  `MEMO_SIZE` (oldest dropped first), and cleared by a reseed.
* `api.http.JSON`'s own header shortcut gives exactly the headers Starlette would derive.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
import pytest
from conftest import KEY, Harness
from starlette.responses import JSONResponse, Response

from emulator.api.http import JSON
from emulator.clock import Clock
from emulator.endpoints import CHAT, EMBED, ENDPOINTS, GENERATE, IMAGES
from emulator.errors import EmulatorError, ModelNotFound, ValidationError
from emulator.inference import checks
from emulator.inference.catalogue import Catalogue, load_catalogue
from emulator.inference.checks import check_request
from emulator.inference.engine import Engine
from emulator.inference.live import MEMO_SIZE, SEEN_SIZE, Live
from emulator.records import Model
from emulator.scenario.registry import Scenarios

SEED = 42
START = datetime(2026, 1, 1, tzinfo=UTC)
T0 = int(START.timestamp())
CATALOGUE = load_catalogue()
CHAT_MODELS = [m.slug for m in CATALOGUE.list("chat")]
EMBEDDING_MODEL = CATALOGUE.list("embedding")[0].slug
IMAGE_MODEL = CATALOGUE.list("image")[0].slug
UNKNOWN_MODEL = "acme/no-such-model"
BODIES = 4000


# --- 1. the plain-chat fast check against the full validation -----------------------------------

# Each option: values valid on their own (for every chat model; tool_choice "required" and a named
# function also need the tool), and values never valid. `None` is an explicit JSON null, which
# both paths read as "not given".
TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
OPTIONS: dict[str, tuple[list[Any], list[Any]]] = {
    "max_tokens": (
        [1, 7, 300, 4096, None],
        [0, -1, -500, 10**9, 2**70, True, False, 1.0, 16.5, "100"],
    ),
    "max_completion_tokens": ([1, 64, 4096, None], [0, -3, 10**12, True, 2.0, "64", [64]]),
    "temperature": (
        [0, 0.0, 0.7, 1, 2, 2.0, None],
        [-0.1, 2.01, 3, 10**30, True, False, "0.5", [1]],
    ),
    "top_p": ([0, 0.5, 1, 1.0, None], [-1, 1.5, True, "1", {}]),
    "n": ([1, 2, 10, None], [0, -2, 11, 100, True, 2.0, "2"]),
    "stop": (["END", "\n", ["a", "b"], ["x"] * 4, None], ["", [""], ["a"] * 5, ["x", 1], 1, {}]),
    "stream": ([False, True], [None, "true", 0, 1, []]),
    "stream_options": (
        [{"include_usage": True}, {"include_usage": False}, {}, None],
        [{"include_usage": "yes"}, {"include_usage": None}, [], "usage", True],
    ),
    "tools": ([[TOOL], [], None], ["get_weather", {}, [{"type": "function"}], [TOOL, "x"], [1]]),
    "tool_choice": (
        [
            "auto",
            "none",
            None,
            "required",
            {"type": "function", "function": {"name": "get_weather"}},
        ],
        ["bogus", 1, {"function": {"name": "nope"}}, {"type": "function"}, ["auto"]],
    ),
    "response_format": (
        [
            {"type": "text"},
            {"type": "json_object"},
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            None,
        ],
        [{"type": "bad"}, {"type": "json_schema"}, "json", {}, [{"type": "text"}]],
    ),
}
UNKNOWN_KEYS: list[tuple[str, Any]] = [
    ("user", "user-17"),
    ("seed", 5),
    ("metadata", {"trace": [1, 2, 3]}),
    ("x_custom", None),
    ("logit_bias", {"50256": -100}),
    ("presence_penalty", "not checked"),
]
# Roles are wrong in hashable ways only: an unhashable role is a known crash, tested below.
BAD_ROLES: list[Any] = ["robot", "", "USER", 1, None, True]
BAD_CONTENT: list[Any] = [1, 2.5, True, {"text": "hi"}]
NOT_MESSAGES: list[Any] = [[], None, "hello", {"role": "user", "content": "hi"}, 0]
NOT_A_BODY: list[Any] = [[], "a body", None, 1, [{"model": CHAT_MODELS[0]}]]
TEXTS = ["Hi.", "Tell me about the weather in Utrecht.", "", "Résumé: ünïcode ✓ 日本語", "x" * 300]


def _content(rng: random.Random) -> Any:
    kind = rng.random()
    if kind < 0.6:
        return rng.choice(TEXTS)
    if kind < 0.8:
        parts: list[Any] = [{"type": "text", "text": rng.choice(TEXTS)}]
        if rng.random() < 0.4:
            parts.append({"type": "image_url", "image_url": {"url": "https://example.test/a.png"}})
        if rng.random() < 0.2:
            parts.append(rng.choice(["loose text", 7, {"type": "text"}]))
        return parts
    if kind < 0.97:
        return None
    return rng.choice(BAD_CONTENT)


def _message(rng: random.Random) -> Any:
    if rng.random() < 0.015:
        return rng.choice(["hi", 1, None, [], ["user", "hi"]])
    role = rng.choice(["user", "user", "user", "system", "assistant", "developer", "tool"])
    message: dict[str, Any] = {"role": role, "content": _content(rng)}
    if role == "tool":
        message["tool_call_id"] = "call_1"
    if rng.random() < 0.015:
        del message["role"]
    elif rng.random() < 0.015:
        message["role"] = rng.choice(BAD_ROLES)
    if rng.random() < 0.05:
        del message["content"]
    if rng.random() < 0.05:
        message["name"] = "someone"
    return message


def _model(rng: random.Random) -> tuple[bool, Any]:
    """(whether the key is given, its value)."""
    kind = rng.random()
    if kind < 0.8:
        return True, rng.choice(CHAT_MODELS)
    if kind < 0.86:
        return True, UNKNOWN_MODEL
    if kind < 0.92:
        return True, EMBEDDING_MODEL
    if kind < 0.94:
        return True, IMAGE_MODEL
    if kind < 0.97:
        return False, None
    return True, rng.choice(["", 1, None, [CHAT_MODELS[0]], {"slug": CHAT_MODELS[0]}])


def chat_body(rng: random.Random) -> Any:
    """A chat body: mostly well-formed, with every option sometimes given, sometimes wrong."""
    if rng.random() < 0.02:
        return rng.choice(NOT_A_BODY)
    body: dict[str, Any] = {}
    given, model = _model(rng)
    if given:
        body["model"] = model
    if rng.random() < 0.05:
        body["messages"] = rng.choice(NOT_MESSAGES)
    elif rng.random() > 0.01:  # else no messages at all
        body["messages"] = [_message(rng) for _ in range(rng.randint(1, 4))]
    for key, (good, bad) in OPTIONS.items():
        if rng.random() < 0.18:
            body[key] = rng.choice(bad if rng.random() < 0.2 else good)
    for key, value in UNKNOWN_KEYS:
        if rng.random() < 0.08:
            body[key] = value
    if rng.random() < 0.5:  # key order does not matter to either path
        items = list(body.items())
        rng.shuffle(items)
        body = dict(items)
    return body


Outcome = tuple[Any, ...]


def outcome(call: Callable[[], Any]) -> Outcome:
    """What a call gives: its value, or the domain error it raises (any other exception is a
    bug and propagates)."""
    try:
        return ("ok", call())
    except EmulatorError as exc:
        return ("error", type(exc), exc.code, exc.message, exc.details)


def run_all(bodies: list[Any], engine: Engine) -> tuple[list[Outcome], list[Outcome]]:
    checked = [outcome(partial(check_request, CHAT, b, CATALOGUE)) for b in bodies]
    answered = [outcome(partial(engine.infer, CHAT, b, created=0)) for b in bodies]
    return checked, answered


def test_the_plain_chat_check_accepts_only_what_the_full_checks_accept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(20260101)
    bodies = [chat_body(rng) for _ in range(BODIES)]
    engine = Engine(SEED, CATALOGUE)
    fast: list[Model | None] = [checks._plain_chat_model(b, CATALOGUE) for b in bodies]
    full_checks = {"calls": 0}
    check_chat = checks._CHECKS[CHAT]

    def counting_check_chat(body: dict[str, Any], model: Model, errs: checks.Errors) -> None:
        full_checks["calls"] += 1
        check_chat(body, model, errs)

    monkeypatch.setitem(checks._CHECKS, CHAT, counting_check_chat)
    with_fast = run_all(bodies, engine)
    calls_with_fast = full_checks["calls"]

    bypassed = {"calls": 0}

    def no_fast_path(body: Any, catalogue: Catalogue) -> None:
        bypassed["calls"] += 1

    monkeypatch.setattr(checks, "_plain_chat_model", no_fast_path)
    full_checks["calls"] = 0
    without_fast = run_all(bodies, engine)

    accepted = sum(model is not None for model in fast)
    # The bypass was in force for every check, and the full checks ran once more (in check_request
    # and in the engine) for exactly each body the fast check would have taken.
    assert bypassed["calls"] == 2 * len(bodies)
    assert full_checks["calls"] - calls_with_fast == 2 * accepted

    for body, model, checked, full in zip(bodies, fast, with_fast[0], without_fast[0], strict=True):
        if model is not None:
            assert full == ("ok", model), body
            assert full[1] is model, body
        assert checked == full, body
    for body, answer, full_answer in zip(bodies, with_fast[1], without_fast[1], strict=True):
        assert answer == full_answer, body

    # Not vacuous: the fast check takes a healthy share, and the generator reaches every outcome.
    kinds = [
        "fast" if model is not None else "full" if full[0] == "ok" else full[1].__name__
        for model, full in zip(fast, without_fast[0], strict=True)
    ]
    assert accepted / len(bodies) > 0.20, accepted
    assert kinds.count("full") > 0.05 * len(bodies)  # valid, but not plain (tools, stop lists...)
    assert kinds.count(ValidationError.__name__) > 0.2 * len(bodies)
    assert kinds.count(ModelNotFound.__name__) > 0.02 * len(bodies)
    assert set(kinds) == {"fast", "full", ValidationError.__name__, ModelNotFound.__name__}
    answers = [a[1] for a in with_fast[1] if a[0] == "ok"]
    assert any(c["message"].get("tool_calls") for a in answers for c in a["choices"])
    assert any(c["finish_reason"] == "length" for a in answers for c in a["choices"])


@pytest.mark.parametrize("role", [["user"], {"name": "user"}])
def test_an_unhashable_role_is_a_validation_error(role: Any) -> None:
    body = {"model": CHAT_MODELS[0], "messages": [{"role": role, "content": "hi"}]}
    with pytest.raises(ValidationError):
        check_request(CHAT, body, CATALOGUE)


# --- 2. the live answer memo --------------------------------------------------------------------

FAULT_EVERY_THIRD = "faults:\n  - match: {every: 3}\n    error: {code: BACKEND_TIMEOUT}\n"
CANNED_WEATHER = 'canned:\n  - match: {content: "*weather*"}\n    response: "Sunny, 21 degrees."\n'
WEATHER = "What is the weather in Utrecht?"


@dataclass
class Rig:
    live: Live
    clock: Clock
    scenarios: Scenarios
    #: the route of every call that reached the engine
    calls: list[str] = field(default_factory=list)
    #: the id of every answer (chat and generate), in order
    ids: list[str] = field(default_factory=list)

    def ask(
        self, route: str, body: Any, tenant: str | None = None, raw: bytes | None = b""
    ) -> dict[str, Any]:
        """A live answer without its id (each call has its own: kept in `ids`); `raw` defaults
        to the body's compact JSON bytes."""
        raw = orjson.dumps(body) if raw == b"" else raw
        answer = self.live.infer(route, body, tenant, "http://emulator.test/", raw)
        if "id" in answer:
            self.ids.append(answer["id"])
        return without_id(answer)


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch) -> Rig:
    engine = Engine(SEED, CATALOGUE)
    scenarios = Scenarios("happy-path", SEED)
    clock = Clock("frozen", start=START)
    out = Rig(Live(engine, clock, scenarios), clock, scenarios)
    infer = engine.infer

    def counting(route: str, body: Any, **kwargs: Any) -> dict[str, Any]:
        out.calls.append(route)
        return infer(route, body, **kwargs)

    monkeypatch.setattr(engine, "infer", counting)
    return out


def chat(content: str = "Tell me about Utrecht.", **extra: Any) -> dict[str, Any]:
    return {"model": CHAT_MODELS[0], "messages": [{"role": "user", "content": content}], **extra}


def without_id(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "id"}


def fresh(route: str, body: Any, created: int, seed: int = SEED) -> dict[str, Any]:
    """The answer of an engine that never saw a memo, without its id (a response's own)."""
    return without_id(Engine(seed, CATALOGUE).infer(route, body, created=created))


SAMPLES = {
    CHAT: chat(max_tokens=40),
    GENERATE: {"model": CHAT_MODELS[0], "prompt": "Once upon a time"},
    EMBED: {"model": EMBEDDING_MODEL, "input": ["alpha", "beta"]},
    IMAGES: {"model": IMAGE_MODEL, "prompt": "a lighthouse", "response_format": "b64_json"},
}


def test_a_repeated_chat_body_reaches_the_engine_twice_and_answers_with_the_current_time(
    rig: Rig,
) -> None:
    """The first sighting is answered and noted, the second answered and remembered, every
    later one answered from memory."""
    body = chat(temperature=0.3)
    first = rig.ask(CHAT, body)
    assert rig.calls == [CHAT]
    assert first == fresh(CHAT, body, T0)

    for step in (1, 90, 3600):
        rig.clock.advance(step)
        now = int(rig.clock.now())
        again = rig.ask(CHAT, body)
        assert again == fresh(CHAT, body, now)
        assert again["created"] == now
    assert rig.calls == [CHAT, CHAT]
    assert first["created"] == T0  # answering from memory changed nothing already handed out


def test_other_bytes_are_another_entry_even_for_an_equal_body(rig: Rig) -> None:
    body = chat()
    compact, spaced = orjson.dumps(body), json.dumps(body).encode()
    assert compact != spaced
    one = rig.ask(CHAT, body, raw=compact)
    two = rig.ask(CHAT, body, raw=spaced)
    assert rig.calls == [CHAT, CHAT]
    assert one == two
    other = chat("Tell me about Delft.")
    assert rig.ask(CHAT, other) == fresh(CHAT, other, T0)
    assert rig.calls == [CHAT] * 3
    for _ in range(3):
        rig.ask(CHAT, body, raw=compact)
        rig.ask(CHAT, body, raw=spaced)
    assert rig.calls == [CHAT] * 5  # each bytes' second sighting, then memory


def test_the_same_bytes_on_another_route_are_another_entry(rig: Rig) -> None:
    both = {**chat(), "prompt": "Once upon a time"}  # a valid chat body and a valid generate body
    raw = orjson.dumps(both)
    as_chat, as_text = rig.ask(CHAT, both, raw=raw), rig.ask(GENERATE, both, raw=raw)
    assert (as_chat["object"], as_text["object"]) == ("chat.completion", "text_completion")
    for _ in range(2):
        assert rig.ask(CHAT, both, raw=raw) == as_chat
        assert rig.ask(GENERATE, both, raw=raw) == as_text
    assert rig.calls == [CHAT, GENERATE] * 2


def test_only_chat_and_generate_are_remembered() -> None:
    assert {path for path, e in ENDPOINTS.items() if e.memo} == {CHAT, GENERATE}
    assert set(SAMPLES) == set(ENDPOINTS)


@pytest.mark.parametrize("route", list(SAMPLES))
def test_memo_by_route(rig: Rig, route: str) -> None:
    body = SAMPLES[route]
    answers = []
    for _ in range(3):
        answers.append(rig.ask(route, body))
        rig.clock.advance(5)
    assert rig.calls == [route] * (2 if ENDPOINTS[route].memo else 3)
    for i, answer in enumerate(answers):
        assert answer == fresh(route, body, T0 + 5 * i)


def test_without_the_bytes_nothing_is_remembered_or_recalled(rig: Rig) -> None:
    body = chat()
    for _ in range(3):
        assert rig.ask(CHAT, body, raw=None) == fresh(CHAT, body, T0)
    assert rig.calls == [CHAT] * 3
    for _ in range(3):
        rig.ask(CHAT, body)
    assert rig.calls == [CHAT] * 5
    rig.ask(CHAT, body, raw=None)
    assert rig.calls == [CHAT] * 6


def test_errors_are_not_remembered(rig: Rig) -> None:
    body = chat(max_tokens=0)
    for _ in range(3):
        with pytest.raises(ValidationError):
            rig.ask(CHAT, body)
    assert rig.calls == [CHAT] * 3


def test_a_tenant_with_faults_reaches_the_scenario_on_every_call(rig: Rig) -> None:
    body = chat()
    remembered = rig.ask(CHAT, body)
    assert rig.ask(CHAT, body) == remembered  # in memory before the scenario is set
    rig.scenarios.set_tenant("flaky", rig.scenarios.from_yaml(FAULT_EVERY_THIRD))
    codes = []
    for _ in range(6):
        try:
            answer = rig.ask(CHAT, body, tenant="flaky")
        except EmulatorError as exc:
            codes.append(exc.code)
        else:
            codes.append("ok")
            assert answer == remembered
    assert codes == ["ok", "ok", "BACKEND_TIMEOUT"] * 2
    assert rig.calls == [CHAT] * 6  # the first two calls, then each the fault let through
    # Tenants without a scenario still share the memo.
    assert rig.ask(CHAT, body, tenant="calm") == remembered
    assert rig.ask(CHAT, body) == remembered
    assert rig.calls == [CHAT] * 6
    rig.scenarios.set_tenant("flaky", None)
    assert rig.ask(CHAT, body, tenant="flaky") == remembered
    assert rig.calls == [CHAT] * 6


def test_a_tenant_with_canned_text_gets_it_on_every_call(rig: Rig) -> None:
    weather, plain = chat(WEATHER), chat()
    remembered = rig.ask(CHAT, weather)
    assert rig.ask(CHAT, weather) == remembered  # remembered now
    assert remembered["choices"][0]["message"]["content"] != "Sunny, 21 degrees."
    rig.scenarios.set_tenant("canned", rig.scenarios.from_yaml(CANNED_WEATHER))
    for _ in range(3):
        answer = rig.ask(CHAT, weather, tenant="canned")
        assert answer["choices"][0]["message"]["content"] == "Sunny, 21 degrees."
    for _ in range(2):
        assert rig.ask(CHAT, plain, tenant="canned") == fresh(CHAT, plain, T0)
    assert rig.calls == [CHAT] * 7
    # Canned answers were not remembered for anyone else.
    assert rig.ask(CHAT, weather) == remembered
    assert rig.calls == [CHAT] * 7


def test_the_memo_holds_memo_size_answers_and_drops_the_oldest_first(rig: Rig) -> None:
    bodies = [chat(f"Question {i}.") for i in range(MEMO_SIZE + 1)]
    raws = [orjson.dumps(b) for b in bodies]
    for body, raw in zip(bodies, raws, strict=True):
        rig.ask(CHAT, body, raw=raw)
        rig.ask(CHAT, body, raw=raw)  # the second sighting is remembered
    n = 2 * (MEMO_SIZE + 1)
    assert len(rig.calls) == n
    for body, raw in zip(bodies[1:], raws[1:], strict=True):  # the newest MEMO_SIZE: all held
        rig.ask(CHAT, body, raw=raw)
    assert len(rig.calls) == n
    assert rig.ask(CHAT, bodies[0], raw=raws[0]) == fresh(CHAT, bodies[0], T0)  # dropped
    assert len(rig.calls) == n + 1
    rig.ask(CHAT, bodies[0], raw=raws[0])  # remembered again, dropping the oldest, bodies[1]
    assert len(rig.calls) == n + 2
    rig.ask(CHAT, bodies[1], raw=raws[1])
    assert len(rig.calls) == n + 3
    rig.ask(CHAT, bodies[0], raw=raws[0])
    rig.ask(CHAT, bodies[-1], raw=raws[-1])
    assert len(rig.calls) == n + 3


def test_bodies_asked_once_fill_no_memory_and_the_first_sightings_are_bounded(rig: Rig) -> None:
    """A client whose every body differs costs the memo a set entry, never an answer kept; the
    set of first sightings is emptied when full, so a second sighting after that counts as a
    first."""
    body = chat("Asked twice, far apart.")
    rig.ask(CHAT, body)
    for i in range(SEEN_SIZE):
        rig.ask(CHAT, chat(f"Question {i}."))
    assert len(rig.live._answers) == 0
    assert len(rig.live._seen) < SEEN_SIZE
    calls = len(rig.calls)
    rig.ask(CHAT, body)  # forgotten when the set was emptied: a first sighting again
    rig.ask(CHAT, body)
    rig.ask(CHAT, body)
    assert len(rig.calls) == calls + 2


def test_a_first_sighting_keeps_no_reference_to_the_body_and_a_second_is_remembered(
    rig: Rig,
) -> None:
    """The set of first sightings holds the keys' hashes, never the bodies: a body seen once is
    referenced by nothing in the memo, and a second sighting (other bytes objects, equal bytes)
    is still recognised and remembered."""
    body = chat("Seen once, then again.")
    first = orjson.dumps(body)
    refs = sys.getrefcount(first)
    rig.ask(CHAT, body, raw=first)
    assert sys.getrefcount(first) == refs  # not held by the memo
    assert not rig.live._answers
    assert all(isinstance(seen, int) for seen in rig.live._seen)
    again = bytes(bytearray(first))
    assert again is not first
    rig.ask(CHAT, body, raw=again)  # the second sighting: answered and remembered
    assert len(rig.live._answers) == 1 and not rig.live._seen
    assert rig.ask(CHAT, body, raw=bytes(bytearray(first))) == fresh(CHAT, body, T0)
    assert rig.calls == [CHAT] * 2  # the third came from memory


def test_a_reseed_forgets_every_answer(rig: Rig) -> None:
    body = chat()
    before = rig.ask(CHAT, body)
    assert rig.ask(CHAT, body) == before  # remembered
    rig.live.reseed(SEED + 1)
    after = rig.ask(CHAT, body)
    assert rig.calls == [CHAT] * 3
    assert after == fresh(CHAT, body, T0, seed=SEED + 1)
    assert rig.ids[2] not in rig.ids[:2]
    assert after["choices"][0]["message"] != before["choices"][0]["message"]
    for _ in range(3):
        assert rig.ask(CHAT, body) == after
    assert rig.calls == [CHAT] * 4


@pytest.mark.parametrize(
    ("route", "body"),
    [
        (CHAT, {"model": CHAT_MODELS[0], "messages": 5}),
        (CHAT, {"model": CHAT_MODELS[0], "messages": True}),
        (GENERATE, {"model": CHAT_MODELS[0], "prompt": 7}),
    ],
)
def test_a_malformed_body_under_a_content_rule_is_a_validation_error(
    rig: Rig, route: str, body: dict[str, Any]
) -> None:
    rig.scenarios.set_tenant("canned", rig.scenarios.from_yaml(CANNED_WEATHER))
    with pytest.raises(ValidationError):
        rig.ask(route, body, tenant="canned")


def test_a_chat_body_with_a_stray_prompt_under_a_content_rule_is_answered(rig: Rig) -> None:
    rig.scenarios.set_tenant("canned", rig.scenarios.from_yaml(CANNED_WEATHER))
    body = {"model": CHAT_MODELS[0], "messages": [{"role": "user", "content": "x"}], "prompt": 7}
    assert rig.ask(CHAT, body, tenant="canned")["object"] == "chat.completion"


# --- 3. the JSON response's headers -------------------------------------------------------------

ENVELOPE = {"status": "ok", "data": {"id": "chatcmpl-1", "choices": [{"index": 0}], "n": 1.5}}


@pytest.mark.parametrize(
    ("content", "status", "headers"),
    [
        pytest.param(ENVELOPE, 200, None, id="fast-case"),
        pytest.param({}, 200, None, id="empty-dict"),
        pytest.param({"text": "héllo — 日本語 🚀"}, 200, None, id="unicode"),
        pytest.param(None, 200, None, id="null"),
        pytest.param(ENVELOPE, 200, {}, id="empty-headers"),
        pytest.param({"status": "error"}, 404, None, id="404"),
        pytest.param({"status": "error"}, 429, {"Retry-After": "9"}, id="429-retry-after"),
        pytest.param(ENVELOPE, 200, {"X-Extra": "1", "Cache-Control": "no-store"}, id="extra"),
        pytest.param(ENVELOPE, 200, {"Content-Type": "application/problem+json"}, id="own-type"),
        pytest.param(ENVELOPE, 200, {"Content-Length": "3"}, id="own-length"),
        pytest.param({}, 204, None, id="204"),
        pytest.param([], 201, None, id="201-list"),
    ],
)
def test_json_headers_are_starlettes(
    content: Any, status: int, headers: dict[str, str] | None
) -> None:
    def copy() -> dict[str, str] | None:
        return None if headers is None else dict(headers)

    ours = JSON(content, status_code=status, headers=copy())
    body = orjson.dumps(content)
    plain = Response(body, media_type="application/json", status_code=status, headers=copy())
    standard = JSONResponse(content, status_code=status, headers=copy())
    assert ours.body == plain.body == standard.body == body
    assert ours.status_code == status
    assert ours.raw_headers == plain.raw_headers == standard.raw_headers
    assert all(type(k) is bytes and type(v) is bytes for k, v in ours.raw_headers)


# ---- the live inference fast path (`emulator.api.fast`) against the general path ----

VIEWER_KEY = "sgk_viewer_" + "v" * 32
FAST_TENANTS = f"""
tenants:
  - id: tenant_fast
    keys:
      - key: {KEY}
        role: tenant_user
      - key: {VIEWER_KEY}
        role: tenant_viewer
"""
_ROUTES_ASKED = (CHAT, GENERATE, EMBED)


def _exchanges() -> list[tuple[str, str, dict[str, str], bytes]]:
    """(method, path, headers, body): good and bad requests to every route the fast path takes,
    and the neighbours it must leave to the general path."""
    auth = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    rng = random.Random(7)
    out: list[tuple[str, str, dict[str, str], bytes]] = []
    for _ in range(150):
        out.append(("POST", CHAT, auth, json.dumps(chat_body(rng)).encode()))
    for route in _ROUTES_ASKED:
        good = SAMPLES[route]
        out += [
            ("POST", route, auth, orjson.dumps(good)),
            ("POST", route, auth, orjson.dumps(good)),  # the memo's answer
            ("POST", route, {}, orjson.dumps(good)),  # no key
            ("POST", route, {"authorization": "Bearer nope"}, orjson.dumps(good)),
            ("POST", route, {"authorization": "Basic abc"}, orjson.dumps(good)),
            ("POST", route, {"authorization": f"Bearer {VIEWER_KEY}"}, orjson.dumps(good)),
            ("POST", route, auth, b"{not json"),
            ("POST", route, auth, b"[1, 2]"),
            ("POST", route, auth, b""),
            ("POST", route, auth, orjson.dumps({**good, "model": "no/such-model"})),
            ("GET", route, auth, b""),  # a wrong method: the general path's 405
            ("POST", route + "/", auth, orjson.dumps(good)),  # not an inference route
        ]
    out.append(("POST", CHAT, auth, orjson.dumps(chat(stream=True))))  # SSE: handed over
    out.append(("POST", IMAGES, auth, orjson.dumps(SAMPLES[IMAGES])))  # links: general path
    return out


async def _replies(app: Any, exchanges: list[tuple[str, str, dict[str, str], bytes]]) -> list[Any]:
    import httpx

    transport = httpx.ASGITransport(app)
    out = []
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator.test") as client:
        for method, path, headers, body in exchanges:
            resp = await client.request(method, path, headers=headers, content=body)
            out.append((resp.status_code, resp.headers.raw, resp.content))
    return out


async def test_the_inference_fast_path_answers_byte_for_byte_as_the_general_path(
    tmp_path: Any, make_emu: Callable[..., Any]
) -> None:
    """Two emulators with the same seed and clock get the same requests, one through the app
    (fast path in front) and one through `app.general` (the layers the fast path skips): every
    status, header and body byte agrees, request ids included, and so do the journals."""
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(FAST_TENANTS, encoding="utf-8")
    fast, general = await make_emu(tenants=tenants), await make_emu(tenants=tenants)
    taken = []
    takes = fast.app.fast.takes

    def counting_takes(scope: Any) -> bool:
        taken.append(takes(scope))
        return taken[-1]

    fast.app.fast.takes = counting_takes
    exchanges = _exchanges()
    got = await _replies(fast.app, exchanges)
    want = await _replies(general.app.general, exchanges)
    for exchange, a, b in zip(exchanges, got, want, strict=True):
        assert a == b, exchange
    assert {status for status, _, _ in got} >= {200, 401, 403, 404, 405, 422}
    assert taken.count(True) > 150  # the fast path answered the fast-path routes' posts
    assert fast.core.journal.entries() == general.core.journal.entries()


async def test_a_gated_scenario_sends_inference_the_general_way(emu: Harness) -> None:
    """Rate limits and API faults live in the gate, which the fast path does not run: while a
    scenario asks for either, inference goes through the general path."""
    scope = {"type": "http", "method": "POST", "path": CHAT}
    assert emu.app.fast.takes(scope)
    resp = await emu.client.put(
        "/_emulator/scenario", json={"yaml": "{rate_limit: {requests: 1, per: 60s}}"}
    )
    assert resp.status_code == 200, resp.text
    assert not emu.app.fast.takes(scope)
    first = await emu.client.post(CHAT, json=SAMPLES[CHAT])
    second = await emu.client.post(CHAT, json=SAMPLES[CHAT])
    assert (first.status_code, second.status_code) == (200, 429)


def test_every_live_answer_has_its_own_id_named_after_the_call(rig: Rig) -> None:
    """One body asked four times (the last two from memory) by two tenants: one content, eight
    ids, each the engine's name for that tenant's n-th call, so a rerun repeats them."""
    body = chat(tools=[TOOL], tool_choice="required")
    answers = [rig.live.infer(CHAT, body, t, None, orjson.dumps(body)) for t in ("a", "b") * 4]
    ids = [a["id"] for a in answers]
    assert len(set(ids)) == 8
    engine = rig.live.engine
    assert ids == [engine.response_id(CHAT, f"live:{t}:{n}") for n in (1, 2, 3, 4) for t in "ab"]
    calls = [a["choices"][0]["message"]["tool_calls"][0] for a in answers]
    assert len({c["id"] for c in calls}) == 8  # tool-call ids are the response's too
    assert len({c["function"]["arguments"] for c in calls}) == 1
    text = chat()
    memo = [rig.live.infer(CHAT, text, "a", None, orjson.dumps(text))["id"] for _ in range(3)]
    assert len(set(memo)) == 3  # answered from memory the third time, with its own id
    rig.live.reset("a")
    again = rig.live.infer(CHAT, text, "a", None, orjson.dumps(text))["id"]
    assert again == engine.response_id(CHAT, "live:a:1")
