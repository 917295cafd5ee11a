"""The HTTP calls the command-line client makes, one method each; answers are the envelope's
`data`, and a refusal is an `ApiError` with the server's code and message.

httpx is imported when a client is made, not with this module, so `serve` never pays for it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import httpx

#: inline input above this many bytes is uploaded as a file first (ScaiGrid's inline limit)
INLINE_LIMIT = 10 * 1024 * 1024


class ApiError(Exception):
    """The server refused: its error code, message and details, and the HTTP status."""

    def __init__(
        self, status: int, code: str, message: str, details: list[Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.details = details or []


class Unreachable(Exception):
    """No answer from the server at all (refused connection, timeout, bad URL)."""


class Client:
    """The batch API at `base_url` (without `/v1`), with an API key for `/v1` calls and an
    admin token for the emulator's control plane (`/_emulator`), when it has one."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        admin_token: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        import httpx

        self._httpx = httpx
        self.api_key = api_key
        self.admin_token = admin_token
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    # --- plumbing ------------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if path.startswith("/_emulator"):
            if self.admin_token:
                headers["X-Emulator-Admin-Token"] = self.admin_token
        elif self.api_key and path.startswith("/v1"):
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            resp = self.http.request(method, path, headers=headers, **kw)
        except self._httpx.HTTPError as exc:
            raise Unreachable(f"{self.http.base_url}{path}: {exc or type(exc).__name__}") from None
        if resp.is_error:
            raise _refusal(resp)
        return resp

    def _data(self, method: str, path: str, **kw: Any) -> Any:
        resp = self._send(method, path, **kw)
        try:
            return resp.json()["data"]
        except (ValueError, KeyError, TypeError):
            raise ApiError(resp.status_code, "UNEXPECTED_ANSWER", _excerpt(resp)) from None

    # --- batches -------------------------------------------------------------------------------

    def submit(
        self,
        path: Path,
        window: str | None,
        metadata: dict[str, str],
        scenario: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if path.stat().st_size <= INLINE_LIMIT:
            body["input_file_base64"] = base64.b64encode(path.read_bytes()).decode()
        else:
            body["input_file_url"] = f"scaigrid://file/{self.upload(path)['id']}"
        if window:
            body["endpoint_completion_window"] = window
        if metadata:
            body["metadata"] = metadata
        headers = {"X-Emulator-Scenario": scenario} if scenario else {}
        data: dict[str, Any] = self._data("POST", "/v1/inference/batch", json=body, headers=headers)
        return data

    def batch(self, batch_id: str) -> tuple[dict[str, Any], float | None]:
        """The batch, and the server's time of the answer (its `Date`: the emulator clock's)."""
        resp = self._send("GET", f"/v1/inference/batch/{quote(batch_id, safe='')}")
        return resp.json()["data"], _date(resp)

    def batches(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
        items: list[dict[str, Any]] = self._data("GET", "/v1/inference/batch", params=params)[
            "items"
        ]
        return items

    def cancel(self, batch_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._data(
            "POST", f"/v1/inference/batch/{quote(batch_id, safe='')}/cancel"
        )
        return data

    def download(self, url: str) -> Iterator[bytes]:
        """A results link's content, as it arrives (the link is pre-signed: no key is sent)."""
        try:
            with self.http.stream("GET", url) as resp:
                if resp.is_error:
                    resp.read()
                    raise _refusal(resp)
                yield from resp.iter_bytes()
        except self._httpx.HTTPError as exc:
            raise Unreachable(f"{url}: {exc or type(exc).__name__}") from None

    # --- files ---------------------------------------------------------------------------------

    def upload(self, path: Path, purpose: str = "batch") -> dict[str, Any]:
        with path.open("rb") as stream:
            files = {"file": (path.name, stream, "application/jsonl")}
            data: dict[str, Any] = self._data(
                "POST", "/v1/files", files=files, data={"purpose": purpose}
            )
        return data

    def files(self, limit: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._data("GET", "/v1/files", params={"limit": limit})[
            "items"
        ]
        return items

    def delete_file(self, file_id: str) -> Any:
        return self._data("DELETE", f"/v1/files/{quote(file_id, safe='')}")

    # --- the emulator's control plane ----------------------------------------------------------

    def clock(self) -> dict[str, Any]:
        data: dict[str, Any] = self._data("GET", "/_emulator/clock")
        return data

    def advance(self, seconds: float) -> dict[str, Any]:
        data: dict[str, Any] = self._data(
            "POST", "/_emulator/clock/advance", json={"seconds": seconds}
        )
        return data

    def use_scenario(self, body: dict[str, str], tenant: str | None) -> dict[str, Any]:
        path = "/_emulator/scenario"
        if tenant is not None:
            path = f"/_emulator/tenants/{quote(tenant, safe='')}/scenario"
        data: dict[str, Any] = self._data("PUT", path, json=body)
        return data


def _refusal(resp: httpx.Response) -> ApiError:
    """The error in a refusal's body: ScaiGrid's envelope, OpenAI's body, or the status alone."""
    try:
        body = resp.json()
        error = body["error"]
        return ApiError(
            resp.status_code, str(error["code"]), str(error["message"]), error.get("details")
        )
    except (ValueError, KeyError, TypeError):
        return ApiError(resp.status_code, f"HTTP_{resp.status_code}", _excerpt(resp))


def _excerpt(resp: httpx.Response) -> str:
    text = resp.text.strip()
    return text[:200] if text else resp.reason_phrase


def _date(resp: httpx.Response) -> float | None:
    try:
        return parsedate_to_datetime(resp.headers["date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None
