"""The PNGs behind fake image generations: tiny, valid, and a pure function of an image digest.

The engine names each generated image by a digest; `png_for` turns that digest into bytes, both
for `b64_json` answers and for the image links the live API serves, so a link and the inline
image of the same request are the same picture.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from functools import lru_cache

from emulator.clock import Clock
from emulator.signing import Signer

_PNG_SIDE, _PNG_CELL = 32, 8  # a 4x4 grid of 8-pixel cells: small, valid, visibly distinct
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@lru_cache(maxsize=512)
def png_for(digest: str) -> bytes:
    """The PNG for an image digest: a 32x32 RGB grid of 4x4 colour cells derived from `digest`.

    The pixel size is always 32x32 whatever `size` the request asked for: clients get a real,
    decodable image without the emulator storing or computing megapixels."""
    colours = hashlib.sha512(digest.encode()).digest()
    per_row = _PNG_SIDE // _PNG_CELL
    rows = []
    for r in range(per_row):
        cells = (colours[3 * (r * per_row + c) :][:3] * _PNG_CELL for c in range(per_row))
        rows.append((b"\x00" + b"".join(cells)) * _PNG_CELL)  # filter type 0 per scanline
    header = struct.pack(">IIBBBBB", _PNG_SIDE, _PNG_SIDE, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, tag, data, and the CRC-32 of tag and data."""
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


#: image links expire after 1 hour, as ScaiGrid's media proxy URLs do
IMAGE_URL_TTL = 3600


class ImageLinks:
    """Pre-signed links to generated images, served by the emulator itself without auth."""

    def __init__(self, signer: Signer, clock: Clock, base_url: str) -> None:
        self.signer, self.clock = signer, clock
        self.base_url = base_url  # where links point when no request says where we were reached

    def url(self, digest: str, base_url: str | None = None) -> str:
        path = f"/v1/inference/images/{digest}.png"
        expires = int(self.clock.now()) + IMAGE_URL_TTL
        base = (base_url or self.base_url).rstrip("/")
        return f"{base}{path}?{self.signer.query(path, expires)}"
