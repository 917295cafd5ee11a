"""The scenario language's schema, and its checker.

A scenario file is checked on the YAML node tree (not on the loaded data) so that every problem
names the file, the path in the document and the line: `flaky.yaml: faults[1].match.every
(line 12): must be an integer >= 1`. The schema is a table; `emulator.scenario.model` builds objects
only from documents that passed it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import yaml

from emulator.errors import ERROR_CODES, ConfigError
from emulator.yamlfile import SAFE_LOADER, load_yaml

Check = Callable[[yaml.Node], str | None]  # returns a problem, or None

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class ScenarioError(ConfigError):
    """A scenario document that does not fit the language: every problem found, one a line."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


def duration_seconds(value: Any) -> float:
    """`30`, `30s`, `250ms`, `5m`, `2h`, `1d` -> seconds."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError("not a duration")
    return float(match.group(1)) * _UNITS[match.group(2)]


# --- scalar checks -------------------------------------------------------------------------------

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_STR = "tag:yaml.org,2002:str"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"


_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _scalar(node: yaml.Node, tags: tuple[str, ...]) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag in tags


def _number(node: yaml.Node) -> float:
    """An int or float scalar's value as YAML reads it (`0x10` is 16, `.nan` is NaN)."""
    assert isinstance(node, yaml.ScalarNode)
    if node.tag == _INT:
        return float(_CONSTRUCTOR.construct_yaml_int(node))
    value: float = _CONSTRUCTOR.construct_yaml_float(node)
    return value


def integer(minimum: int) -> Check:
    def check(node: yaml.Node) -> str | None:
        if not _scalar(node, (_INT,)) or _number(node) < minimum:
            return f"must be an integer >= {minimum}"
        return None

    return check


def number(minimum: float, maximum: float | None = None) -> Check:
    def check(node: yaml.Node) -> str | None:
        bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        if not _scalar(node, (_INT, _FLOAT)):
            return f"must be a number {bounds}"
        value = _number(node)
        if not math.isfinite(value) or value < minimum or (maximum is not None and value > maximum):
            return f"must be a number {bounds}"
        return None

    return check


def text(node: yaml.Node) -> str | None:
    return None if _scalar(node, (_STR,)) and node.value != "" else "must be a non-empty string"


def duration(node: yaml.Node) -> str | None:
    if isinstance(node, yaml.ScalarNode) and node.tag in (_INT, _FLOAT, _STR):
        try:
            seconds = duration_seconds(node.value if node.tag == _STR else _number(node))
        except ValueError:
            pass
        else:
            if math.isfinite(seconds) and seconds >= 0:
                return None
    return "must be a duration: seconds, or a number with ms, s, m, h or d (e.g. 30s, 2h)"


def regex(node: yaml.Node) -> str | None:
    if text(node):
        return "must be a regular expression"
    try:
        re.compile(node.value)
    except re.error as exc:
        return f"is not a valid regular expression: {exc}"
    return None


def error_code(node: yaml.Node) -> str | None:
    if text(node) or not re.fullmatch(r"[A-Z][A-Z0-9_]*", node.value):
        return "must be an error code in UPPER_SNAKE_CASE (e.g. BACKEND_ERROR)"
    return None


def http_status(node: yaml.Node) -> str | None:
    if not _scalar(node, (_INT,)) or not 400 <= int(node.value) <= 599:
        return "must be an HTTP error status from 400 to 599"
    return None


def one_of(*values: str) -> Check:
    def check(node: yaml.Node) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.value not in values:
            return f"must be one of {', '.join(values)}"
        return None

    return check


def boolean(node: yaml.Node) -> str | None:
    return None if _scalar(node, (_BOOL,)) else "must be true or false"


def duration_up_to(maximum: float) -> Check:
    """A duration no longer than `maximum` seconds (a wait of real time, which must end)."""

    def check(node: yaml.Node) -> str | None:
        problem = duration(node)
        if problem is None:
            value = node.value if node.tag == _STR else _number(node)
            if duration_seconds(value) <= maximum:
                return None
        return f"must be a duration of at most {maximum:g}s (e.g. 200ms, 2s)"

    return check


# --- structure ----------------------------------------------------------------------------------

