"""Deterministic fake embeddings: unit vectors where texts sharing words lie close together.

Each word is a pseudo-random vector of uint16 lanes; a text's vector is the sum of its distinct
words' vectors (weight _WORD_WEIGHT) plus one vector of the whole text (weight 1), centred and
normalised. So texts sharing words are close, different texts never coincide, and a vector
depends on the text alone (with the seed and model), not on the rest of the request.

Lanes are 32 bits wide in one big int, so summing vectors is a single C-level addition; a chunk
of words never overflows a lane. No numpy: the emulator stays dependency-light.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import sys
from array import array

_WORD_WEIGHT = 4
_LANE_BYTES = 4
_MAGIC = 1 << 52  # a double's bits 0x4330_0000_xxxx_xxxx read as 2**52 + x (see _as_doubles)
_WORDS_PER_CHUNK = ((1 << 32) - 1) // 0xFFFF // _WORD_WEIGHT - 1
_WORD_CACHE = 2048  # words recur across requests; their vectors are worth keeping
_WORD_RE = re.compile(r"\w+")


class Embedder:
    """Embeds texts for one seed; `prefix` is the engine's seed prefix of every hash."""

    def __init__(self, prefix: bytes) -> None:
        self._prefix = prefix
        self._word_lanes: dict[tuple[str, int, str], int] = {}  # LRU by dict order

    def embed(self, slug: str, full: int, text: str, width: int) -> list[float]:
        """The unit vector for `text`: model `slug`'s `full`-wide vector cut to `width` and
        renormalised, so a smaller `dimensions` keeps the leading components.

        Only `width` lanes are ever made: SHAKE's shorter output is a prefix of its longer one,
        and lanes add up independently, so the first `width` lanes of the full vector are the
        `width`-lane vector (`full` only names the model's own size)."""
        words = sorted(set(_WORD_RE.findall(text.lower())))
        chunks = [words[i : i + _WORDS_PER_CHUNK] for i in range(0, len(words), _WORDS_PER_CHUNK)]
        parts = []
        for i, chunk in enumerate(chunks or [[]]):
            packed = _WORD_WEIGHT * sum(self._lanes(slug, width, w) for w in chunk)
            terms = _WORD_WEIGHT * len(chunk)
            if i == 0:  # the whole-text vector rides in the first chunk
                packed += self._text_lanes(slug, width, text)
                terms += 1
            parts.append(_as_doubles(packed, terms, width, width))
        values, centre = parts[0] if len(parts) == 1 else _add_parts(parts)
        # dist() and the one comprehension run over floats with an exact offset: the cheapest
        # way to centre and normalise without numpy.
        scale = 1.0 / (math.dist(values, (centre,) * width) or 1.0)
        return [(v - centre) * scale for v in values]

    def _lanes(self, slug: str, width: int, word: str) -> int:
        key = (slug, width, word)
        cache = self._word_lanes
        packed = cache.pop(key, None)  # pop and re-insert: dict order is then recency order
        if packed is None:
            packed = _to_lanes(self._shake(slug, b"w", word, width))
            if len(cache) >= _WORD_CACHE:
                del cache[next(iter(cache))]
        cache[key] = packed
        return packed

    def _text_lanes(self, slug: str, width: int, text: str) -> int:
        return _to_lanes(self._shake(slug, b"t", text, width))

    def _shake(self, slug: str, kind: bytes, text: str, width: int) -> bytes:
        material = self._prefix + slug.encode() + b"\x00" + kind + b"\x00" + text.encode()
        return hashlib.shake_256(material).digest(2 * width)


def float32_base64(vector: list[float]) -> str:
    """`encoding_format: base64`: the vector as little-endian float32s, base64-encoded."""
    packed = array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def _to_lanes(data: bytes) -> int:
    """uint16 values spread into 32-bit little-endian lanes of one int, ready to be summed."""
    buf = bytearray(2 * len(data))
    buf[0::_LANE_BYTES] = data[0::2]
    buf[1::_LANE_BYTES] = data[1::2]
    return int.from_bytes(buf, "little")


def _as_doubles(packed: int, terms: int, full: int, width: int) -> tuple[array[float], float]:
    """The first `width` of `full` lanes of a sum of `terms` lane vectors as doubles, and the
    double that is their expected value (subtract it to centre them).

    Each 32-bit lane x is written under the exponent of 2**52, so the bytes read back as the
    double 2**52 + x exactly: ints become floats with slice copies instead of a Python loop."""
    raw = packed.to_bytes(_LANE_BYTES * full, "little")
    buf = bytearray(8 * width)
    for i in range(_LANE_BYTES):
        buf[i::8] = raw[i : _LANE_BYTES * width : _LANE_BYTES]
    buf[6::8] = b"\x30" * width
    buf[7::8] = b"\x43" * width
    values = array("d")
    values.frombytes(bytes(buf))
    if sys.byteorder == "big":
        values.byteswap()
    # The mean of a sum of `terms` uniform uint16 values, rounded to stay exact next to 2**52.
    return values, float(_MAGIC + round(terms * 32767.5))


def _add_parts(parts: list[tuple[array[float], float]]) -> tuple[array[float], float]:
    """Centred chunk sums added up (only for texts with more distinct words than a chunk holds)."""
    total = [0.0] * len(parts[0][0])
    for values, centre in parts:
        total = [t + v - centre for t, v in zip(total, values, strict=True)]
    return array("d", total), 0.0
