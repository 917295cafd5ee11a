"""The control plane's wire: the bodies and queries its routes take (as tables, checked strictly:
an unknown or mistyped key is a 422 that names it) and the shapes it answers with, each with its
JSON Schema beside it. The native API's shapes are `emulator.wire`, OpenAI's `emulator.wire_oai`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from emulator.clock import MODES
from emulator.errors import ValidationError
from emulator.schema import (
    Param,
    Schema,
    array,
    boolean,
    enum,
    instant,
    integer,
    mapping,
    nullable,
    number,
    obj,
    one_of,
    string,
)
from emulator.verdict import CHECKS
from emulator.wire import COMPONENTS, LINE_STATUSES, MAX_LIMIT, MAX_LINES, MAX_SEQ

# --- control-plane bodies ------------------------------------------------------------------------
# Every body a control route takes, as a table: its keys, each key's JSON type, and which keys
# exclude each other. A key not in the table, a null, or a value of another type is a 422 that
# names the key, so a misspelling is never read as "not given" (a reset never widens to "all").


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a control body: the JSON types it takes and how the error describes them;
    `limits`, what the schema adds to the type (an enum, a bound) for the operation that checks
    them (the clock's mode, an amount that may not be negative)."""

    types: tuple[type, ...]
    expected: str
    required: bool = False
    limits: tuple[tuple[str, Any], ...] = ()

    def schema(self) -> Schema:
        kind = _SCHEMA_TYPES[self.types]
        return {"type": kind, "description": self.expected, **dict(self.limits)}


@dataclass(frozen=True, slots=True)
class Body:
    """The keys a control route's body may have; `one_of`: at most one of them (exactly one
    with `need_one`)."""

    keys: dict[str, Key]
    one_of: tuple[str, ...] = ()
    need_one: bool = False

    def schema(self) -> Schema:
        """The JSON Schema of the body: the keys, no others, and the one-of rule."""
        out = obj(
            {name: key.schema() for name, key in self.keys.items() if key.required},
            {name: key.schema() for name, key in self.keys.items() if not key.required},
        )
        if self.need_one:
            out["oneOf"] = [{"required": [name]} for name in self.one_of]
        elif self.one_of:
            out["not"] = {"required": list(self.one_of)}
        return out


_STR = (str,)
_NUMBER = (int, float)
_SCHEMA_TYPES: dict[tuple[type, ...], str] = {
    _STR: "string", _NUMBER: "number", (int,): "integer", (list,): "array"
}  # fmt: skip
_AMOUNT = Key(_NUMBER, "a number >= 0", limits=(("minimum", 0),))

CONTROL_BODIES: dict[str, Body] = {
    "reset": Body(
        {
            "tenant_id": Key(_STR, "a tenant id string"),
            "api_key": Key(_STR, "an sgk_ key string"),
            "tenant_ids": Key(
                (list,), "an array of tenant id strings", limits=(("items", {"type": "string"}),)
            ),
            "clock": Key(_STR, "an ISO-8601 instant string", limits=(("format", "date-time"),)),
        },
        one_of=("tenant_id", "api_key", "tenant_ids"),
    ),
    "clock": Body(
        {
            "mode": Key(_STR, f"one of {', '.join(MODES)}", limits=(("enum", list(MODES)),)),
            "scale": Key(_NUMBER, "a number > 0", limits=(("exclusiveMinimum", 0),)),
            "start": Key(_STR, "an ISO-8601 instant string", limits=(("format", "date-time"),)),
        }
    ),
    "clock/advance": Body({"seconds": _AMOUNT, "minutes": _AMOUNT, "hours": _AMOUNT}),
    "seed": Body({"seed": Key((int,), "an integer", required=True)}),
    "scenario": Body(
        {
            "name": Key(_STR, "a bundled scenario name or a .yaml file path"),
            "yaml": Key(_STR, "scenario YAML text"),
        },
        one_of=("name", "yaml"),
        need_one=True,
    ),
    "tenants/{tenant}/batches/{batch_id}/cancel": Body({}),
}

