"""Reading a batch's input file from the URL forms ScaiGrid accepts in `input_file_url`.

`iter_source` streams the file as byte chunks so a large input never sits whole in memory. It
covers `http(s)://` (including pre-signed S3/GCS URLs), `s3://bucket/key` (boto3, an optional
extra) and `scaidrive://path` (a local folder standing in for ScaiDrive). `scaigrid://file/{id}`
belongs to the files store, so the caller dispatches on `scheme_of` before coming here.

Every failure a client could cause (a bad URL, a missing object, a refused connection) becomes a
`ValidationError` on the `input_file_url` field, never a library exception.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

import anyio.to_thread

from emulator.errors import ValidationError

# httpx is imported where it is used: importing it (~25 ms) is not worth paying before a
# server that may never call out answers its first request.
if TYPE_CHECKING:
    import httpx

FIELD = "input_file_url"

#: The forms listed back to the client when it sends something else.
ACCEPTED_FORMS = (
    "scaigrid://file/{id}",
    "https://... (including pre-signed S3/GCS URLs)",
    "http://...",
    "s3://bucket/key",
    "scaidrive://path",
)
_SCHEMES = frozenset({"http", "https", "s3", "scaidrive", "scaigrid"})

# Used only when an explicit S3 endpoint is configured and boto3 finds no credentials at all:
# a local moto or MinIO accepts any key pair, so the emulator works without AWS setup.
_DUMMY_AWS_KEY = "test"

T = TypeVar("T")


@dataclass(frozen=True)
class SourceConfig:
    """Where non-`scaigrid://` inputs are read from, and how."""

    #: Local folder that `scaidrive://` URLs map into; None refuses `scaidrive://` inputs.
    scaidrive_root: Path | None = None
    #: S3 endpoint such as a local moto or MinIO; None leaves resolution to boto3
    #: (`AWS_ENDPOINT_URL_S3`, config files, or real AWS).
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    http_timeout: float = 30.0
    chunk_size: int = 1 << 20


def _invalid(message: str) -> ValidationError:
    return ValidationError(message, details=[{"field": FIELD, "message": message}])


def scheme_of(url: str) -> str:
    """The URL's scheme, lower-cased, or a ValidationError if ScaiGrid does not accept it."""
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if sep and scheme in _SCHEMES:
        return scheme
    got = f"scheme {scheme!r}" if sep and scheme else "no scheme"
    raise _invalid(
        f"unsupported input_file_url ({got}); accepted forms: {', '.join(ACCEPTED_FORMS)}"
    )


async def iter_source(
    url: str, config: SourceConfig, http: httpx.AsyncClient
) -> AsyncGenerator[bytes, None]:
    """Yield the input file behind `url` in chunks of at most `config.chunk_size` bytes."""
    scheme = scheme_of(url)
    if scheme == "scaigrid":
        # The files store owns these; reaching here means the caller forgot to dispatch.
        raise ValueError("scaigrid:// inputs are read from the files store, not iter_source")
    chunks: AsyncGenerator[bytes, None]
    if scheme in ("http", "https"):
        chunks = _iter_http(url, config, http)
    elif scheme == "s3":
        chunks = _iter_s3(url, config)
    else:
        chunks = _iter_scaidrive(url, config)
    # aclosing: if the consumer stops early, the inner generator releases its connection or
    # file handle now rather than whenever the garbage collector finalises it.
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            yield chunk


