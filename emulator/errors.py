"""The emulator's error hierarchy: every failure a client can see, with its HTTP status and code.

Domain code raises these; `emulator.api.http.render_error` turns any of them into ScaiGrid's error
envelope in one place. The codes and statuses follow ScaiGrid's published error table; the few codes
the public docs do not name (e.g. `BATCH_NOT_FOUND`) are emulator assumptions listed in the README.
"""

from __future__ import annotations

from typing import Any


class EmulatorError(Exception):
    """Base class: an error with a stable machine `code`, an HTTP `status` and a human message."""

    status: int = 400
    code: str = "BAD_REQUEST"
    message: str = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: list[dict[str, Any]] | None = None,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        self.message = message or self.message
        self.details = details
        self.retry_after = retry_after
        self.headers = headers or {}
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The `error` object of the envelope (also the error of a batch result line)."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        if self.details:
            out["details"] = self.details
        return out


# --- authentication and authorisation -------------------------------------------------------


class AuthTokenMissing(EmulatorError):
    """No `Authorization: Bearer ...` header."""

    status, code, message = 401, "AUTH_TOKEN_MISSING", "Missing Authorization header."


class AuthTokenInvalid(EmulatorError):
    """The bearer token is not a known (or well-formed) API key."""

    status, code, message = 401, "AUTH_TOKEN_INVALID", "Invalid or expired API key."


class PermissionDenied(EmulatorError):
    """The key's role lacks the permission the route needs."""

    status, code = 403, "AUTHZ_PERMISSION_DENIED"


class AdminTokenRequired(EmulatorError):
    """The control plane is protected by an admin token and the request did not carry it."""

    status, code, message = 401, "AUTH_TOKEN_INVALID", "Missing or wrong emulator admin token."


# --- request validation ----------------------------------------------------------------------


class ValidationError(EmulatorError):
    """The body failed validation; `details` lists `{field?, line?, message}` items."""

    status, code, message = 422, "VALIDATION_ERROR", "Request validation failed."


# --- not found and routing ------------------------------------------------------------------


class RouteNotFound(EmulatorError):
    """No route matches the path."""

    status, code, message = 404, "NOT_FOUND", "No such route."


class MethodNotAllowed(EmulatorError):
    """The route exists but not with this method."""

    status, code, message = 405, "METHOD_NOT_ALLOWED", "Method not allowed on this route."


class ModelNotFound(EmulatorError):
    """No model with that slug in the catalogue."""

    status, code = 404, "MODEL_NOT_FOUND"


class BatchNotFound(EmulatorError):
    """No batch with that id for this tenant."""

    status, code = 404, "BATCH_NOT_FOUND"


class FileNotFound(EmulatorError):
    """No file with that id for this tenant."""

    status, code = 404, "FILE_NOT_FOUND"


class WebhookNotFound(EmulatorError):
    """No webhook with that id for this tenant."""

    status, code = 404, "WEBHOOK_NOT_FOUND"


# --- state conflicts ------------------------------------------------------------------------


class BatchNotCancellable(EmulatorError):
    """Cancel asked of a batch already in a final state."""

    status, code = 409, "BATCH_NOT_CANCELLABLE"


class InvalidTransition(EmulatorError):
    """A status change the transition table does not allow (a bug if it ever reaches a client)."""

    status, code = 409, "INVALID_TRANSITION"


class ClockInUse(EmulatorError):
    """The control plane was asked to put the clock somewhere else while other tenants have work
    in progress, which would then run at the wrong time."""

    status, code = 409, "CLOCK_IN_USE"


# --- results URLs ---------------------------------------------------------------------------


class ResultsUrlExpired(EmulatorError):
    """The pre-signed results URL is past its expiry on the emulator clock."""

    status, code, message = 403, "RESULTS_URL_EXPIRED", "The results URL has expired."


class ResultsUrlInvalid(EmulatorError):
    """The pre-signed results URL's signature does not match."""

    status, code, message = 403, "RESULTS_URL_INVALID", "The results URL signature is invalid."


# --- limits ---------------------------------------------------------------------------------