_TENANT_ID = Param("tenant_id", string(minLength=1), "a tenant id")
_SINCE_UNTIL = "an ISO-8601 instant"

#: the query parameters of the control routes that read with filters; a handler's 422 for a bad
#: value says it must be the parameter's description
CONTROL_QUERIES: dict[str, tuple[Param, ...]] = {
    "journal": (
        Param("method", string(pattern="^[A-Za-z]+$"), "an HTTP method (GET, POST, ...)"),
        Param("path", string(pattern="^[/*]"),
              "a path or a glob starting with / (/v1/inference/batch/*)"),
        Param("status", string(pattern="^([1-5][0-9][0-9]|[1-5][xX][xX])$"),
              "a status code (404) or a class (4xx)"),
        _TENANT_ID,
        Param("since", string(format="date-time"), _SINCE_UNTIL),
        Param("until", string(format="date-time"), _SINCE_UNTIL),
        Param("limit", integer(1, MAX_SEQ), "an integer >= 1 (below 2^63)"),
    ),
    "verdict": (
        _TENANT_ID,
        Param("min_poll_interval", number(0, MAX_SEQ), "a number of seconds >= 0 (below 2^63)"),
        Param("rate_limit", integer(1, MAX_SEQ), "an integer >= 1 (below 2^63)"),
    ),
    "state": (_TENANT_ID,),
    "tenants/{tenant}/batches/{batch_id}/lines": (
        Param("offset", integer(0, MAX_SEQ), "an integer >= 0 (below 2^63)"),
        Param("limit", integer(1, MAX_LINES), f"an integer from 1 to {MAX_LINES}"),
        Param("status", enum(LINE_STATUSES), f"one of {', '.join(LINE_STATUSES)}"),
    ),
    "tenants/{tenant}/webhooks/{webhook_id}/deliveries": (
        Param("status", string(minLength=1), "a delivery status"),
        Param("limit", integer(1, MAX_LIMIT), f"an integer from 1 to {MAX_LIMIT}"),
    ),
    "changes": (),
}  # fmt: skip