Spec = Any  # a Check, a dict (mapping spec), ("list", Spec, min items), ("either", Spec, Spec)


def listed(spec: Spec, min_items: int = 0) -> tuple[str, Spec, int]:
    return ("list", spec, min_items)


def either(*specs: Spec) -> tuple[Any, ...]:
    return ("either", *specs)


DISTRIBUTION = {
    "distribution": one_of("fixed", "uniform", "exponential", "normal", "lognormal"),
    "value": duration,
    "min": duration,
    "max": duration,
    "mean": duration,
    "stddev": duration,
    "median": duration,
    "sigma": number(0),
}
#: the parameters each latency distribution takes; lognormal's sigma is optional (0.5)
DISTRIBUTION_PARAMS = {
    "fixed": ("value",),
    "uniform": ("min", "max"),
    "exponential": ("mean",),
    "normal": ("mean", "stddev"),
    "lognormal": ("median", "sigma"),
}
OPTIONAL_PARAMS = {"sigma"}

MATCH = {
    "custom_id": text,  # glob
    "custom_id_regex": regex,
    "line": either(integer(1), listed(integer(1), 1)),
    "route": text,  # glob
    "model": text,  # glob
    "content": text,  # glob over the request's text
    "content_regex": regex,
    "every": integer(1),
    "probability": number(0, 1),
}

ERROR = {"code": error_code, "message": text, "status": http_status, "retry_after": integer(0)}

_CHANCE = {"probability": number(0, 1)}
#: what a scenario does to webhook deliveries; a rule without `probability` always applies
WEBHOOKS = {
    "duplicate": _CHANCE,  # the event is delivered twice (two deliveries, one event_id)
    "delay": {**_CHANCE, "by": either(duration, DISTRIBUTION)},  # the first attempt waits
    "reorder": _CHANCE,  # the deliveries due together go out in a shuffled order
    "wrong_signature": _CHANCE,  # drawn per attempt: signed with another secret
    "fail_first": {**_CHANCE, "attempts": integer(1)},  # attempts that fail before sending
}

#: the longest real-time wait a transport fault may ask for (a hang, a dribble's pause): real
#: time passes even on a frozen clock, so it is bounded
MAX_WAIT = 60.0
REQUIRED_PARAM = object()  # a transport fault's parameter with no default


class Param(NamedTuple):
    """A transport fault's parameter: its check, its default, and how its value is read."""

    check: Check
    default: Any
    read: Callable[[Any], Any] = int


_WAIT = Param(duration_up_to(MAX_WAIT), REQUIRED_PARAM, duration_seconds)
#: what breaks on the wire (`api_faults[].transport`), each fault with its parameters; the
#: README's transport table says the same (a truncation's `bytes` default, None, is half the
#: answer)
TRANSPORT_FAULTS: dict[str, dict[str, Param]] = {
    "reset": {},  # the connection is reset (RST) before any byte of the answer
    "hang": {"for": _WAIT},  # real time, then the answer
    "truncate": {"bytes": Param(integer(0), None)},  # `bytes` of the body sent, then closed
    "dribble": {"bytes": Param(integer(1), 16), "every": _WAIT._replace(default=0.1)},
    "cut_stream": {"events": Param(integer(0), 1)},  # an SSE answer closed after `events`
    "malformed": {},  # a 200 whose body is not valid JSON
}


def _by_fault(node: yaml.Node) -> str | None:
    return None  # a transport parameter's value is checked as its fault reads it (`_transport`)


#: a transport fault: its name alone, or a mapping of `fault` and its parameters
TRANSPORT = {
    "fault": one_of(*TRANSPORT_FAULTS),
    **{param: _by_fault for params in TRANSPORT_FAULTS.values() for param in params},
}
API_FAULT = {
    "match": {
        "route": text,
        "method": one_of("GET", "POST", "PUT", "DELETE", "PATCH"),
        "calls": either(integer(1), listed(integer(1), 1)),
        "after_calls": integer(0),
        "probability": number(0, 1),
    },
    "error": ERROR,
    "transport": either(one_of(*TRANSPORT_FAULTS), TRANSPORT),
    "latency": duration,
}

