"""How a check talks to an endpoint and says what it saw: every exchange is kept as evidence, a
difference from the assumption is a `Mismatch` (expected, got), and reading an answer never
raises anything else, so a check's failure is always a sentence, never a traceback.

Only HTTP: nothing here knows whether the endpoint is the emulator or the real service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from emulator import wire
from emulator.conformance.options import Options
from emulator.errors import EmulatorError

Sleep = Callable[[float], Awaitable[None]]

#: the keys of each envelope, as the emulator writes them (`emulator.wire`)
OK_KEYS = frozenset(wire.ok(None))
PAGE_KEYS = frozenset(wire.page([], False, None))
PAGINATION_KEYS = frozenset(wire.page([], False, None)["pagination"])
ERROR_KEYS = frozenset(wire.error(EmulatorError(), "req_"))
REQUEST_ID_PREFIX = "req_"


class Mismatch(Exception):
    """The endpoint differs from the assumption: what the check expected and what it got."""

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"expected {expected}, got {got}")
        self.expected, self.got = expected, got


class Skipped(Exception):
    """The check cannot run here (why is the message)."""


class ReadOnly(Exception):
    """A check that is not declared as writing tried to send a request that is not a GET: a
    bug of the suite, refused before anything reaches the endpoint."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and what its answer showed: the status and the error code and message, or the
    body's top-level keys."""

    method: str
    target: str
    status: int
    seen: str

    def __str__(self) -> str:
        return f"{self.method} {self.target} -> {self.status} {self.seen}".rstrip()


@dataclass
class Probe:
    """An httpx client for one endpoint and key, and the exchanges of the check running now."""

    client: httpx.AsyncClient
    options: Options
    sleep: Sleep
    exchanges: list[Exchange] = field(default_factory=list)
    #: what one check made and later checks reuse (the batch submitted, the finished batch, ...)
    shared: dict[str, Any] = field(default_factory=dict)

    async def get(self, target: str, *, auth: bool = True, **kw: Any) -> httpx.Response:
        return await self.send("GET", target, auth=auth, **kw)

    async def post(self, target: str, **kw: Any) -> httpx.Response:
        return await self.send("POST", target, **kw)

    async def delete(self, target: str) -> httpx.Response:
        return await self.send("DELETE", target)

    async def send(
        self, method: str, target: str, *, auth: bool = True, **kw: Any
    ) -> httpx.Response:
        if method != "GET" and not self.options.writes:
            raise ReadOnly(f"{method} {target} in a read-only run")
        headers = dict(kw.pop("headers", None) or {})
        request = self.client.build_request(method, target, headers=headers, **kw)
        if not auth:
            request.headers.pop("authorization", None)
        resp = await self.client.send(request)
        await resp.aread()
        self.exchanges.append(Exchange(method, _shown(target), resp.status_code, describe(resp)))
        return resp


def _shown(target: str) -> str:
    """A target as evidence: a pre-signed link's query is its credential, so it is cut."""
    return target.split("?", 1)[0] + ("?..." if "?" in target and "signature" in target else "")


def body_of(resp: httpx.Response) -> Any:
    """The JSON body, or None when there is none."""
    try:
        return orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return None


def describe(resp: httpx.Response) -> str:
    """An answer in a few words: an error's code and message, a JSON object's keys, or the
    content type and the start of the text."""
    body = body_of(resp)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "code" in error:
            return f"{error.get('code')} {str(error.get('message', ''))!r}"
        return "{" + ", ".join(map(str, body)) + "}"
    kind = resp.headers.get("content-type", "no content type").split(";")[0]
    text = resp.text[:60].replace("\n", "\\n")
    return f"{kind} {text!r}" if text else kind


# --- reading answers -----------------------------------------------------------------------------


def expect_status(resp: httpx.Response, status: int) -> None:
    if resp.status_code != status:
        raise Mismatch(f"HTTP {status}", f"{resp.status_code} {describe(resp)}")


def ok_data(resp: httpx.Response) -> Any:
    """The `data` of a 200 success envelope `{"status": "ok", "data": ...}`."""
    expect_status(resp, 200)
    body = body_of(resp)
    if not isinstance(body, dict) or body.get("status") != "ok" or set(body) != OK_KEYS:
        raise Mismatch(f"the envelope {keys(OK_KEYS)} with status 'ok'", describe(resp))
    return body["data"]


def page_of(resp: httpx.Response) -> tuple[list[Any], dict[str, Any]]:
    """The items and the pagination object of a list envelope."""
    expect_status(resp, 200)
    body = body_of(resp)
    expected = f"the list envelope {keys(PAGE_KEYS)} with data.items and pagination"
    if not isinstance(body, dict) or set(body) != PAGE_KEYS or body.get("status") != "ok":
        raise Mismatch(expected, describe(resp))
    items = body["data"].get("items") if isinstance(body["data"], dict) else None
    pagination = body["pagination"]
    if not isinstance(items, list) or not isinstance(pagination, dict):
        raise Mismatch(expected, describe(resp))
    return items, pagination


def error_of(resp: httpx.Response, err: type[EmulatorError]) -> dict[str, Any]:
    """The `error` of an error envelope with `err`'s status and code (both from `errors.py`)."""
    body = body_of(resp)
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if resp.status_code != err.status or code != err.code:
        raise Mismatch(f"{err.status} {err.code}", f"{resp.status_code} {describe(resp)}")
    assert isinstance(body, dict) and isinstance(error, dict)
    if set(body) != ERROR_KEYS or body["status"] != "error":
        raise Mismatch(f"the error envelope {keys(ERROR_KEYS)}", describe(resp))
    if not isinstance(error.get("message"), str) or not error["message"]:
        raise Mismatch("error.message a non-empty string", repr(error.get("message")))
    meta = body["meta"]
    request_id = meta.get("request_id") if isinstance(meta, dict) else None
    if not isinstance(request_id, str) or not request_id.startswith(REQUEST_ID_PREFIX):
        raise Mismatch(f"meta.request_id starting {REQUEST_ID_PREFIX}", repr(meta))
    return error


def need(obj: Any, name: str, types: type | tuple[type, ...], where: str) -> Any:
    """`obj[name]`, after checking it is there with one of `types` (None allowed when listed)."""
    if not isinstance(obj, dict) or name not in obj:
        raise Mismatch(f"{where}.{name}", f"no such field ({describe_keys(obj)})")
    value = obj[name]
    allowed = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
        names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
        raise Mismatch(f"{where}.{name} of type {names}", repr(value)[:80])
    return value


def same_keys(obj: Any, expected: frozenset[str], where: str) -> None:
    if not isinstance(obj, dict) or set(obj) != expected:
        got = set(obj) if isinstance(obj, dict) else set()
        missing, extra = sorted(expected - got), sorted(got - expected)
        raise Mismatch(
            f"{where} with the fields {keys(expected)}",
            f"missing {missing or 'none'}, extra {extra or 'none'}",
        )


def keys(names: frozenset[str] | set[str]) -> str:
    return "{" + ", ".join(sorted(names)) + "}"


def describe_keys(obj: Any) -> str:
    return f"fields {keys(set(obj))}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
