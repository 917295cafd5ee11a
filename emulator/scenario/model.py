"""Scenarios: YAML files that say how the emulated service behaves, and the plans built from them.

A scenario sets processing speed (start delay, per-request latency, concurrency), per-request
faults, batch outcomes, API faults, quotas, rate limits and canned responses. Every random choice
is a hash of (seed, what is being decided), never a shared random stream, so a scenario replays
identically whatever order requests arrive or are processed in.

Which scenario is in force where is `emulator.scenario.registry`'s business.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from emulator.endpoints import OAI_PREFIX
from emulator.errors import EmulatorError, InputParseError, error_for_code
from emulator.records import RequestRecord
from emulator.scenario.checks import duration_seconds
from emulator.scenario.plan import Plan
from emulator.scenario.schema import known_error_status, load_document
from emulator.scenario.transport_faults import TRANSPORT_FAULTS
from emulator.seeded import unit

# --- the parts of a scenario --------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    distribution: str = "fixed"
    params: dict[str, float] = field(default_factory=dict)

    def sample(self, u: float) -> float:
        p = self.params
        if self.distribution == "fixed":
            return p["value"]
        if self.distribution == "uniform":
            return p["min"] + (p["max"] - p["min"]) * u
        if self.distribution == "exponential":
            return -p["mean"] * math.log(1.0 - u)
        z = _normal_quantile(u)
        if self.distribution == "normal":
            return max(0.0, p["mean"] + p["stddev"] * z)
        return p["median"] * math.exp(p.get("sigma", 0.5) * z)  # lognormal


def _normal_quantile(u: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(min(max(u, 1e-12), 1 - 1e-12))


@dataclass(frozen=True)
class Match:
    """Which requests a rule applies to; every condition given must hold."""

    custom_id: re.Pattern[str] | None = None
    lines: frozenset[int] | None = None
    route: str | None = None
    model: str | None = None
    content: re.Pattern[str] | None = None
    every: int | None = None
    probability: float | None = None

    def matches(self, r: RequestRecord, draw: Callable[[], float]) -> bool:
        """`draw` gives this rule's seeded number for this request; it is hashed only when the
        rule has a probability (most do not, and it runs for every request of a batch)."""
        body = r.body if isinstance(r.body, dict) else {}
        return (
            (self.custom_id is None or bool(self.custom_id.fullmatch(r.custom_id)))
            and (self.lines is None or r.line in self.lines)
            and (self.route is None or fnmatch.fnmatchcase(r.url, self.route))
            and (self.model is None or fnmatch.fnmatchcase(str(body.get("model")), self.model))
            and (self.content is None or bool(self.content.search(request_text(body))))
            and (self.every is None or (r.idx + 1) % self.every == 0)
            and (self.probability is None or draw() < self.probability)
        )


def request_text(body: dict[str, Any]) -> str:
    """The text a request carries (messages, prompt or input), for content matching. It runs
    before the body is checked, so anything of the wrong type is skipped, not trusted."""
    parts: list[str] = []
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    for key in ("prompt", "input"):
        value = body.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts.extend(v for v in value if isinstance(v, str))
    return "\n".join(parts)


@dataclass(frozen=True)
class Fault:
    match: Match
    code: str
    message: str
    status: int
    retry_after: int | None = None

    def error(self) -> EmulatorError:
        return error_for_code(
            self.code, self.message, status=self.status, retry_after=self.retry_after
        )


@dataclass(frozen=True)
class Canned:
    match: Match
    response: str


@dataclass(frozen=True)
class Transport:
    """A fault on the wire (`transport_faults.TRANSPORT_FAULTS`): its name and its parameters,
    defaults filled in (durations in seconds; a truncation's `bytes` None: half the answer)."""

    fault: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiFault:
    route: str = "*"
    method: str | None = None
    calls: frozenset[int] | None = None
    after_calls: int | None = None
    probability: float | None = None
    error: Fault | None = None
    transport: Transport | None = None
    latency: float = 0.0

    def applies(self, method: str, path: str) -> bool:
        return route_matches(self.route, path) and (self.method is None or method == self.method)

    def fires(self, call: int, draw: float) -> bool:
        """Whether the `call`-th matching call (1-based) is hit."""
        return (
            (self.calls is None or call in self.calls)
            and (self.after_calls is None or call > self.after_calls)
            and (self.probability is None or draw < self.probability)
        )


@dataclass(frozen=True)
class RateLimit:
    requests: int
    per: float = 60.0
    scope: str = "key"
    routes: tuple[str, ...] = ("/v1/*",)

    def covers(self, path: str) -> bool:
        return any(route_matches(r, path) for r in self.routes)


def route_matches(glob: str, path: str) -> bool:
    """Whether a rule's route glob covers `path`. The OpenAI surface is a mount of the same
    service, so `/oai/v1/batches` is also seen as `/v1/batches`: a rule for `/v1/*` covers both
    surfaces, one for `/oai/v1/*` the OpenAI surface alone."""
    if fnmatch.fnmatchcase(path, glob):
        return True
    inner = path.removeprefix(OAI_PREFIX)
    return inner != path and fnmatch.fnmatchcase(inner, glob)


@dataclass(frozen=True)
class WebhookChaos:
    """What a scenario does to webhook deliveries: each rule's probability (0: never), how long
    a delayed delivery waits, and how many attempts fail before anything is sent."""

    duplicate: float = 0.0
    delay: float = 0.0
    delay_by: Latency | None = None
    reorder: float = 0.0
    wrong_signature: float = 0.0
    fail_first: float = 0.0
    fail_attempts: int = 0


@dataclass(frozen=True)
class Scenario:
    name: str
    source: str
    text: str
    description: str = ""
    seed: int | None = None
    start_delay: float = 0.0
    latency: Latency | None = None
    concurrency: int = 1
    finalize: float = 0.0
    cancel_delay: float = 0.0
    faults: tuple[Fault, ...] = ()
    canned: tuple[Canned, ...] = ()
    fail_input: str | None = None
    cancel_after: int | None = None
    window: float | None = None
    api_faults: tuple[ApiFault, ...] = ()
    limits: dict[str, int] = field(default_factory=dict)
    rate_limit: RateLimit | None = None
    webhooks: WebhookChaos | None = None

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "source": self.source}

    def only_acts_on_api_calls(self) -> bool:
        """It has rules, and every one acts on API calls (`api_faults`, `rate_limit`), none on
        a batch's processing, limits or webhooks: named for one batch, it would do nothing."""
        batch_level = (
            self.start_delay or self.latency or self.concurrency != 1 or self.finalize
            or self.cancel_delay or self.faults or self.canned or self.fail_input
            or self.cancel_after is not None or self.window is not None or self.limits
            or self.webhooks
        )  # fmt: skip
        return bool(self.api_faults or self.rate_limit) and not batch_level

    def plan(self, seed: int, batch_id: str) -> ScenarioPlan:
        return ScenarioPlan(self, self.seed if self.seed is not None else seed, batch_id)

    def canned_for(self, r: RequestRecord, draw: Callable[[], float]) -> str | None:
        for rule in self.canned:
            if rule.match.matches(r, draw):
                return rule.response
        return None