SCHEMA: dict[str, Spec] = {
    "name": text,
    "description": text,
    "seed": integer(0),
    "processing": {
        "start_delay": duration,
        "latency": either(duration, DISTRIBUTION),
        "concurrency": integer(1),
        # how long a batch whose requests have all finished takes to write its results
        # (OpenAI's `finalizing`), and how long a cancel takes to take effect (`cancelling`)
        "finalize": duration,
        "cancel_delay": duration,
    },
    "faults": listed({"match": MATCH, "error": ERROR}),
    "batch": {
        "fail_input": either(boolean, {"message": text}),
        "cancel_after": integer(0),
        "window": duration,
    },
    "api_faults": listed(API_FAULT),
    "limits": {
        "max_requests_per_batch": integer(0),
        "max_input_bytes": integer(0),
        "max_active_batches": integer(0),
    },
    "rate_limit": {
        "requests": integer(1),
        "per": duration,
        "scope": one_of("key", "tenant"),
        "routes": listed(text, 1),
    },
    "canned": listed({"match": MATCH, "response": text}),
    "webhooks": WEBHOOKS,
}

REQUIRED = {
    "faults[]": ("error",),
    "api_faults[]": (),
    "canned[]": ("response",),
    "batch.fail_input": ("message",),
    "webhooks.delay": ("by",),
    "webhooks.fail_first": ("attempts",),
}


