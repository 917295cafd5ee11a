"""Running the checks against one endpoint, and the report: a line per check, a summary, an exit
code (0 all passed, 1 any failed), or the same as JSON."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from emulator import __version__
from emulator.conformance.checks import CHECKS, Check
from emulator.conformance.options import Options
from emulator.conformance.probe import Mismatch, Probe, Skipped, Sleep

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
#: how many exchanges a failure's text shows from each end (JSON shows all)
SHOWN = 3


class Stopped(Exception):
    """The run cannot go on, and no check can say anything (exit 2): the endpoint cannot be
    reached, or the local webhook receiver cannot listen."""


@dataclass
class Outcome:
    name: str
    verdict: str
    writes: bool
    detail: str
    expected: str | None = None
    got: str | None = None
    evidence: list[str] = field(default_factory=list)


async def run(
    client: httpx.AsyncClient,
    options: Options,
    only: Sequence[str] = (),
    sleep: Sleep = asyncio.sleep,
) -> list[Outcome]:
    """Every check (or those named in `only`), in table order; `client` carries the base URL and
    the key. A transport failure stops the run (`Stopped`)."""
    probe = Probe(client, options, sleep)
    chosen = [c for c in CHECKS if not only or c.name in only]
    return [await _one(probe, check) for check in chosen]


async def _one(probe: Probe, check: Check) -> Outcome:
    if check.writes and not probe.options.writes:
        return Outcome(check.name, SKIP, True, "needs --allow-writes")
    probe.exchanges = []
    try:
        seen = await check.run(probe)
    except Mismatch as exc:
        return _outcome(probe, check, FAIL, str(exc), exc.expected, exc.got)
    except Skipped as exc:
        return _outcome(probe, check, SKIP, str(exc))
    except httpx.TransportError as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise Stopped(f"cannot reach {probe.client.base_url}: {reason}") from exc
    except OSError as exc:  # the only local I/O: the receiver's socket
        raise Stopped(f"the webhook receiver cannot listen: {exc.strerror or exc}") from exc
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        # an answer of a shape no reader foresaw: still a failure with its evidence
        return _outcome(probe, check, FAIL, f"an answer of another shape ({exc!r})")
    return _outcome(probe, check, PASS, seen)


def _outcome(
    probe: Probe,
    check: Check,
    verdict: str,
    detail: str,
    expected: str | None = None,
    got: str | None = None,
) -> Outcome:
    evidence = [str(e) for e in probe.exchanges]
    return Outcome(check.name, verdict, check.writes, detail, expected, got, evidence)


def base_url_problem(url: str) -> str | None:
    """Why `url` cannot be an endpoint's root, if it cannot."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks the range
    except ValueError as exc:
        return f"--base-url {url!r}: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"--base-url {url!r}: not an http:// or https:// URL"
    return None


def client_for(
    base_url: str, api_key: str, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/"),
        headers={
            "Authorization": f"Bearer {api_key}",
            "User-Agent": f"scaigrid-emulator-conformance/{__version__}",
        },
        timeout=httpx.Timeout(30.0),
        transport=transport,
    )


def exit_code(outcomes: Sequence[Outcome]) -> int:
    return 1 if any(o.verdict == FAIL for o in outcomes) else 0


def summary(outcomes: Sequence[Outcome]) -> dict[str, int]:
    return {v.lower(): sum(o.verdict == v for o in outcomes) for v in (PASS, FAIL, SKIP)}


def render_text(outcomes: Sequence[Outcome]) -> str:
    lines = []
    for o in outcomes:
        lines.append(f"{o.verdict} {o.name} — {o.detail}")
        if o.verdict == FAIL:
            shown = o.evidence
            if len(shown) > 2 * SHOWN:
                cut = len(shown) - 2 * SHOWN
                shown = [*shown[:SHOWN], f"... {cut} more", *shown[-SHOWN:]]
            lines.extend(f"    {e}" for e in shown)
    counts = summary(outcomes)
    line = f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"
    if any(o.writes and o.verdict == SKIP for o in outcomes):
        line += " (checks that create data or cost money need --allow-writes)"
    lines.append(line)
    return "\n".join(lines)


def render_json(base_url: str, outcomes: Sequence[Outcome]) -> str:
    doc: dict[str, Any] = {
        "base_url": base_url,
        "checks": [asdict(o) for o in outcomes],
        "summary": summary(outcomes),
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
