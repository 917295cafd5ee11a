"""The transport faults' vocabulary (`api_faults[].transport`): one table of what breaks on the
wire, each fault with its parameters. The schema checks scenarios against it, the model reads
them with it, and `emulator.api.transport` acts on each name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import yaml

from emulator.scenario.checks import Check, duration_seconds, duration_up_to, integer, one_of

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
#: what breaks on the wire, each fault with its parameters; the README's transport table says
#: the same (a truncation's `bytes` default, None, is half the
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