class Checker:
    """Checks a node tree against a spec and records every problem (not only the first): a
    node that is wrong is reported and not looked into, its siblings are still checked."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def fail(self, path: str, node: yaml.Node, problem: str) -> None:
        where = f"{path} " if path else ""
        self.problems.append(f"{self.source}: {where}(line {node.start_mark.line + 1}): {problem}")

    def check(self, path: str, node: yaml.Node, spec: Spec) -> None:
        if isinstance(spec, dict):
            if self._mapping(path, node, spec):
                if spec is DISTRIBUTION:
                    self._distribution(path, node)
                if spec is ERROR:
                    self._error(path, node)
                if spec is TRANSPORT:
                    self._transport(path, node)
                if spec is API_FAULT:
                    self._one_ending(path, node)
        elif isinstance(spec, tuple) and spec[0] == "list":
            if not isinstance(node, yaml.SequenceNode):
                self.fail(path, node, "must be a list")
                return
            if len(node.value) < spec[2]:
                self.fail(path, node, f"must list at least {spec[2]} item(s)")
            for i, item in enumerate(node.value):
                self.check(f"{path}[{i}]", item, spec[1])
        elif isinstance(spec, tuple) and spec[0] == "either":
            self._either(path, node, spec[1:])
        else:
            problem = spec(node)
            if problem:
                self.fail(path, node, problem)

    def _either(self, path: str, node: yaml.Node, options: tuple[Spec, ...]) -> None:
        fitting = [option for option in options if _kind(option) == _node_kind(node)]
        if len(fitting) == 1:  # the one option of the node's shape: report its own problems
            self.check(path, node, fitting[0])
            return
        problems = []
        for option in options:
            trial = Checker(self.source)
            trial.check(path, node, option)
            if not trial.problems:
                return
            problems.append(trial.problems[0].rsplit("): ", 1)[-1])
        self.fail(path, node, " or ".join(dict.fromkeys(problems)))

    def _mapping(self, path: str, node: yaml.Node, spec: dict[str, Spec]) -> bool:
        """Check a mapping's keys and values; False if it is no mapping at all."""
        if not isinstance(node, yaml.MappingNode):
            self.fail(path, node, "must be a mapping")
            return False
        seen = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.fail(path, key_node, "keys must be plain names")
                continue
            key = key_node.value
            where = f"{path}.{key}" if path else str(key)
            if key not in spec:
                known = ", ".join(k for k in spec)
                self.fail(where, key_node, f"unknown key '{key}' (known: {known})")
                continue
            if key in seen:
                self.fail(where, key_node, "key given twice")
                continue
            seen.add(key)
            self.check(where, value_node, spec[key])
        generic = re.sub(r"\[\d+\]$", "[]", path)
        for required in REQUIRED.get(generic, ()):
            if required not in seen:
                self.fail(path, node, f"missing required key '{required}'")
        return True

    def _distribution(self, path: str, node: yaml.Node) -> None:
        """A latency distribution takes exactly its own parameters."""
        given = {key.value: (key, value) for key, value in node.value}
        name = given["distribution"][1].value if "distribution" in given else "fixed"
        if name not in DISTRIBUTION_PARAMS:
            return  # reported by the `distribution` key's own check
        takes = DISTRIBUTION_PARAMS[name]
        for key, (key_node, _) in given.items():
            if key != "distribution" and key not in takes and key in DISTRIBUTION:
                self.fail(
                    f"{path}.{key}",
                    key_node,
                    f"is not a parameter of the {name} distribution (it takes {', '.join(takes)})",
                )
        for needed in takes:
            if needed not in given and needed not in OPTIONAL_PARAMS:
                self.fail(path, node, f"the {name} distribution needs '{needed}'")

    def _transport(self, path: str, node: yaml.Node) -> None:
        """A transport fault takes exactly its own parameters, each checked as that fault
        reads it (a dribble's `bytes` is at least 1, a truncation's may be 0)."""
        given = {key.value: (key, value) for key, value in node.value}
        if "fault" not in given:
            self.fail(path, node, "missing required key 'fault'")
            return
        fault = given["fault"][1].value
        if fault not in TRANSPORT_FAULTS:
            return  # reported by the `fault` key's own check
        takes = TRANSPORT_FAULTS[fault]
        for key, (key_node, value_node) in given.items():
            if key == "fault" or key not in TRANSPORT:
                continue  # an unknown key is reported by the mapping's check
            if key not in takes:
                names = ", ".join(takes) or "nothing"
                self.fail(
                    f"{path}.{key}", key_node, f"is not a parameter of {fault} (it takes {names})"
                )
            elif problem := takes[key].check(value_node):
                self.fail(f"{path}.{key}", value_node, problem)
        for name, param in takes.items():
            if param.default is REQUIRED_PARAM and name not in given:
                self.fail(path, node, f"{fault} needs '{name}'")

    def _one_ending(self, path: str, node: yaml.Node) -> None:
        """An API fault ends a call one way: with an error, or with a transport fault."""
        given = {key.value: key for key, _ in node.value}
        if "error" in given and "transport" in given:
            self.fail(
                f"{path}.transport",
                given["transport"],
                "a rule gives 'error' or 'transport', not both",
            )

    def _error(self, path: str, node: yaml.Node) -> None:
        """An error's code is one the emulator knows, unless the rule gives its own status (a
        code of the user's own, deliberately): a misspelt code is not silently a 500."""
        given = {key.value: value for key, value in node.value}
        code = given.get("code")
        if (
            isinstance(code, yaml.ScalarNode)
            and error_code(code) is None
            and code.value not in ERROR_CODES
            and "status" not in given
        ):
            self.fail(
                f"{path}.code",
                code,
                f"unknown error code '{code.value}' (known: {', '.join(sorted(ERROR_CODES))};"
                " or give a 'status' to inject a code of your own)",
            )


def _kind(spec: Spec) -> str:
    if isinstance(spec, dict):
        return "mapping"
    if isinstance(spec, tuple) and spec[0] == "list":
        return "sequence"
    return "other" if isinstance(spec, tuple) else "scalar"


def _node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "mapping"
    return "sequence" if isinstance(node, yaml.SequenceNode) else "scalar"


def load_document(text_: str, source: str) -> dict[str, Any]:
    """Parse and check one scenario document; its plain data on success."""
    try:
        node = yaml.compose(text_, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ScenarioError(
            f"{source}{line}: not valid YAML: {getattr(exc, 'problem', exc)}"
        ) from None
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL):
        raise ScenarioError(f"{source}: the scenario is empty")
    checker = Checker(source)
    checker.check("", node, SCHEMA)
    if checker.problems:
        raise ScenarioError("\n".join(checker.problems), checker.problems)
    data = load_yaml(text_)
    assert isinstance(data, dict)
    return data


def known_error_status(code: str) -> int:
    """The HTTP status an injected code answers with when the scenario gives none."""
    return ERROR_CODES.get(code, 500)
