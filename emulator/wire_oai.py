"""Wire shapes of the OpenAI-compatible surface (`/oai/v1`), in one place: the error body, lists,
files, batches, batch result lines, models, and what OpenAI's inference bodies add to ours.

Shapes follow `openai-openapi.yaml` and the batch contract the README's assumptions table cites;
an assumption is corrected by editing this module alone. Timestamps are integer Unix seconds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from emulator.errors import ERROR_CODES, EmulatorError, ValidationError
from emulator.records import BatchRecord, FileRecord, Model
from emulator.schema import (
    Components,
    Param,
    Schema,
    array,
    boolean,
    const,
    enum,
    integer,
    mapping,
    nullable,
    obj,
    string,
)
from emulator.status import OaiStatus

BATCHES_LIMIT = (20, 100)  # default, maximum
FILES_LIMIT = (10_000, 10_000)
#: the `created` OpenAI's model objects carry; the catalogue has no dates (2024-01-01T00:00:00Z)
MODEL_CREATED = 1_704_067_200

#: the named schemas of this module's shapes, each declared beside the function that builds it
COMPONENTS = Components()


# --- result files --------------------------------------------------------------------------------

#: an output or error file's id names its batch: `file-<batch id without batch_>-<kind>`
RESULT_FILE = re.compile(r"file-([0-9a-f]+)-(output|errors)")


def result_file_id(batch_id: str, kind: str) -> str:
    return f"file-{batch_id.removeprefix('batch_')}-{kind}"


def batch_of_result_file(file_id: str) -> str | None:
    """The batch an output or error file id names, or None for any other id."""
    match = RESULT_FILE.fullmatch(file_id)
    return f"batch_{match.group(1)}" if match else None


# --- errors --------------------------------------------------------------------------------------

#: native code -> (OpenAI `type`, OpenAI `code`) where OpenAI has its own; any other code keeps
#: its status's type and its ScaiGrid name in lower case
_ERROR_NAMES: dict[str, tuple[str, str]] = {
    "AUTH_TOKEN_INVALID": ("invalid_request_error", "invalid_api_key"),
    "MODEL_NOT_FOUND": ("invalid_request_error", "model_not_found"),
    "RATE_LIMITED": ("requests", "rate_limit_exceeded"),
    "QUOTA_EXCEEDED": ("insufficient_quota", "insufficient_quota"),
}
#: OpenAI answers an invalid request with 400 where ScaiGrid uses 422
_STATUS = {422: 400}


def status_of(native_status: int) -> int:
    return _STATUS.get(native_status, native_status)


def error_object(
    code: str, message: str, native_status: int, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's `error` object for a ScaiGrid error code."""
    kind, name = _ERROR_NAMES.get(code) or (
        "server_error" if native_status >= 500 else "invalid_request_error",
        code.lower(),
    )
    return {"message": message, "type": kind, "param": param, "code": name}


def native_code(oai_code: str) -> str:
    """The ScaiGrid code an OpenAI error `code` stands for (the inverse of `error_object`)."""
    return _NATIVE_CODES.get(oai_code, oai_code.upper())


_NATIVE_CODES = {name: code for code, (_, name) in _ERROR_NAMES.items()}


ERROR = COMPONENTS.add(
    "OaiError",
    obj(
        {"error": obj({"message": string(), "type": string(), "param": nullable(string()),
                       "code": nullable(string())})}
    ),
)  # fmt: skip


def error(err: EmulatorError) -> dict[str, Any]:
    """The body of an error answer on the OpenAI surface."""
    field = next((d["field"] for d in err.details or () if "field" in d), None)
    return {"error": error_object(err.code, err.message, err.status, field)}


# --- lists ---------------------------------------------------------------------------------------


def page_of(item: Schema) -> Schema:
    """The schema of `page(items, ...)`."""
    return obj(
        {"object": const("list"), "data": array(item), "first_id": nullable(string()),
         "last_id": nullable(string()), "has_more": boolean()}
    )  # fmt: skip


