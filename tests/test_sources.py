"""Reading batch inputs from http(s)://, s3:// and scaidrive:// URLs (emulator.batch.sources).

S3 runs against a real moto server on loopback; pre-signed URLs it signs are fetched over real
HTTP. Failure modes that loopback cannot produce on demand (403s, timeouts, a connection dropped
mid-body) use httpx.MockTransport, which makes no network call at all.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from s3_fixtures import s3_client

from emulator.batch.sources import SourceConfig, iter_source, scheme_of
from emulator.errors import ValidationError

BUCKET = "batch-inputs"
KEY = "jobs/2024/input.jsonl"
CHUNK = 1024
# ~8 KiB of JSONL: several chunks at CHUNK, so the tests prove the file is streamed in pieces.
JSONL = b"".join(
    b'{"custom_id": "req-%04d", "body": {"messages": [{"role": "user", "content": "hi"}]}}\n' % i
    for i in range(100)
)


# --- fixtures and helpers -------------------------------------------------------------------------


def _free_port() -> int:
    """A loopback port nothing listens on: bound once to pick it, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def moto_endpoint(moto_server: str) -> str:
    """The moto server, holding one bucket with the JSONL input."""
    client = s3_client(moto_server)
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key=KEY, Body=JSONL)
    return moto_server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def _read(url: str, config: SourceConfig, http: httpx.AsyncClient) -> list[bytes]:
    return [chunk async for chunk in iter_source(url, config, http)]


def _assert_chunked(chunks: list[bytes], expected: bytes) -> None:
    assert b"".join(chunks) == expected
    assert len(chunks) > 1
    assert all(len(chunk) == CHUNK for chunk in chunks[:-1])
    assert 0 < len(chunks[-1]) <= CHUNK


def _assert_invalid(exc: ValidationError, *fragments: str) -> None:
    assert exc.status == 422
    assert exc.details == [{"field": "input_file_url", "message": exc.message}]
    for fragment in fragments:
        assert fragment in exc.message


def _mock_client(handler: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


# --- scheme_of ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("http://127.0.0.1:8080/input.jsonl", "http"),
        ("https://storage.test/input.jsonl?X-Amz-Signature=abc", "https"),
        ("HTTPS://storage.test/input.jsonl", "https"),
        ("s3://bucket/key.jsonl", "s3"),
        ("scaidrive://team-share/batches/input.jsonl", "scaidrive"),
        ("scaidrive:///abs/input.jsonl", "scaidrive"),
        ("scaigrid://file/file_abc123", "scaigrid"),
    ],
)
def test_scheme_of_accepts(url: str, scheme: str) -> None:
    assert scheme_of(url) == scheme