class ScenarioPlan(Plan):
    """A batch's plan under a scenario.

    Draws are a hash of (seed, batch id, what is decided). Batch ids derive from the emulator's
    seed, so a scenario that pins its own `seed` leaves the batch id out: its draws depend on
    that seed and the request (position, custom_id) alone, whatever the emulator's seed, and so
    every batch of the same input draws the same.
    """

    def __init__(self, scenario: Scenario, seed: int, batch_id: str) -> None:
        super().__init__(
            start_delay=scenario.start_delay,
            concurrency=scenario.concurrency,
            finalize=scenario.finalize,
            cancel_delay=scenario.cancel_delay,
        )
        self.scenario, self.seed = scenario, seed
        self.batch_id = batch_id if scenario.seed is None else "pinned"

    def latency(self, idx: int, request: RequestRecord | None) -> float:
        if self.scenario.latency is None:
            return 0.0
        return self.scenario.latency.sample(unit(self.seed, self.batch_id, "latency", idx))

    def fault(self, request: RequestRecord) -> EmulatorError | None:
        for n, rule in enumerate(self.scenario.faults):
            draw = partial(
                unit, self.seed, self.batch_id, "fault", n, request.idx, request.custom_id
            )
            if rule.match.matches(request, draw):
                return rule.error()
        return None

    def canned(self, request: RequestRecord) -> str | None:
        if not self.scenario.canned:
            return None
        draw = partial(unit, self.seed, self.batch_id, "canned", request.idx, request.custom_id)
        return self.scenario.canned_for(request, draw)

    def fail_input(self) -> dict[str, Any] | None:
        if self.scenario.fail_input is None:
            return None
        return {
            "code": InputParseError.code,
            "message": self.scenario.fail_input,
            "details": [{"line": 1, "message": self.scenario.fail_input}],
        }

    def cancel_after(self) -> int | None:
        return self.scenario.cancel_after

    def window_seconds(self, requested: int) -> int:
        return requested if self.scenario.window is None else int(self.scenario.window)


# --- building scenarios from documents ----------------------------------------------------------


