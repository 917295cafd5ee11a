"""The scenario language's schema, and its checker.

A scenario file is checked on the YAML node tree (not on the loaded data) so that every problem
names the file, the path in the document and the line: `flaky.yaml: faults[1].match.every
(line 12): must be an integer >= 1`. The schema is a table; `emulator.scenario.model` builds objects
only from documents that passed it.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from emulator.errors import ERROR_CODES, ConfigError
from emulator.scenario.checks import (
    boolean,
    duration,
    error_code,
    http_status,
    integer,
    number,
    one_of,
    regex,
    text,
)
from emulator.scenario.transport_faults import REQUIRED_PARAM, TRANSPORT, TRANSPORT_FAULTS
from emulator.yamlfile import SAFE_LOADER, load_yaml


class ScenarioError(ConfigError):
    """A scenario document that does not fit the language: every problem found, one a line."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


_NULL = "tag:yaml.org,2002:null"


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
