"""The emulator's error hierarchy: every failure a client can see, with its HTTP status and code.

Domain code raises these; `emulator.api.render` turns any of them into ScaiGrid's error envelope
in one place. The codes and statuses follow ScaiGrid's published error table; the few codes the
public docs do not name (e.g. `BATCH_NOT_FOUND`) are emulator assumptions listed in the README.
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


class InternalError(EmulatorError):
    """An unexpected fault inside the emulator: logged, and answered in the envelope."""

    status, code, message = 500, "INTERNAL_ERROR", "Internal error."


def _all_error_classes() -> list[type[EmulatorError]]:
    return [c for c in globals().values() if isinstance(c, type) and issubclass(c, EmulatorError)]


#: code -> HTTP status, for every code the emulator can answer with. Scenarios that inject a code
#: by name take its status from here unless they set one.
ERROR_CODES: dict[str, int] = {
    c.code: c.status for c in _all_error_classes() if c is not EmulatorError
}
ERROR_CODES.update(
    {
        "UPSTREAM_SHAPE_MISMATCH": 502,
        "BUDGET_EXCEEDED": 429,
        "MODEL_ACCESS_DENIED": 403,
        "COMPLETION_WINDOW_EXPIRED": 408,
        "BATCH_CANCELLED": 409,
        "INPUT_PARSE_ERROR": 422,
    }
)


def error_for_code(code: str, message: str | None = None, **kw: Any) -> EmulatorError:
    """An error carrying `code` with its table status (used by injected faults)."""
    status = kw.pop("status", None) or ERROR_CODES.get(code, 500)
    return EmulatorError(message or f"Injected {code}.", status=status, code=code, **kw)


class ConfigError(Exception):
    """A bad configuration file (models, tenants, scenario) or setting; reported at startup."""
