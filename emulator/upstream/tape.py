"""Recordings of upstream answers: one pretty JSON file per normalised request, readable and
diffable, so a run recorded against a real model can be replayed without it.

The normalised request is what the upstream was sent (route, model as mapped, messages,
parameters), without the transport options `stream` and `stream_options` and with any value
under a credential-like key redacted; its file is named after the sha256 of its canonical JSON.
Headers, and so the upstream key, are never written. A file holds the request and the answer:

    {"request": {"route": ..., "body": {...}}, "response": {"status": 200, "body": {...}}}
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import orjson

from emulator.errors import ConfigError, ReplayMiss
from emulator.upstream.client import Reply

#: keys whose values are never written (compared without case)
SECRET_KEYS = frozenset(
    {"api_key", "apikey", "key", "authorization", "token", "secret", "password"}
)
REDACTED = "[redacted]"
_TRANSPORT = ("stream", "stream_options")


def normalise(route: str, body: dict[str, Any]) -> dict[str, Any]:
    sent = {k: v for k, v in body.items() if k not in _TRANSPORT}
    return {"route": route, "body": _redact(sent)}


def name_of(request: dict[str, Any]) -> str:
    """The file name of a normalised request."""
    canonical = orjson.dumps(request, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest() + ".json"


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if k.lower() in SECRET_KEYS else _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


class Tape:
    """A folder of recordings."""

    def __init__(self, folder: Path, *, create: bool) -> None:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        elif not folder.is_dir():
            raise ConfigError(f"--replay {folder}: no such folder")
        self.folder = folder

    def get(self, request: dict[str, Any]) -> Reply | None:
        """The recorded answer, or None. A recording edited out of shape is that request's
        `REPLAY_MISS`, saying which file, rather than an answer made up."""
        path = self.folder / name_of(request)
        try:
            recorded = orjson.loads(path.read_bytes())
            response = recorded["response"]
            status, body = response["status"], response["body"]
            if not isinstance(status, int):
                raise TypeError("status is not a number")
        except FileNotFoundError:
            return None
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ReplayMiss(f"The recording {path} cannot be read ({exc}).") from exc
        return Reply(status, body, response.get("retry_after"))

    def put(self, request: dict[str, Any], reply: Reply) -> None:
        """Write one recording whole (a temporary file renamed), so a reader never sees half."""
        response: dict[str, Any] = {"status": reply.status, "body": reply.body}
        if reply.retry_after is not None:
            response["retry_after"] = reply.retry_after
        text = orjson.dumps(
            {"request": request, "response": response},
            option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE,
        )
        path = self.folder / name_of(request)
        part = path.with_suffix(f".{os.getpid()}.part")
        part.write_bytes(text)
        part.replace(path)
