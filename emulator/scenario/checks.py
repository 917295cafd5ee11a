"""The checks a scenario's values are held to, each a function of a YAML node that returns a
problem or None (`emulator.scenario.schema` builds the language's table from them), and the
reading of durations."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import yaml

Check = Callable[[yaml.Node], str | None]  # returns a problem, or None

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


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
