"""The PNGs behind fake image generations: valid, of the size asked, a pure function of a digest.

The engine names each generated image by a digest and a size (`image_name`); `png_named` and
`png_for` turn that into bytes, both for `b64_json` answers and for the image links the live API
serves, so a link and the inline image of the same request are the same picture.

A picture is a 4x4 grid of colour cells over the whole image, drawn with a 16-colour palette (PNG
colour type 3). Which cell a pixel is in depends on the size alone, so the compressed pixel data
is made once per size and cached (about 3 KB at 1792x1024: each band's first row, then rows that
repeat the one above, which PNG's "Up" filter turns into zeros); only the 48-byte palette comes
from the digest. A cached size costs a few microseconds per image, a new size ~20 ms once.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from functools import lru_cache

from emulator.clock import Clock
from emulator.records import Model
from emulator.signing import Signer

#: the size of an image when the request names none (OpenAI's default for every image model)
DEFAULT_SIZE = "1024x1024"
#: the sizes an image model takes when its catalogue entry lists none: OpenAI's image sizes
STANDARD_SIZES = ("256x256", "512x512", "1024x1024", "1792x1024", "1024x1792")
#: the longest side a catalogue may declare: pixel data is compressed once per size, and a
#: 4096x4096 picture takes ~0.2 s to make the first time
MAX_SIDE = 4096

_GRID = 4  # cells per side: a 4x4 grid of the palette's 16 colours
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SIZE = re.compile(r"([1-9][0-9]{0,4})x([1-9][0-9]{0,4})")
# a name without a size is a link minted before links named sizes: the default size
_NAME = re.compile(r"([0-9a-f]{1,64})(?:-([0-9]+x[0-9]+))?")
_FILTER_NONE, _FILTER_UP = b"\x00", b"\x02"


def parse_size(size: str) -> tuple[int, int] | None:
    """(width, height) of a "WxH" size with sides 1..MAX_SIDE, or None."""
    match = _SIZE.fullmatch(size)
    if match is None:
        return None
    width, height = int(match.group(1)), int(match.group(2))
    return (width, height) if width <= MAX_SIDE and height <= MAX_SIDE else None


def sizes_of(model: Model) -> tuple[str, ...]:
    """The sizes an image model takes (a model made without a catalogue's: OpenAI's five)."""
    return model.image_sizes or STANDARD_SIZES


def size_for(model: Model, asked: str | None) -> str:
    """The size an image is made at: the one asked, else the default (or the model's first)."""
    if asked:
        return asked
    sizes = sizes_of(model)
    return DEFAULT_SIZE if DEFAULT_SIZE in sizes else sizes[0]


def image_name(digest: str, size: str) -> str:
    """What names an image in its link: the digest and the size, so the link knows both."""
    return f"{digest}-{size}"


def png_named(name: str) -> bytes | None:
    """The PNG an `image_name` names, or None for a name `image_name` does not make."""
    match = _NAME.fullmatch(name)
    size = (match.group(2) or DEFAULT_SIZE) if match else ""
    return png_for(match.group(1), size) if match and parse_size(size) else None


def png_for(digest: str, size: str = DEFAULT_SIZE) -> bytes:
    """The PNG for an image digest at `size` ("WxH", a size `parse_size` accepts): a grid of
    4x4 colour cells whose colours come from `digest`."""
    dimensions = parse_size(size)
    if dimensions is None:
        raise ValueError(f"not an image size: {size!r}")
    palette = hashlib.sha512(digest.encode()).digest()[: 3 * _GRID * _GRID]
    head, pixels = _layout(*dimensions)
    return head + _png_chunk(b"PLTE", palette) + pixels


@lru_cache(maxsize=16)
def _layout(width: int, height: int) -> tuple[bytes, bytes]:
    """(signature and IHDR, IDAT and IEND) of a size: all of a PNG but its palette."""
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)  # 8-bit palette indices
    packer = zlib.compressobj(9)
    parts = []
    for band in range(_GRID):
        rows = (band + 1) * height // _GRID - band * height // _GRID
        if not rows:  # a picture fewer than 4 pixels high has empty bands
            continue
        first = _FILTER_NONE + b"".join(
            bytes((band * _GRID + cell,)) * _cell_span(cell, width) for cell in range(_GRID)
        )
        parts.append(packer.compress(first + (_FILTER_UP + bytes(width)) * (rows - 1)))
    parts.append(packer.flush())
    return (
        _PNG_SIGNATURE + _png_chunk(b"IHDR", header),
        _png_chunk(b"IDAT", b"".join(parts)) + _png_chunk(b"IEND", b""),
    )


def _cell_span(cell: int, width: int) -> int:
    """How many pixels wide a cell is: the grid's columns split `width` as evenly as they can."""
    return (cell + 1) * width // _GRID - cell * width // _GRID


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, tag, data, and the CRC-32 of tag and data."""
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


#: image links expire after 1 hour, as ScaiGrid's media proxy URLs do
IMAGE_URL_TTL = 3600


class ImageLinks:
    """Pre-signed links to generated images, served by the emulator itself without auth. The
    image's name (digest and size) is in the signed path, so a link cannot be bent to another
    image or size."""

    def __init__(self, signer: Signer, clock: Clock, base_url: str) -> None:
        self.signer, self.clock = signer, clock
        self.base_url = base_url  # where links point when no request says where we were reached

    def url(self, name: str, base_url: str | None = None) -> str:
        path = f"/v1/inference/images/{name}.png"
        expires = int(self.clock.now()) + IMAGE_URL_TTL
        base = (base_url or self.base_url).rstrip("/")
        return f"{base}{path}?{self.signer.query(path, expires)}"
