"""The one seeded source of randomness: every random choice is a hash of the seed and of what is
being decided, never a shared random stream, so a choice does not depend on the choices before it.

Ids, the fake engine, scenario draws and the URL signer all derive what they need from here.
"""

from __future__ import annotations

import hashlib
import random
import struct


def key(*parts: object) -> str:
    """The text a derivation hashes: the parts joined by ':' (the seed is one of them)."""
    return ":".join(map(str, parts))


def digest(*parts: object) -> bytes:
    """32 bytes that are a pure function of `parts`."""
    return hashlib.sha256(key(*parts).encode()).digest()


def hexdigest(*parts: object, length: int = 64) -> str:
    return hashlib.sha256(key(*parts).encode()).hexdigest()[:length]


def unit(*parts: object) -> float:
    """A uniform number in [0, 1) that is a pure function of `parts`."""
    raw = hashlib.blake2b(key(*parts).encode(), digest_size=8).digest()
    value: int = struct.unpack(">Q", raw)[0]
    return (value >> 11) / float(1 << 53)


def rng(*parts: object) -> random.Random:
    """A private random stream seeded by `parts`, for work that needs many draws."""
    return random.Random(key(*parts))