def parse_scenario(text: str, source: str, fallback_name: str = "custom") -> Scenario:
    """Check a YAML document against the language and build the scenario."""
    doc = load_document(text, source)
    processing = doc.get("processing", {})
    batch = doc.get("batch", {})
    fail = batch.get("fail_input")
    return Scenario(
        name=str(doc.get("name", fallback_name)),
        source=source,
        text=text,
        description=str(doc.get("description", "")),
        seed=doc.get("seed"),
        start_delay=duration_seconds(processing.get("start_delay", 0)),
        latency=_latency(processing.get("latency")),
        concurrency=int(processing.get("concurrency", 1)),
        finalize=duration_seconds(processing.get("finalize", 0)),
        cancel_delay=duration_seconds(processing.get("cancel_delay", 0)),
        faults=tuple(
            _fault(f["match"] if "match" in f else {}, f["error"]) for f in doc.get("faults", ())
        ),
        canned=tuple(
            Canned(_match(c.get("match", {})), c["response"]) for c in doc.get("canned", ())
        ),
        fail_input=(
            None
            if fail in (None, False)
            else fail["message"]
            if isinstance(fail, dict)
            else "Input file is invalid."
        ),
        cancel_after=batch.get("cancel_after"),
        window=duration_seconds(batch["window"]) if "window" in batch else None,
        api_faults=tuple(_api_fault(a) for a in doc.get("api_faults", ())),
        limits=dict(doc.get("limits", {})),
        rate_limit=_rate_limit(doc.get("rate_limit")),
        webhooks=_webhook_chaos(doc.get("webhooks")),
    )


def _latency(raw: Any) -> Latency | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        return Latency("fixed", {"value": duration_seconds(raw)})
    params = {
        k: (float(v) if k == "sigma" else duration_seconds(v))
        for k, v in raw.items()
        if k != "distribution"
    }
    return Latency(raw.get("distribution", "fixed"), params)


def _match(raw: dict[str, Any]) -> Match:
    custom_id = raw.get("custom_id_regex")
    if custom_id is None and "custom_id" in raw:
        custom_id = fnmatch.translate(raw["custom_id"])
    content = raw.get("content_regex")
    if content is None and "content" in raw:  # a glob searched anywhere in the request's text
        content = re.escape(raw["content"]).replace(r"\*", ".*").replace(r"\?", ".")
    line = raw.get("line")
    return Match(
        custom_id=re.compile(custom_id) if custom_id is not None else None,
        lines=frozenset([line] if isinstance(line, int) else line) if line is not None else None,
        route=raw.get("route"),
        model=raw.get("model"),
        content=re.compile(content, re.IGNORECASE) if content is not None else None,
        every=raw.get("every"),
        probability=raw.get("probability"),
    )


def _fault(match: dict[str, Any], error: dict[str, Any]) -> Fault:
    code = error.get("code", "BACKEND_ERROR")
    return Fault(
        match=_match(match),
        code=code,
        message=error.get("message", f"Injected {code}."),
        status=error.get("status", known_error_status(code)),
        retry_after=error.get("retry_after"),
    )


def _api_fault(raw: dict[str, Any]) -> ApiFault:
    m = raw.get("match", {})
    calls = m.get("calls")
    return ApiFault(
        route=m.get("route", "*"),
        method=m.get("method"),
        calls=frozenset([calls] if isinstance(calls, int) else calls)
        if calls is not None
        else None,
        after_calls=m.get("after_calls"),
        probability=m.get("probability"),
        error=_fault({}, raw["error"]) if "error" in raw else None,
        transport=_transport(raw["transport"]) if "transport" in raw else None,
        latency=duration_seconds(raw.get("latency", 0)),
    )


def _transport(raw: str | dict[str, Any]) -> Transport:
    given = {"fault": raw} if isinstance(raw, str) else raw
    fault = given["fault"]
    params = {}
    for name, param in TRANSPORT_FAULTS[fault].items():
        value = given.get(name, param.default)
        params[name] = None if value is None else param.read(value)
    return Transport(fault, params)


def _rate_limit(raw: dict[str, Any] | None) -> RateLimit | None:
    if raw is None:
        return None
    return RateLimit(
        requests=int(raw.get("requests", 60)),
        per=duration_seconds(raw.get("per", 60)),
        scope=raw.get("scope", "key"),
        routes=tuple(raw.get("routes", ("/v1/*",))),
    )


def _webhook_chaos(raw: dict[str, Any] | None) -> WebhookChaos | None:
    if raw is None:
        return None

    def chance(rule: str) -> float:
        return float(raw[rule].get("probability", 1.0)) if rule in raw else 0.0

    return WebhookChaos(
        duplicate=chance("duplicate"),
        delay=chance("delay"),
        delay_by=_latency(raw["delay"]["by"]) if "delay" in raw else None,
        reorder=chance("reorder"),
        wrong_signature=chance("wrong_signature"),
        fail_first=chance("fail_first"),
        fail_attempts=int(raw["fail_first"]["attempts"]) if "fail_first" in raw else 0,
    )