_JSON_TYPES = {
    bool: "a boolean", int: "a number", float: "a number", str: "a string",
    list: "an array", dict: "an object", type(None): "null",
}  # fmt: skip


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _is(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def control_body(route: str, body: dict[str, Any]) -> dict[str, Any]:
    """`body` if it is exactly what the control route `route` takes; else a 422 naming every
    key that is unknown, missing or of the wrong type."""
    shape = CONTROL_BODIES[route]
    known = ", ".join(shape.keys) or "none"
    problems: list[dict[str, Any]] = []
    for name in body:
        if name not in shape.keys:
            problems.append({"field": name, "message": f"unknown key (known keys: {known})"})
    for name, key in shape.keys.items():
        if name in body:
            if not _is(body[name], key.types):
                got = _json_type(body[name])
                problems.append({"field": name, "message": f"must be {key.expected}, got {got}"})
        elif key.required:
            problems.append({"field": name, "message": f"is required ({key.expected})"})
    given = [name for name in shape.one_of if name in body]
    if len(given) > 1:
        problems.append(
            {"field": given[1], "message": f"give only one of {', '.join(shape.one_of)}"}
        )
    elif shape.need_one and not given and not problems:
        problems.append(
            {"field": shape.one_of[0], "message": f"give one of {', '.join(shape.one_of)}"}
        )
    if problems:
        raise _invalid_keys(f"/_emulator/{route} body", problems)
    return body


def control_query(route: str, params: Sequence[str]) -> None:
    """A 422 naming every query parameter the control route `route` does not know."""
    allowed = {param.name for param in CONTROL_QUERIES[route]}
    known = ", ".join(sorted(allowed))
    problems: list[dict[str, Any]] = [
        {"field": name, "message": f"unknown query parameter (known: {known})"}
        for name in params
        if name not in allowed
    ]
    if problems:
        raise _invalid_keys(f"/_emulator/{route} query", problems)


#: the most problems one answer names (a body of 100,000 unknown keys is answered in a few lines)
MAX_PROBLEMS = 20


def _invalid_keys(where: str, problems: list[dict[str, Any]]) -> ValidationError:
    named = problems[:MAX_PROBLEMS]
    listed = "; ".join(f"'{p['field']}' {p['message']}" for p in named)
    more = f" (and {len(problems) - len(named)} more)" if len(problems) > len(named) else ""
    return ValidationError(f"Invalid {where}: {listed}{more}.", details=named)


# --- control-plane answers -----------------------------------------------------------------------
# Built by `emulator.control` (and the clock, journal and verdict it asks); declared here with the
# other native shapes.

HEALTH = COMPONENTS.add(
    "Health", obj({"status": enum(("healthy", "starting")), "version": string()})
)
CLOCK = COMPONENTS.add(
    "Clock", obj({"now": instant(), "mode": enum(MODES), "scale": number(exclusiveMinimum=0)})
)
SEED = obj({"seed": integer()})
CHANGES = obj({"mark": string("moves whenever the state may have changed"), "clock": CLOCK})
RESET = obj(
    {
        "reset": one_of(
            string("all, or the tenant id reset"),
            array(string(), description="the tenant ids reset (given tenant_ids)"),
        )
    },
    {"clock": CLOCK},
)
SCENARIO_SUMMARY = COMPONENTS.add(
    "ScenarioSummary", obj({"name": string(), "description": string(), "source": string()})
)
SCENARIO = COMPONENTS.add(
    "Scenario",
    obj({"name": string(), "description": string(), "source": string(), "yaml": string()}),
)
SCENARIOS = COMPONENTS.add(
    "Scenarios",
    obj(
        {
            "bundled": array(SCENARIO_SUMMARY),
            "global": SCENARIO_SUMMARY,
            "tenants": mapping(SCENARIO_SUMMARY),
        }
    ),
)
TENANT = COMPONENTS.add(
    "Tenant",
    obj(
        {"tenant_id": string(), "partner_id": string(),
         "resolved_from": enum(("tenant_id", "api_key"))},
        {"key_id": string(), "role": string(), "user_id": nullable(string())},
    ),
)  # fmt: skip
_EXCHANGE_SIDE = nullable(
    obj({"headers": mapping(string()), "body": string(), "size": integer(0),
         "truncated": boolean()})
)  # fmt: skip
JOURNAL_ENTRY = COMPONENTS.add(
    "JournalEntry",
    obj(
        {"time": instant(), "method": string(), "path": string(), "query": string(),
         "status": integer(100, 599), "tenant_id": nullable(string()), "request_id": string(),
         "request": _EXCHANGE_SIDE, "response": _EXCHANGE_SIDE}
    ),
)  # fmt: skip
_EVIDENCE = obj(
    {"request_id": string(), "time": instant(), "method": string(), "path": string(),
     "status": integer(100, 599)},
    extra=True,  # what each check adds (the gap, the Retry-After, ...)
)  # fmt: skip
VERDICT = COMPONENTS.add(
    "Verdict",
    obj(
        {
            "findings": array(
                obj(
                    {
                        "check": enum(CHECKS),
                        "tenant_id": nullable(string()),
                        "subject": string(),
                        "message": string(),
                        "evidence": array(_EVIDENCE),
                        "evidence_count": integer(0),
                    }
                )  # fmt: skip
            ),
            "thresholds": obj({"min_poll_interval": number(0), "rate_limit": integer(1)}),
            "requests_judged": integer(0),
        }
    ),
)
_OWNED = {"type": "object", "required": ["tenant_id"]}
STATE = COMPONENTS.add(
    "State",
    obj(
        {"version": string(), "clock": CLOCK, "seed": integer(), "tenancy": string(),
         "settings": mapping(nullable(string())), "scenarios": SCENARIOS,
         "batches": array(_OWNED), "files": array(_OWNED), "webhooks": array(_OWNED),
         "sinks": mapping(integer(0)), "journal_size": integer(0)},
    ),
)  # fmt: skip
