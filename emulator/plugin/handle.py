"""What a test gets: the `Scaigrid` handle (URLs, its own key, clients, the emulator's levers),
its webhook `Sink`s, and `EmulatorRefused`, the error a refused control call raises."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from emulator.plugin.servers import EmulatorServer, InProcessServer
from emulator.scenario.registry import looks_like_yaml
from emulator.tenancy import open_tenant_id

PROBE = {"X-Emulator-Probe": "scaigrid-fixture"}


class EmulatorRefused(httpx.HTTPStatusError):
    """The control plane refused a call: the message is the server's own (its code, message and
    every detail), not a bare status. Still an `httpx.HTTPStatusError`."""

    def __init__(self, response: httpx.Response) -> None:
        request = response.request
        text = f"{request.method} {request.url.path} answered {response.status_code}"
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            text += f": {response.text[:500]}"
        else:
            text += f" {error.get('code')}: {error.get('message')}"
            for detail in error.get("details") or []:
                if detail.get("message") and detail["message"] not in text:
                    text += f"\n  {detail.get('field', '')}: {detail['message']}"
        super().__init__(text, request=request, response=response)


class SignatureMismatch(AssertionError):
    """A post a sink received is not signed with the sink's secret."""


class Sink:
    """A built-in receiver for one test: its `url`, a webhook to it (`register`), and what it
    received. Sinks live for the server's session, so the name is made this test's own."""

    def __init__(self, owner: Scaigrid, name: str, secret: str, query: dict[str, int]) -> None:
        self._owner = owner
        self.name = f"{owner.tenant_id}-{name}"
        self.secret = secret
        self.url = f"{owner.base_url}/_emulator/sink/{quote(self.name, safe='')}"
        if query:
            self.url += "?" + urlencode(query)

    def register(self, events: list[str] | None = None, **fields: Any) -> dict[str, Any]:
        """A webhook of this test's tenant that delivers here, signed with this sink's secret."""
        body: dict[str, Any] = {"url": self.url, "secret": self.secret, **fields}
        if events is not None:
            body["events"] = events
        resp = self._owner.client.post("/v1/webhooks", json=body)
        resp.raise_for_status()
        webhook: dict[str, Any] = resp.json()["data"]
        return webhook

    def received(self) -> list[dict[str, Any]]:
        """Every post, oldest first: `received_at`, `headers`, `body` (raw text), `status` (what
        the sink answered) and `verified` (whether the signature matches the secret)."""
        path = f"/sink/{quote(self.name, safe='')}"
        items: list[dict[str, Any]] = self._owner._call("GET", path)["items"]
        for item in items:
            given = item["headers"].get("x-scaigrid-signature", "")
            expected = (
                "sha256="
                + hmac.new(self.secret.encode(), item["body"].encode(), hashlib.sha256).hexdigest()
            )
            item["verified"] = hmac.compare_digest(given, expected)
        return items

    def events(self, *, verify: bool = True) -> list[dict[str, Any]]:
        """The events received, parsed, oldest first. With `verify` (the default) a post whose
        signature does not match the secret raises `SignatureMismatch`."""
        out = []
        for item in self.received():
            if verify and not item["verified"]:
                raise SignatureMismatch(
                    f"sink {self.name!r}: the post received at {item['received_at']} (event "
                    f"{item['headers'].get('x-scaigrid-event-id')}) is not signed with this "
                    "sink's secret"
                )
            out.append(json.loads(item["body"]))
        return out


