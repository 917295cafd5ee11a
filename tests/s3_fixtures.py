"""A real moto S3 server on loopback, shared by the tests that read `s3://` input, and the AWS
environment those tests run in (no machine settings, so boto3 never leaves loopback)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer


def s3_client(endpoint: str) -> Any:
    """A client with explicit credentials, independent of each test's environment."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(signature_version="s3v4"),
    )


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The endpoint of a moto S3 server on an ephemeral loopback port (one per session)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def no_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS settings from the machine: no credentials, no config files, no metadata service.

    Disabling the instance metadata lookup keeps credential resolution off the network.
    """
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def aws_creds(no_aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials on top of a clean AWS environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