class Sources:
    """Reads batch inputs from outside the emulator. The http(s) client is made on first use:
    building one loads the CA bundle (~0.2 s), which most runs never need; a client passed in
    (a test's transport) is the caller's to close."""

    def __init__(self, config: SourceConfig, http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._http, self._own_http = http, http is None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(timeout=self.config.http_timeout, follow_redirects=True)
        return self._http

    def read(self, url: str) -> AsyncGenerator[bytes, None]:
        """The input behind `url`, in chunks."""
        return iter_source(url, self.config, self.http)

    async def aclose(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None


# --- http(s) ------------------------------------------------------------------------------------


def _redacted(url: str) -> str:
    """The URL without query string or credentials: pre-signed URLs carry secrets in the query."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "input_file_url"
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


async def _iter_http(
    url: str, config: SourceConfig, http: httpx.AsyncClient
) -> AsyncGenerator[bytes, None]:
    import httpx

    where = _redacted(url)
    try:
        # The URL goes to httpx untouched so a pre-signed query string keeps its exact encoding.
        async with http.stream(
            "GET", url, follow_redirects=True, timeout=config.http_timeout
        ) as response:
            if not response.is_success:
                raise _invalid(
                    f"could not fetch input_file_url: HTTP {response.status_code} "
                    f"{response.reason_phrase} from {where}"
                )
            async for chunk in response.aiter_bytes(config.chunk_size):
                yield chunk
    except httpx.TimeoutException as exc:
        raise _invalid(f"could not fetch input_file_url: timed out reading {where}") from exc
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
        reason = str(exc) or type(exc).__name__
        raise _invalid(f"could not fetch input_file_url from {where}: {reason}") from exc


# --- s3 -----------------------------------------------------------------------------------------


def _parse_s3_url(url: str) -> tuple[str, str]:
    """Bucket and key of `s3://bucket/key`; the key is taken literally, as the AWS CLI does."""
    rest = url.partition("://")[2]
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise _invalid(f"input_file_url must look like s3://bucket/key, got {url!r}")
    return bucket, key


def _import_boto3() -> Any:
    try:
        import boto3
    except ImportError as exc:
        raise _invalid(
            "s3:// inputs need boto3: install `scaigrid-emulator[s3]` (pip install "
            "'scaigrid-emulator[s3]')"
        ) from exc
    return boto3


def _open_s3_body(boto3: Any, config: SourceConfig, bucket: str, key: str) -> Any:
    """Blocking: build a client and start the GET, returning botocore's StreamingBody."""
    from botocore.config import Config

    # A session per read: boto3's default session is not thread-safe and this runs in a thread.
    session = boto3.session.Session(region_name=config.s3_region)
    kwargs: dict[str, Any] = {}
    client_config = Config(connect_timeout=config.http_timeout, read_timeout=config.http_timeout)
    if config.s3_endpoint_url:
        kwargs["endpoint_url"] = config.s3_endpoint_url
        # Local stand-ins (moto, MinIO) serve path-style URLs; bucket subdomains would not resolve.
        client_config = client_config.merge(Config(s3={"addressing_style": "path"}))
        if session.get_credentials() is None:
            kwargs["aws_access_key_id"] = _DUMMY_AWS_KEY
            kwargs["aws_secret_access_key"] = _DUMMY_AWS_KEY
    client = session.client("s3", config=client_config, **kwargs)
    return client.get_object(Bucket=bucket, Key=key)["Body"]


async def _s3_in_thread(fn: Callable[[], T], where: str) -> T:
    """Run a blocking boto3 call in a worker thread, turning its failures into ValidationError."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return await anyio.to_thread.run_sync(fn)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, detail = error.get("Code", "ClientError"), error.get("Message", "")
        raise _invalid(f"could not read {where}: S3 error {code} ({detail})") from exc
    except BotoCoreError as exc:
        raise _invalid(f"could not read {where}: {type(exc).__name__}: {exc}") from exc


async def _iter_s3(url: str, config: SourceConfig) -> AsyncGenerator[bytes, None]:
    bucket, key = _parse_s3_url(url)
    boto3 = _import_boto3()
    where = f"s3://{bucket}/{key}"
    body = await _s3_in_thread(functools.partial(_open_s3_body, boto3, config, bucket, key), where)
    try:
        while chunk := await _s3_in_thread(functools.partial(body.read, config.chunk_size), where):
            yield chunk
    finally:
        body.close()


# --- scaidrive ----------------------------------------------------------------------------------


def _scaidrive_path(url: str, root: Path) -> Path:
    """The real file a `scaidrive://` URL names, refusing anything that resolves outside root."""
    # Decode before resolving so `%2e%2e/` cannot slip past the containment check as a name.
    relative = unquote(url.partition("://")[2]).lstrip("/")
    try:
        real_root = root.resolve()
        # resolve() follows symlinks, so a link inside the root pointing out is caught below.
        target = (real_root / relative).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        # RuntimeError: symlink loop (Python < 3.13); ValueError: an embedded NUL byte.
        raise _invalid(f"invalid scaidrive path {relative!r}: {exc}") from exc
    if not target.is_relative_to(real_root):
        raise _invalid(f"path escapes the scaidrive root: {relative!r}")
    try:
        exists, regular = target.exists(), target.is_file()
    except OSError as exc:  # exists() raises on a name too long for the file system
        raise _invalid(f"invalid scaidrive path {relative!r}: {exc.strerror}") from exc
    if not exists:
        raise _invalid(f"no such file in scaidrive: {relative!r}")
    if not regular:
        raise _invalid(f"not a regular file in scaidrive: {relative!r}")
    return target


def _open_binary(path: Path) -> IO[bytes]:
    return open(path, "rb")


async def _iter_scaidrive(url: str, config: SourceConfig) -> AsyncGenerator[bytes, None]:
    if config.scaidrive_root is None:
        raise _invalid("scaidrive:// input needs --scaidrive-root")
    # The checks stat and resolve symlinks: blocking calls, kept off the event loop.
    path = await anyio.to_thread.run_sync(_scaidrive_path, url, config.scaidrive_root)
    try:
        handle = await anyio.to_thread.run_sync(_open_binary, path)
    except OSError as exc:
        raise _invalid(f"could not open scaidrive file: {exc.strerror}") from exc
    try:
        while chunk := await anyio.to_thread.run_sync(handle.read, config.chunk_size):
            yield chunk
    except OSError as exc:
        raise _invalid(f"could not read scaidrive file: {exc.strerror}") from exc
    finally:
        handle.close()