class QuotaExceeded(EmulatorError):
    """A hard quota was reached (requests per batch, input size, active batches); not retryable."""

    status, code = 429, "QUOTA_EXCEEDED"


class RateLimited(EmulatorError):
    """ScaiGrid's own request limiter; carries `retry_after` and the rate-limit headers."""

    status, code, message = 429, "RATE_LIMITED", "Rate limit exceeded"


# --- inference backend faults (raised when a scenario injects them) -------------------------


class BackendError(EmulatorError):
    """Upstream provider error."""

    status, code, message = 502, "BACKEND_ERROR", "Backend returned an error."


class BackendTimeout(EmulatorError):
    """Upstream too slow."""

    status, code, message = 504, "BACKEND_TIMEOUT", "Backend timed out."


class BackendRateLimited(EmulatorError):
    """Upstream throttled."""

    status, code, message = 429, "BACKEND_RATE_LIMITED", "Backend rate limit exceeded."


class ModelUnavailable(EmulatorError):
    """Every backend for the model is unhealthy."""

    status, code, message = 503, "MODEL_UNAVAILABLE", "No healthy backend for this model."


class ReplayMiss(EmulatorError):
    """`--replay` has no recording of the request and `--replay-miss` is `error`."""

    status, code, message = 502, "REPLAY_MISS", "No recording of this request."


class InternalError(EmulatorError):
    """An unexpected fault inside the emulator: logged, and answered in the envelope."""

    status, code, message = 500, "INTERNAL_ERROR", "Internal error."


# --- codes a batch or a scenario gives requests --------------------------------------------


class UpstreamShapeMismatch(EmulatorError):
    """The backend answered in a shape the gateway could not translate."""

    status, code, message = (
        502,
        "UPSTREAM_SHAPE_MISMATCH",
        "Backend answer had an unexpected shape.",
    )


class BudgetExceeded(EmulatorError):
    """The tenant's spending budget is used up."""

    status, code, message = 429, "BUDGET_EXCEEDED", "Budget exceeded."


class ModelAccessDenied(EmulatorError):
    """The key may not use this model."""

    status, code, message = 403, "MODEL_ACCESS_DENIED", "Access to this model is denied."


class CompletionWindowExpired(EmulatorError):
    """A request's batch window closed before it ran (an error record, not an HTTP answer)."""

    status, code = 408, "COMPLETION_WINDOW_EXPIRED"
    message = "The completion window expired before this request ran."


class BatchCancelled(EmulatorError):
    """A request's batch was cancelled before it ran (an error record, not an HTTP answer)."""

    status, code = 409, "BATCH_CANCELLED"
    message = "The batch was cancelled before this request ran."


class InputParseError(EmulatorError):
    """A batch's input has a fatal problem (the batch's `error`, not an HTTP answer)."""

    status, code, message = 422, "INPUT_PARSE_ERROR", "The input file could not be parsed."


def _by_code() -> dict[str, type[EmulatorError]]:
    """Every error class by its code (the first class of a shared code answers for it)."""
    out: dict[str, type[EmulatorError]] = {}
    for value in list(globals().values()):
        if (
            isinstance(value, type)
            and issubclass(value, EmulatorError)
            and value is not EmulatorError
        ):
            out.setdefault(value.code, value)
    return out


_BY_CODE = _by_code()
#: code -> HTTP status, for every code the emulator can answer with: all of them come from the
#: classes above. Scenarios that inject a code by name take its status from here.
ERROR_CODES: dict[str, int] = {code: cls.status for code, cls in _BY_CODE.items()}


def error_for_code(code: str, message: str | None = None, **kw: Any) -> EmulatorError:
    """The error of class `code` (an injected fault, or a request's error record), with its
    status unless `status` is given; an unknown code is a plain error with status 500."""
    cls = _BY_CODE.get(code)
    message = message or f"Injected {code}."
    if cls is None:
        return EmulatorError(message, status=kw.pop("status", None) or 500, code=code, **kw)
    return cls(message, **kw)


class ConfigError(Exception):
    """A bad configuration file (models, tenants, scenario) or setting; reported at startup."""
