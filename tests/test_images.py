"""Generated images: valid PNGs of the size asked, inline and behind signed links.

The PNGs are read back with the small decoder below (chunks, CRCs, palette, the two row filters a
reader must undo here), so the test needs no imaging library.
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import Harness, assert_error

from emulator.endpoints import IMAGES
from emulator.errors import ValidationError
from emulator.inference.catalogue import Catalogue, load_catalogue
from emulator.inference.engine import Engine
from emulator.inference.images import STANDARD_SIZES, image_name, png_for, png_named
from emulator.inference.tokens import estimate_tokens

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DALL_E_2, DALL_E_3, SD_XL = "openai/dall-e-2", "openai/dall-e-3", "stability/sd-xl"
SIZES = {
    DALL_E_2: ("256x256", "512x512", "1024x1024"),
    DALL_E_3: ("1024x1024", "1792x1024", "1024x1792"),
    SD_XL: STANDARD_SIZES,
}
EVERY_SIZE = [(model, size) for model, sizes in SIZES.items() for size in sizes]


@dataclass
class Picture:
    width: int
    height: int
    palette: list[tuple[int, int, int]]
    rows: list[bytes]  # palette indices, one byte per pixel

    def rgb(self, x: int, y: int) -> tuple[int, int, int]:
        return self.palette[self.rows[y][x]]


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data.startswith(PNG_SIGNATURE)
    chunks, pos = [], len(PNG_SIGNATURE)
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(tag + body), tag
        chunks.append((tag, body))
        pos += 12 + length
    assert pos == len(data)
    return chunks


def decode_png(data: bytes) -> Picture:
    """An 8-bit palette PNG, decoded: what any viewer would show."""
    chunks = png_chunks(data)
    tags = [tag for tag, _ in chunks]
    assert tags[0] == b"IHDR" and tags[-1] == b"IEND"
    assert tags.index(b"PLTE") < tags.index(b"IDAT")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1]
    )
    assert (depth, colour, compression, filtering, interlace) == (8, 3, 0, 0, 0)
    plte = b"".join(body for tag, body in chunks if tag == b"PLTE")
    palette = [(plte[i], plte[i + 1], plte[i + 2]) for i in range(0, len(plte), 3)]
    raw = zlib.decompress(b"".join(body for tag, body in chunks if tag == b"IDAT"))
    assert len(raw) == height * (1 + width)
    rows: list[bytes] = []
    previous = bytes(width)
    for y in range(height):
        kind, line = raw[y * (1 + width)], raw[y * (1 + width) + 1 : (y + 1) * (1 + width)]
        if kind == 2:  # Up: each byte adds the one above it
            line = bytes((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        else:
            assert kind == 0, f"row {y} uses filter {kind}"
        assert max(line) < len(palette)
        rows.append(line)
        previous = line
    return Picture(width, height, palette, rows)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


class FixedLinks:
    """Image links without signing: where each image would be served."""

    def __init__(self) -> None:
        self.served: list[str] = []

    def url(self, name: str, base_url: str | None = None) -> str:
        self.served.append(name)
        return f"{base_url or 'http://emulator.test'}/{name}.png"


def b64_images(engine: Engine, **body: Any) -> list[bytes]:
    answer = engine.images(
        {"prompt": "a red fox", "response_format": "b64_json", **body}, created=0
    )
    return [base64.b64decode(item["b64_json"]) for item in answer["data"]]


# --- the pictures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "size"), EVERY_SIZE)
def test_each_size_a_model_takes_is_the_size_of_the_png(
    catalogue: Catalogue, model: str, size: str
) -> None:
    [png] = b64_images(Engine(1, catalogue), model=model, size=size)
    picture = decode_png(png)
    assert f"{picture.width}x{picture.height}" == size


def test_without_a_size_an_image_is_1024_square(catalogue: Catalogue) -> None:
    for model in SIZES:
        picture = decode_png(b64_images(Engine(1, catalogue), model=model)[0])
        assert (picture.width, picture.height) == (1024, 1024)


def test_the_picture_is_a_grid_of_sixteen_colours_from_the_digest() -> None:
    picture = decode_png(png_for("0123abcd", "1792x1024"))
    cell_w, cell_h = 1792 // 4, 1024 // 4
    cells = [picture.rgb(col * cell_w, row * cell_h) for row in range(4) for col in range(4)]
    assert len(set(cells)) == 16
    for row in range(4):  # every pixel of a cell has its colour, up to the cell's last pixel
        for col in range(4):
            corner = (col * cell_w + cell_w - 1, row * cell_h + cell_h - 1)
            assert picture.rgb(*corner) == cells[4 * row + col]
    assert png_for("0123abcd", "1792x1024") == png_for("0123abcd", "1792x1024")
    other = decode_png(png_for("ffff0000", "1792x1024"))
    assert other.rows == picture.rows and other.palette != picture.palette


@pytest.mark.parametrize("size", ["1x1", "3x2", "5x7", "4096x3"])
def test_odd_and_tiny_sizes_are_valid_too(size: str) -> None:
    picture = decode_png(png_for("0123abcd", size))
    assert f"{picture.width}x{picture.height}" == size


def test_a_size_png_for_cannot_make_is_refused() -> None:
    for size in ("0x10", "10", "4097x4097", "axb"):
        with pytest.raises(ValueError, match="not an image size"):
            png_for("00", size)
    assert png_named("zz-10x10") is None and png_named("ab-0x10") is None
    assert png_named("ab-10x10") == png_for("ab", "10x10")
    assert png_named("ab") == png_for("ab")  # a link minted before links named a size


def test_a_large_png_is_small_on_the_wire() -> None:
    assert len(png_for("0123abcd", "1792x1024")) < 8 * 1024


# --- sizes per model ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "size"), [(DALL_E_2, "1792x1024"), (DALL_E_3, "256x256"), (SD_XL, "10x10")]
)
def test_a_size_the_model_does_not_take_is_a_validation_error(
    catalogue: Catalogue, model: str, size: str
) -> None:
    body = {"model": model, "prompt": "x", "size": size}
    with pytest.raises(ValidationError) as excinfo:
        Engine(1, catalogue).infer(IMAGES, body, created=0)
    [detail] = excinfo.value.details or []
    allowed = ", ".join(SIZES[model])
    assert detail == {
        "field": "size",
        "message": f"size must be one of: {allowed} for model {model}.",
    }


# --- links and inline images ----------------------------------------------------------------------


def test_images_url_and_b64(catalogue: Catalogue) -> None:
    links = FixedLinks()
    served = links.served
    body = {"model": DALL_E_2, "prompt": "a red fox", "n": 2, "response_format": "url"}
    with_urls = Engine(3, catalogue, links).images({**body, "size": "512x512"}, created=77)
    assert with_urls["created"] == 77 and with_urls["model"] == DALL_E_2
    assert [d["url"] for d in with_urls["data"]] == [
        f"http://emulator.test/{name}.png" for name in served
    ]
    assert len(set(served)) == 2 and all(name.endswith("-512x512") for name in served)
    assert "revised_prompt" not in with_urls["data"][0]
    assert with_urls["usage"] == {"prompt_tokens": estimate_tokens("a red fox"), "images": 2}
    # Without links, "url" falls back to b64_json of the same image.
    fallback = Engine(3, catalogue).images({**body, "size": "512x512"}, created=77)
    decoded = [base64.b64decode(d["b64_json"]) for d in fallback["data"]]
    assert decoded == [png_named(name) for name in served]
    assert Engine.usage(IMAGES, fallback) == (estimate_tokens("a red fox"), 0)


def test_dall_e_3_revises_the_prompt_and_b64_is_honoured(catalogue: Catalogue) -> None:
    body = {"model": DALL_E_3, "prompt": "a castle", "response_format": "b64_json"}
    out = Engine(42, catalogue, FixedLinks()).images(body, created=0)
    [item] = out["data"]
    assert item["revised_prompt"].startswith("a castle")
    decode_png(base64.b64decode(item["b64_json"]))
    assert "url" not in item


def test_an_image_name_carries_digest_and_size() -> None:
    assert image_name("0123abcd", "1792x1024") == "0123abcd-1792x1024"


@pytest.mark.parametrize(("model", "size"), EVERY_SIZE)
async def test_a_signed_link_serves_the_size_asked(emu: Harness, model: str, size: str) -> None:
    body = {"model": model, "prompt": "a lighthouse", "size": size, "response_format": "url"}
    resp = await emu.client.post("/v1/inference/images/generate", json=body)
    assert resp.status_code == 200, resp.text
    url = resp.json()["data"]["data"][0]["url"]
    async with emu.client_for(None) as anon:
        image = await anon.get(url)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    picture = decode_png(image.content)
    assert f"{picture.width}x{picture.height}" == size


async def test_a_link_bent_to_another_size_is_invalid(emu: Harness) -> None:
    body = {"model": DALL_E_3, "prompt": "a lighthouse", "size": "1792x1024"}
    resp = await emu.client.post("/v1/inference/images/generate", json=body)
    url = resp.json()["data"]["data"][0]["url"]
    parts = urlsplit(url)
    assert parts.path.endswith("-1792x1024.png")
    bent = parts._replace(path=parts.path.replace("-1792x1024", "-1024x1792")).geturl()
    async with emu.client_for(None) as anon:
        assert_error(await anon.get(bent), 403, "RESULTS_URL_INVALID")
        assert (await anon.get(url)).status_code == 200


# --- wording --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "model", "expected"),
    [
        (IMAGES, "openai/gpt-4o", "is a chat model; /v1/inference/images/generate needs an image"),
        ("/v1/inference/chat", DALL_E_3, "is an image model; /v1/inference/chat needs a chat"),
        ("/v1/inference/chat", "openai/whisper-1", "is an audio model;"),
        ("/v1/inference/embed", "openai/whisper-1", "needs an embedding model."),
    ],
)
def test_a_model_of_another_modality_is_named_with_the_right_article(
    catalogue: Catalogue, route: str, model: str, expected: str
) -> None:
    body = {"model": model, "prompt": "x", "input": "x", "messages": [{"role": "user"}]}
    with pytest.raises(ValidationError) as excinfo:
        Engine(1, catalogue).infer(route, body, created=0)
    assert expected in excinfo.value.message
