"""Transport faults on a real socket (the `scaigrid` fixture's uvicorn on loopback), with httpx
and the official `openai` SDK: the exception each client raises for each fault, and where the
SDK's retries recover. Real-time waits here are the faults themselves (a 0.3 s hang, a dribble's
pauses), kept small; the emulator clock stays frozen throughout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from emulator.pytest_plugin import Scaigrid

pytestmark = pytest.mark.slow

MODEL = "scailabs/poolnoodle-omni"
MESSAGES: list[Any] = [{"role": "user", "content": "Hello"}]


def fault(scaigrid: Scaigrid, route: str, transport: str, match: str = "calls: [1]") -> None:
    scaigrid.use_scenario(
        f"name: wire\napi_faults:\n  - match: {{route: '{route}', {match}}}\n"
        f"    transport: {transport}\n"
    )


@pytest.fixture
def http(scaigrid: Scaigrid) -> Iterator[httpx.Client]:
    """A client with its own connections (a dropped one must not be the session pool's)."""
    headers = {"Authorization": f"Bearer {scaigrid.api_key}"}
    with httpx.Client(base_url=scaigrid.base_url, headers=headers, timeout=5) as client:
        yield client


def sdk(scaigrid: Scaigrid, retries: list[str] | None = None, **options: Any) -> openai.OpenAI:
    """The SDK on its own connections; `retries` collects each attempt's retry count."""
    hooks = {"request": [lambda r: retries.append(r.headers["x-stainless-retry-count"])]}
    client = httpx.Client(event_hooks=hooks if retries is not None else {})
    return openai.OpenAI(
        base_url=scaigrid.oai_base_url, api_key=scaigrid.api_key, http_client=client, **options
    )


def statuses(scaigrid: Scaigrid, path: str) -> list[int]:
    return [e["status"] for e in scaigrid.journal(path=path)]


# --- reset ---------------------------------------------------------------------------------------


def test_a_reset_is_a_read_error_for_httpx(scaigrid: Scaigrid, http: httpx.Client) -> None:
    fault(scaigrid, "/v1/models", "reset")
    with pytest.raises(httpx.ReadError, match="reset"):
        http.get("/v1/models")
    assert http.get("/v1/models").status_code == 200
    assert statuses(scaigrid, "/v1/models") == [0, 200]  # 0: nothing was answered


def test_the_sdk_retries_a_reset_post_and_makes_one_file(scaigrid: Scaigrid) -> None:
    """The call a reset drops is not run, so the SDK's retry of a POST makes one file."""
    fault(scaigrid, "/oai/v1/files", "reset", "method: POST, calls: [1]")
    retries: list[str] = []
    client = sdk(scaigrid, retries, max_retries=2)
    made = client.files.create(file=("in.jsonl", b'{"a": 1}\n'), purpose="batch")
    assert retries == ["0", "1"]
    assert [f.id for f in client.files.list()] == [made.id]


def test_without_retries_a_reset_is_an_api_connection_error(scaigrid: Scaigrid) -> None:
    fault(scaigrid, "/oai/v1/models", "reset")
    with pytest.raises(openai.APIConnectionError) as raised:
        sdk(scaigrid, max_retries=0).models.list()
    assert isinstance(raised.value.__cause__, httpx.ReadError)


# --- hang ----------------------------------------------------------------------------------------


def test_a_hang_times_out_a_client_with_a_shorter_timeout(
    scaigrid: Scaigrid, http: httpx.Client
) -> None:
    fault(scaigrid, "/v1/models", "{fault: hang, for: 300ms}", "calls: [1, 2]")
    with pytest.raises(httpx.ReadTimeout):
        http.get("/v1/models", timeout=0.05)
    assert http.get("/v1/models", timeout=5).status_code == 200  # hangs, then answers


def test_the_sdk_retries_a_timeout_and_recovers(scaigrid: Scaigrid) -> None:
    fault(scaigrid, "/oai/v1/models", "{fault: hang, for: 300ms}")
    retries: list[str] = []
    models = sdk(scaigrid, retries, max_retries=1, timeout=0.1).models.list()
    assert models.data and retries == ["0", "1"]
    fault(scaigrid, "/oai/v1/models", "{fault: hang, for: 300ms}")
    with pytest.raises(openai.APITimeoutError):
        sdk(scaigrid, max_retries=0, timeout=0.1).models.list()


# --- truncate ------------------------------------------------------------------------------------


def test_a_truncation_is_a_protocol_error_naming_the_bytes(
    scaigrid: Scaigrid, http: httpx.Client
) -> None:
    whole = len(http.get("/v1/models").content)
    fault(scaigrid, "/v1/models", "{fault: truncate, bytes: 100}")
    with pytest.raises(httpx.RemoteProtocolError, match=f"received 100 bytes, expected {whole}"):
        http.get("/v1/models")


def completed_batch(scaigrid: Scaigrid, lines: int) -> str:
    body = b"".join(
        orjson.dumps(
            {
                "custom_id": f"r{i}",
                "method": "POST",
                "url": "/v1/inference/chat",
                "body": {"model": MODEL, "messages": MESSAGES},
            }  # fmt: skip
        )
        + b"\n"
        for i in range(lines)
    )
    upload = sdk(scaigrid).files.create(file=("in.jsonl", body), purpose="batch")
    batch = sdk(scaigrid).batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    scaigrid.advance(3600)
    return batch.id


def test_a_truncated_results_download(scaigrid: Scaigrid, http: httpx.Client) -> None:
    """The native results link (a stream of no declared length): httpx reads an incomplete
    chunked body; the SDK's download of the output file retries and gets it whole."""
    batch_id = completed_batch(scaigrid, 30)
    url = http.get(f"/v1/inference/batch/{batch_id}").json()["data"]["results_url"]
    fault(scaigrid, "/v1/inference/batch/*/results", "{fault: truncate, bytes: 200}")
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
        httpx.get(url)
    assert len(httpx.get(url).content.splitlines()) == 30

    output = sdk(scaigrid).batches.retrieve(batch_id).output_file_id
    assert output is not None
    fault(scaigrid, "/oai/v1/files/*/content", "{fault: truncate, bytes: 200}")
    retries: list[str] = []
    content = sdk(scaigrid, retries, max_retries=2).files.content(output)
    assert len(content.text.splitlines()) == 30 and retries == ["0", "1"]


# --- dribble -------------------------------------------------------------------------------------


def test_a_dribble_arrives_whole_or_trips_a_read_timeout(
    scaigrid: Scaigrid, http: httpx.Client
) -> None:
    fault(scaigrid, "/v1/models", "{fault: dribble, bytes: 1024, every: 10ms}")
    assert http.get("/v1/models").json()["status"] == "ok"
    # a read timeout is per read: a pause longer than it trips it mid-body
    fault(scaigrid, "/v1/models", "{fault: dribble, bytes: 64, every: 300ms}")
    with http.stream("GET", "/v1/models", timeout=httpx.Timeout(5, read=0.1)) as resp:
        assert resp.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            resp.read()


def test_the_sdk_retries_a_dribble_slower_than_its_timeout(scaigrid: Scaigrid) -> None:
    fault(scaigrid, "/oai/v1/models", "{fault: dribble, bytes: 64, every: 300ms}")
    retries: list[str] = []
    assert sdk(scaigrid, retries, max_retries=1, timeout=0.1).models.list().data
    assert retries == ["0", "1"]


# --- cut_stream ----------------------------------------------------------------------------------


def test_a_cut_stream_breaks_the_sdks_iteration_after_n_chunks(scaigrid: Scaigrid) -> None:
    """The SDK does not retry a stream that has begun: the caller sees the chunks sent, then
    an APIConnectionError, and the server one call."""
    fault(scaigrid, "/oai/v1/chat/completions", "{fault: cut_stream, events: 2}")
    stream = sdk(scaigrid, max_retries=2).chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True
    )
    got = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            got.append(chunk)
    assert len(got) == 2
    assert statuses(scaigrid, "/oai/v1/chat/completions") == [200]


def test_a_cut_native_stream_is_an_incomplete_chunked_read(
    scaigrid: Scaigrid, http: httpx.Client
) -> None:
    fault(scaigrid, "/v1/inference/chat", "{fault: cut_stream, events: 3}")
    events = []
    body = {"model": MODEL, "messages": MESSAGES, "stream": True}
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
        with http.stream("POST", "/v1/inference/chat", json=body) as resp:
            for line in resp.iter_lines():
                if line:
                    events.append(line)
    assert len(events) == 3 and "data: [DONE]" not in events


# --- malformed -----------------------------------------------------------------------------------


def test_a_malformed_body_is_a_json_error_the_sdk_does_not_retry(
    scaigrid: Scaigrid, http: httpx.Client
) -> None:
    fault(scaigrid, "/v1/models", "malformed")
    resp = http.get("/v1/models")
    assert resp.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        resp.json()
    fault(scaigrid, "/oai/v1/models", "malformed")
    with pytest.raises(json.JSONDecodeError):
        sdk(scaigrid, max_retries=2).models.list()
    assert statuses(scaigrid, "/oai/v1/models") == [200]
