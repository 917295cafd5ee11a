"""A request answered by the upstream (`emulator.upstream`), in the engine's place.

Live calls and batch lines both come here once a scenario has had its say (a fault or canned
text never reaches the upstream): the request is checked as the engine checks it, so a bad body
or an unknown model is the emulator's error, and the answer gets the id and `created` the
engine's own would have, and the engine's usage estimate when the upstream reports none.
"""

from __future__ import annotations

from typing import Any

from emulator.endpoints import CHAT, GENERATE
from emulator.inference.engine import Engine
from emulator.upstream.service import Upstream


async def relayed(
    engine: Engine,
    upstream: Upstream,
    route: str,
    body: Any,
    *,
    created: int,
    identity: str,
) -> dict[str, Any] | None:
    """The upstream's answer, or None if the engine is to answer (a replay miss set to fake)."""
    engine.validate(route, body)
    response_id = engine.response_id(route, identity) if route in (CHAT, GENERATE) else None
    answer = await upstream.answer(route, body, response_id=response_id, created=created)
    if answer is not None and "usage" not in answer:
        answer["usage"] = engine.estimated_usage(route, body, answer)
    return answer