@pytest.mark.parametrize(
    "url",
    [
        "",
        "file:///etc/passwd",
        "ftp://storage.test/input.jsonl",
        "gs://bucket/input.jsonl",
        "storage.test/input.jsonl",
        "/tmp/input.jsonl",
        "http:/storage.test/input.jsonl",
        "://storage.test/input.jsonl",
    ],
)
def test_scheme_of_refuses(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        scheme_of(url)
    _assert_invalid(caught.value, "s3://bucket/key", "scaidrive://", "https://", "scaigrid://")


async def test_refused_scheme_is_a_validation_error(http: httpx.AsyncClient) -> None:
    with pytest.raises(ValidationError) as caught:
        await _read("file:///etc/passwd", SourceConfig(), http)
    _assert_invalid(caught.value, "'file'")


async def test_scaigrid_url_is_a_programming_error(http: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="files store"):
        await _read("scaigrid://file/file_abc", SourceConfig(), http)


# --- s3:// ----------------------------------------------------------------------------------------


async def test_s3_reads_object_in_chunks(
    moto_endpoint: str, aws_creds: None, http: httpx.AsyncClient
) -> None:
    config = SourceConfig(s3_endpoint_url=moto_endpoint, chunk_size=CHUNK)
    _assert_chunked(await _read(f"s3://{BUCKET}/{KEY}", config, http), JSONL)


async def test_s3_uses_dummy_credentials_for_a_local_endpoint(
    moto_endpoint: str, no_aws_env: None, http: httpx.AsyncClient
) -> None:
    config = SourceConfig(s3_endpoint_url=moto_endpoint, chunk_size=CHUNK)
    _assert_chunked(await _read(f"s3://{BUCKET}/{KEY}", config, http), JSONL)


async def test_s3_endpoint_from_environment(
    moto_endpoint: str, aws_creds: None, monkeypatch: pytest.MonkeyPatch, http: httpx.AsyncClient
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    chunks = await _read(f"s3://{BUCKET}/{KEY}", SourceConfig(chunk_size=CHUNK), http)
    _assert_chunked(chunks, JSONL)


async def test_s3_without_credentials_or_local_endpoint_is_refused(
    moto_endpoint: str, no_aws_env: None, monkeypatch: pytest.MonkeyPatch, http: httpx.AsyncClient
) -> None:
    # Dummy credentials are only for an explicitly configured endpoint; the environment's
    # endpoint points at moto anyway so nothing could leave the machine.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    with pytest.raises(ValidationError) as caught:
        await _read(f"s3://{BUCKET}/{KEY}", SourceConfig(), http)
    _assert_invalid(caught.value, "NoCredentialsError")


async def test_s3_missing_key(moto_endpoint: str, aws_creds: None, http: httpx.AsyncClient) -> None:
    config = SourceConfig(s3_endpoint_url=moto_endpoint)
    with pytest.raises(ValidationError) as caught:
        await _read(f"s3://{BUCKET}/nope.jsonl", config, http)
    _assert_invalid(caught.value, "NoSuchKey", f"s3://{BUCKET}/nope.jsonl")


async def test_s3_missing_bucket(
    moto_endpoint: str, aws_creds: None, http: httpx.AsyncClient
) -> None:
    config = SourceConfig(s3_endpoint_url=moto_endpoint)
    with pytest.raises(ValidationError) as caught:
        await _read("s3://no-such-bucket/input.jsonl", config, http)
    _assert_invalid(caught.value, "NoSuchBucket")


async def test_s3_endpoint_down(
    aws_creds: None, monkeypatch: pytest.MonkeyPatch, http: httpx.AsyncClient
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore would otherwise retry with backoff
    config = SourceConfig(s3_endpoint_url=f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(ValidationError) as caught:
        await _read(f"s3://{BUCKET}/{KEY}", config, http)
    _assert_invalid(caught.value, "EndpointConnectionError")


@pytest.mark.parametrize("url", ["s3://", "s3://bucket", "s3://bucket/", "s3:///input.jsonl"])
async def test_s3_malformed_urls(url: str, http: httpx.AsyncClient) -> None:
    with pytest.raises(ValidationError) as caught:
        await _read(url, SourceConfig(s3_endpoint_url="http://127.0.0.1:1"), http)
    _assert_invalid(caught.value, "s3://bucket/key")


async def test_s3_without_boto3_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, http: httpx.AsyncClient
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` raise ImportError
    with pytest.raises(ValidationError) as caught:
        await _read(f"s3://{BUCKET}/{KEY}", SourceConfig(), http)
    _assert_invalid(caught.value, "scaigrid-emulator[s3]")


# --- http(s):// -----------------------------------------------------------------------------------


async def test_presigned_url_over_real_http(moto_endpoint: str, http: httpx.AsyncClient) -> None:
    url = s3_client(moto_endpoint).generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": KEY}, ExpiresIn=300
    )
    assert url.startswith("http://127.0.0.1:") and "X-Amz-Signature=" in url
    _assert_chunked(await _read(url, SourceConfig(chunk_size=CHUNK), http), JSONL)


async def test_http_404_without_leaking_the_query(
    moto_endpoint: str, http: httpx.AsyncClient
) -> None:
    url = s3_client(moto_endpoint).generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "missing.jsonl"}, ExpiresIn=300
    )
    with pytest.raises(ValidationError) as caught:
        await _read(url, SourceConfig(), http)
    _assert_invalid(caught.value, "could not fetch input_file_url: HTTP 404", "/missing.jsonl")
    assert "X-Amz-Signature" not in caught.value.message


async def test_http_403() -> None:
    async with _mock_client(lambda request: httpx.Response(403)) as client:
        with pytest.raises(ValidationError) as caught:
            await _read("https://storage.test/in.jsonl?sig=secret", SourceConfig(), client)
    _assert_invalid(caught.value, "HTTP 403 Forbidden", "https://storage.test/in.jsonl")
    assert "secret" not in caught.value.message


async def test_http_follows_redirects_and_keeps_the_query_exact() -> None:
    query = b"X-Amz-Credential=AKIA%2F20240101%2Fus-east-1%2Fs3&X-Amz-Signature=ab%2Bcd"
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        if request.url.path == "/old":
            return httpx.Response(302, headers={"Location": "/new?" + query.decode()})
        return httpx.Response(200, content=JSONL)

    async with _mock_client(handler) as client:
        chunks = await _read(
            "https://storage.test/old?" + query.decode(), SourceConfig(chunk_size=CHUNK), client
        )
    _assert_chunked(chunks, JSONL)
    assert [(url.path, url.query) for url in seen] == [("/old", query), ("/new", query)]


async def test_http_connection_refused_is_fast(http: httpx.AsyncClient) -> None:
    started = time.monotonic()
    with pytest.raises(ValidationError) as caught:
        await _read(f"http://127.0.0.1:{_free_port()}/input.jsonl", SourceConfig(), http)
    _assert_invalid(caught.value, "could not fetch input_file_url")
    assert time.monotonic() - started < 5


async def test_http_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    async with _mock_client(handler) as client:
        with pytest.raises(ValidationError) as caught:
            await _read("https://storage.test/in.jsonl", SourceConfig(), client)
    _assert_invalid(caught.value, "timed out")


class _DroppedStream(httpx.AsyncByteStream):
    """A body that delivers one full chunk, then loses the connection."""

    closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield JSONL[:CHUNK]
        raise httpx.ReadError("connection reset by peer")

    async def aclose(self) -> None:
        self.closed = True


async def test_http_connection_dropped_mid_body() -> None:
    stream, config = _DroppedStream(), SourceConfig(chunk_size=CHUNK)
    async with _mock_client(lambda request: httpx.Response(200, stream=stream)) as client:
        got: list[bytes] = []
        with pytest.raises(ValidationError) as caught:
            async for chunk in iter_source("https://storage.test/in.jsonl", config, client):
                got.append(chunk)
    assert got == [JSONL[:CHUNK]]
    _assert_invalid(caught.value, "connection reset by peer")
    assert stream.closed


async def test_http_stopping_early_closes_the_response() -> None:
    stream = _DroppedStream()
    async with _mock_client(lambda request: httpx.Response(200, stream=stream)) as client:
        chunks = iter_source(
            "https://storage.test/in.jsonl", SourceConfig(chunk_size=CHUNK), client
        )
        assert await anext(chunks) == JSONL[:CHUNK]
        await chunks.aclose()
    assert stream.closed


# --- scaidrive:// ---------------------------------------------------------------------------------


@pytest.fixture
def drive(tmp_path: Path) -> Path:
    """A scaidrive root with a nested input, beside a file outside it that must stay unreachable."""
    root = tmp_path / "drive"
    (root / "team-share" / "batches").mkdir(parents=True)
    (root / "team-share" / "batches" / "input.jsonl").write_bytes(JSONL)
    (tmp_path / "outside.jsonl").write_bytes(b"secret\n")
    return root


@pytest.mark.parametrize(
    "url",
    ["scaidrive://team-share/batches/input.jsonl", "scaidrive:///team-share/batches/input.jsonl"],
)
async def test_scaidrive_reads_in_chunks(url: str, drive: Path, http: httpx.AsyncClient) -> None:
    config = SourceConfig(scaidrive_root=drive, chunk_size=CHUNK)
    _assert_chunked(await _read(url, config, http), JSONL)


async def test_scaidrive_symlink_inside_root_is_followed(
    drive: Path, http: httpx.AsyncClient
) -> None:
    (drive / "latest.jsonl").symlink_to(drive / "team-share" / "batches" / "input.jsonl")
    config = SourceConfig(scaidrive_root=drive, chunk_size=CHUNK)
    _assert_chunked(await _read("scaidrive://latest.jsonl", config, http), JSONL)


async def test_scaidrive_empty_file(drive: Path, http: httpx.AsyncClient) -> None:
    (drive / "empty.jsonl").write_bytes(b"")
    assert await _read("scaidrive://empty.jsonl", SourceConfig(scaidrive_root=drive), http) == []


@pytest.mark.parametrize(
    "url",
    [
        "scaidrive://../outside.jsonl",
        "scaidrive://team-share/../../outside.jsonl",
        "scaidrive://%2e%2e/outside.jsonl",
        "scaidrive://team-share/%2E%2E%2F%2E%2E%2Foutside.jsonl",
        "scaidrive://escape-link/outside.jsonl",
        "scaidrive://team-share/outside-link.jsonl",
    ],
)
async def test_scaidrive_refuses_escapes(url: str, drive: Path, http: httpx.AsyncClient) -> None:
    (drive / "escape-link").symlink_to(drive.parent, target_is_directory=True)
    (drive / "team-share" / "outside-link.jsonl").symlink_to(drive.parent / "outside.jsonl")
    with pytest.raises(ValidationError) as caught:
        await _read(url, SourceConfig(scaidrive_root=drive), http)
    _assert_invalid(caught.value, "path escapes the scaidrive root")


async def test_scaidrive_absolute_path_stays_under_the_root(
    drive: Path, http: httpx.AsyncClient
) -> None:
    # The host path of a real file is read as a path inside the root, where it does not exist.
    url = f"scaidrive://{drive.parent / 'outside.jsonl'}"
    with pytest.raises(ValidationError) as caught:
        await _read(url, SourceConfig(scaidrive_root=drive), http)
    _assert_invalid(caught.value, "no such file in scaidrive")


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("scaidrive://team-share/batches/missing.jsonl", "no such file in scaidrive"),
        ("scaidrive://team-share/batches", "not a regular file"),
        ("scaidrive://team-share/%00.jsonl", "invalid scaidrive path"),
    ],
)
async def test_scaidrive_refuses_non_files(
    url: str, fragment: str, drive: Path, http: httpx.AsyncClient
) -> None:
    with pytest.raises(ValidationError) as caught:
        await _read(url, SourceConfig(scaidrive_root=drive), http)
    _assert_invalid(caught.value, fragment)


async def test_scaidrive_needs_a_root(http: httpx.AsyncClient) -> None:
    with pytest.raises(ValidationError) as caught:
        await _read("scaidrive://team-share/batches/input.jsonl", SourceConfig(), http)
    _assert_invalid(caught.value, "scaidrive:// input needs --scaidrive-root")