class Scaigrid:
    """What a test gets: URLs, its own key, a client, and the levers of the emulator."""

    def __init__(self, server: EmulatorServer | InProcessServer, api_key: str) -> None:
        self._server = server
        self.base_url = server.base_url
        self.oai_base_url = f"{server.base_url}/oai/v1"  # the OpenAI-compatible surface
        self.api_key = api_key
        self.tenant_id = open_tenant_id(self.api_key)
        #: every tenant this test has (`@pytest.mark.scaigrid(tenants=N)`); the first is this one
        self.tenants: list[Scaigrid] = [self]
        # both clients ride the session's one connection pool: building them costs microseconds
        self.client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=30,
            transport=server.transport,
        )
        self._control = httpx.Client(
            base_url=f"{self.base_url}/_emulator", timeout=60, transport=server.transport
        )

    def async_client(self, **options: Any) -> httpx.AsyncClient:
        """An `httpx.AsyncClient` with this test's key (`options` go to it); close it yourself."""
        if self._server.async_transport is not None:
            options.setdefault("transport", self._server.async_transport)
        headers = {"Authorization": f"Bearer {self.api_key}", **options.pop("headers", {})}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30, **options)

    def openai_client(self, *, async_: bool = False, **options: Any) -> Any:
        """The official `openai` SDK's client (`AsyncOpenAI` with `async_=True`) pointed at the
        emulator with this test's key; `options` go to the client (`max_retries`, ...)."""
        import openai

        options = {"base_url": self.oai_base_url, "api_key": self.api_key, **options}
        if async_:
            if self._server.async_transport is not None and "http_client" not in options:
                options["http_client"] = httpx.AsyncClient(transport=self._server.async_transport)
            return openai.AsyncOpenAI(**options)
        options.setdefault("http_client", httpx.Client(transport=self._server.transport))
        return openai.OpenAI(**options)

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        resp = self._control.request(method, path, **kw)
        if resp.is_error:
            raise EmulatorRefused(resp)
        return resp.json()["data"]

    def advance(
        self, seconds: float = 0, *, minutes: float = 0, hours: float = 0
    ) -> dict[str, Any]:
        """Move the emulator clock forward; returns once everything due by then is processed."""
        data: dict[str, Any] = self._call(
            "POST", "/clock/advance", json={"seconds": seconds, "minutes": minutes, "hours": hours}
        )
        return data

    def sleep(self, seconds: float) -> None:
        """A stand-in for `time.sleep` to hand to a polling loop under test: the emulator clock
        moves `seconds`, and what falls due is processed, instead of the test waiting."""
        self.advance(seconds)

    def use_scenario(self, name_or_path: str | Path) -> None:
        """Run this test's tenant under a bundled scenario, a YAML file, or inline YAML text (one
        line too: `{faults: [...]}`, `name: x`). A refused scenario raises `EmulatorRefused`
        with the server's message."""
        ref = str(name_or_path)
        body = {"yaml": ref} if looks_like_yaml(ref) else {"name": ref}
        self._call("PUT", f"/tenants/{self.tenant_id}/scenario", json=body)

    def wait_for(self, batch_id: str, status: str) -> dict[str, Any]:
        """The batch once it has `status`. Processes what is due now; it never waits on time:
        if the batch needs later instants to get there, advance the clock first."""
        self.advance(0)
        # the test's own look, not the client's: the verdict does not judge it
        resp = self.client.get(f"/v1/inference/batch/{batch_id}", headers=PROBE)
        resp.raise_for_status()
        batch: dict[str, Any] = resp.json()["data"]
        if batch["status"] != status:
            raise AssertionError(
                f"batch {batch_id} is {batch['status']}, not {status}, at emulator time "
                f"{self.now()}; advance the clock if it is waiting on time"
            )
        return batch

    def now(self) -> str:
        now: str = self._call("GET", "/clock")["now"]
        return now

    def journal(self, **filters: Any) -> list[dict[str, Any]]:
        """This test's requests, oldest first, as the server's journal has them (filters: method,
        path (a glob, or a prefix), status (404 or 4xx), since, until, limit)."""
        params = {"tenant_id": self.tenant_id, **filters}
        items: list[dict[str, Any]] = self._call("GET", "/journal", params=params)["items"]
        return items

    def requests(
        self, method: str | None = None, path: str | None = None, status: int | str | None = None
    ) -> list[dict[str, Any]]:
        """This test's requests, oldest first, in the style of respx's `calls`: each a journal
        entry whose `request` and `response` also have `json` (the body parsed, or None when it
        is not JSON or was truncated; `request` and `response` are None once the journal no
        longer holds them). `path` is an fnmatch glob (`/v1/inference/batch/*`)."""
        filters = {k: v for k, v in (("method", method), ("status", status)) if v is not None}
        items = self.journal(**filters)
        if path is not None:
            items = [e for e in items if fnmatch.fnmatchcase(e["path"], path)]
        for entry in items:
            for side in ("request", "response"):
                part = entry[side]
                if part is None:
                    continue
                part["json"] = None
                if part["body"] and not part["truncated"]:
                    with contextlib.suppress(ValueError):
                        part["json"] = json.loads(part["body"])
        return items

    def assert_called(self, method: str, path_glob: str, times: int | None = None) -> None:
        """This test called `method` on a path matching `path_glob` (`times` times exactly, or
        at least once); else an AssertionError listing what it called instead."""
        calls = self.requests()
        matched = [
            e
            for e in calls
            if e["method"] == method.upper() and fnmatch.fnmatchcase(e["path"], path_glob)
        ]
        if (len(matched) == times) if times is not None else matched:
            return
        wanted = (
            f"{times} time{'s' if times != 1 else ''}" if times is not None else "at least once"
        )
        listed = "\n".join(
            f"  {e['method']} {e['path']}{'?' + e['query'] if e['query'] else ''} -> {e['status']}"
            for e in calls
        )
        raise AssertionError(
            f"expected {method.upper()} {path_glob} {wanted}, called {len(matched)} "
            f"time{'s' if len(matched) != 1 else ''}; this test's requests:\n"
            + (listed or "  (none)")
        )

    def verdict(self, **thresholds: float) -> list[dict[str, Any]]:
        """Findings on how this test's client used the service (`GET /_emulator/verdict` for
        this tenant): each has `check`, `subject`, `message` and `evidence` (request ids and
        times). `thresholds` (`min_poll_interval`, `rate_limit`) override the server's."""
        params = {"tenant_id": self.tenant_id, **thresholds}
        findings: list[dict[str, Any]] = self._call("GET", "/verdict", params=params)["findings"]
        return findings

    def sink(
        self,
        name: str = "webhooks",
        secret: str | None = None,
        *,
        status: int | None = None,
        count: int | None = None,
    ) -> Sink:
        """A built-in webhook receiver of this test. `status` (for the first `count` posts, or
        all of them) makes it answer with that status instead of 200, to see retries. Without
        a `secret`, one derived from the key and the name: the same in every run."""
        query = {k: v for k, v in (("status", status), ("count", count)) if v is not None}
        if secret is None:
            secret = "whsec_" + hashlib.sha256(f"{self.api_key}:{name}".encode()).hexdigest()[:48]
        return Sink(self, name, secret, query)

    def close(self) -> None:
        self.client.close()
        self._control.close()