def page(items: Sequence[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """A cursor page: the next page is `?after=<last_id>` (the SDK sends the last item's id)."""
    return {
        "object": "list",
        "data": list(items),
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


AFTER = Param("after", string(), "the id the previous page ended with (its `last_id`)")


def limit_param(bounds: tuple[int, int]) -> Param:
    default, maximum = bounds
    return Param(
        "limit",
        integer(1, maximum, default=default),
        f"an integer from 1 to {maximum}: the page size",
    )


def parse_limit(raw: str | None, bounds: tuple[int, int]) -> int:
    default, maximum = bounds
    if raw is None:
        return default
    value = int(raw) if raw.isascii() and raw.isdigit() else 0
    if not 1 <= value <= maximum:
        raise ValidationError(
            "Invalid limit.",
            details=[{"field": "limit", "message": f"must be an integer from 1 to {maximum}"}],
        )
    return value


# --- resources -----------------------------------------------------------------------------------


FILE = COMPONENTS.add(
    "OaiFile",
    obj(
        {"id": string(), "object": const("file"), "bytes": integer(0), "created_at": integer(0),
         "filename": string(), "purpose": string(), "status": const("processed"),
         "status_details": {"type": "null"}, "expires_at": {"type": "null"}}
    ),
)  # fmt: skip
FILE_DELETED = COMPONENTS.add(
    "OaiFileDeleted", obj({"id": string(), "object": const("file"), "deleted": const(True)})
)


def file(f: FileRecord) -> dict[str, Any]:
    return {
        "id": f.id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": int(f.created_at),
        "filename": f.filename,
        "purpose": f.purpose,
        "status": "processed",  # deprecated, and still required by the spec and the SDK
        "status_details": None,
        "expires_at": None,
    }


def file_deleted(file_id: str) -> dict[str, Any]:
    return {"id": file_id, "object": "file", "deleted": True}


MODEL = COMPONENTS.add(
    "OaiModel",
    obj({"id": string(), "object": const("model"), "created": integer(0),
         "owned_by": string()}),
)  # fmt: skip
MODELS = COMPONENTS.add("OaiModelList", obj({"object": const("list"), "data": array(MODEL)}))


def model(m: Model) -> dict[str, Any]:
    owner = m.slug.partition("/")[0] if "/" in m.slug else "scailabs"
    return {"id": m.slug, "object": "model", "created": MODEL_CREATED, "owned_by": owner}


def models(ms: Sequence[Model]) -> dict[str, Any]:
    return {"object": "list", "data": [model(m) for m in ms]}


@dataclass(frozen=True, slots=True)
class BatchFacts:
    """What the OpenAI view of a batch knows beyond its record (`emulator.batch.oai` finds it)."""

    status: str
    endpoint: str
    counts: tuple[int, int, int]  # total, completed, failed
    output_file_id: str | None = None
    error_file_id: str | None = None
    finalizing_at: float | None = None
    cancelling_at: float | None = None


def _int(ts: float | None) -> int | None:
    return None if ts is None else int(ts)


_STAMP = nullable(integer(0))
_BATCH_ERROR = obj({"code": string(), "message": string(), "param": nullable(string()),
                    "line": nullable(integer(1))})  # fmt: skip
BATCH = COMPONENTS.add(
    "OaiBatch",
    obj(
        {"id": string(pattern="^batch_"), "object": const("batch"), "endpoint": string(),
         "errors": nullable(obj({"object": const("list"), "data": array(_BATCH_ERROR)})),
         "input_file_id": nullable(string()), "completion_window": string(),
         "status": enum(s.value for s in OaiStatus),
         "output_file_id": nullable(string()), "error_file_id": nullable(string()),
         "created_at": integer(0), "in_progress_at": _STAMP, "expires_at": integer(0),
         "finalizing_at": _STAMP, "completed_at": _STAMP, "failed_at": _STAMP,
         "expired_at": _STAMP, "cancelling_at": _STAMP, "cancelled_at": _STAMP,
         "request_counts": obj({"total": integer(0), "completed": integer(0),
                                "failed": integer(0)}),
         "metadata": nullable(mapping(string())),
         "usage": obj({"input_tokens": integer(0),
                       "input_tokens_details": obj({"cached_tokens": integer(0)}),
                       "output_tokens": integer(0),
                       "output_tokens_details": obj({"reasoning_tokens": integer(0)}),
                       "total_tokens": integer(0)})}
    ),
)  # fmt: skip


def batch(b: BatchRecord, facts: BatchFacts) -> dict[str, Any]:
    expired = facts.status == "expired"
    total, completed, failed = facts.counts
    return {
        "id": b.id,
        "object": "batch",
        "endpoint": facts.endpoint,
        "errors": batch_errors(b.error) if facts.status == "failed" else None,
        "input_file_id": b.input_file_id,
        "completion_window": b.completion_window,
        "status": facts.status,
        "output_file_id": facts.output_file_id,
        "error_file_id": facts.error_file_id,
        "created_at": int(b.created_at),
        "in_progress_at": _int(b.started_at),
        "expires_at": int(b.expires_at),
        "finalizing_at": _int(facts.finalizing_at),
        "completed_at": None if expired else _int(b.completed_at),
        "failed_at": _int(b.failed_at),
        "expired_at": _int(b.completed_at) if expired else None,
        "cancelling_at": _int(facts.cancelling_at),
        "cancelled_at": _int(b.cancelled_at),
        "request_counts": {"total": total, "completed": completed, "failed": failed},
        "metadata": b.metadata or None,
        "usage": {
            "input_tokens": b.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": b.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": b.input_tokens + b.output_tokens,
        },
    }


#: a parse problem's message (as `emulator.batch.parsing` words it) -> OpenAI's validation code;
#: the first needle found in the message wins
_LINE_CODES: tuple[tuple[str, str], ...] = (
    ("does not match the batch's endpoint", "url_mismatch"),
    ("not valid JSON", "invalid_json_line"),
    ("not a JSON object", "invalid_json_line"),
    ("custom_id", "invalid_custom_id"),
    ("method must be POST", "invalid_method"),
    ("is not a batchable route", "invalid_url"),
    ("body must be a JSON object", "invalid_body"),
    ("the input file has no requests", "empty_file"),
)


def line_code(message: str) -> str:
    if message.startswith("duplicate custom_id"):
        return "duplicate_custom_id"
    return next((code for needle, code in _LINE_CODES if needle in message), "invalid_input")


def batch_errors(error_: dict[str, Any] | None) -> dict[str, Any]:
    """A failed batch's `errors`: one item per problem line of the native error's details."""
    details = (error_ or {}).get("details") or [{"message": (error_ or {}).get("message", "")}]
    return {
        "object": "list",
        "data": [
            {
                "code": line_code(d["message"]),
                "message": d["message"],
                "param": None,
                "line": d.get("line"),
            }
            for d in details
        ],
    }


# --- batch result files --------------------------------------------------------------------------

OUTPUT, ERRORS = "output", "errors"

#: native codes of requests a batch never ran -> OpenAI's code and message for their error line
LEFTOVERS: dict[str, tuple[str, str]] = {
    "COMPLETION_WINDOW_EXPIRED": (
        "batch_expired",
        "This request could not be executed before the completion window expired.",
    ),
    "BATCH_CANCELLED": (
        "batch_cancelled",
        "This request was not executed because the batch was cancelled.",
    ),
}


def result_line(
    line_id: str, request_id: str, custom_id: str, ok: bool, payload: bytes
) -> tuple[str, str | None, bytes]:
    """(the file it belongs to, the leftover code if it never ran, the JSONL line) of one stored
    result. A success embeds its stored body as is; a request that ran and failed carries its
    status and OpenAI's error body in `response`; one that never ran has `response: null`."""
    head = b'{"id":"' + line_id.encode() + b'","custom_id":' + orjson.dumps(custom_id)
    if ok:
        response = b'{"status_code":200,"request_id":"' + request_id.encode() + b'","body":'
        return OUTPUT, None, head + b',"response":' + response + payload + b'},"error":null}\n'
    failure = orjson.loads(payload)
    code, message = failure.get("code", "INTERNAL_ERROR"), failure.get("message", "")
    leftover = LEFTOVERS.get(code)
    if leftover is not None:
        body = {"code": leftover[0], "message": leftover[1]}
        return ERRORS, code, head + b',"response":null,"error":' + orjson.dumps(body) + b"}\n"
    native = ERROR_CODES.get(code, 500)
    response_ = {
        "status_code": status_of(native),
        "request_id": request_id,
        "body": {"error": error_object(code, message, native)},
    }
    return ERRORS, None, head + b',"response":' + orjson.dumps(response_) + b',"error":null}\n'


# --- inference -----------------------------------------------------------------------------------


def chat_completion(resp: dict[str, Any]) -> dict[str, Any]:
    """Our chat answer is OpenAI's shape already; the spec also requires `logprobs` and the
    message's `refusal`, which the emulator never has."""
    choices = [
        {**c, "message": {**c["message"], "refusal": None}, "logprobs": None}
        for c in resp["choices"]
    ]
    return {**resp, "choices": choices}


def completion(resp: dict[str, Any]) -> dict[str, Any]:
    return {**resp, "choices": [{**c, "logprobs": None} for c in resp["choices"]]}
