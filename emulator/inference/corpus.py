"""The sentences answers are assembled from: Faker's English words, drawn from the seed.

Drawing them costs a server's first answer ~25 ms (~10 ms to read the words from Faker's source,
~15 ms to draw 2,048 sentences). For seed 0, the default of `serve` and of the pytest fixture,
they ship already drawn (`data/corpus-0.txt.gz`), headed by the sha256 of the Faker source file
the words were read from: they are used only while that file is the one installed, and drawn
otherwise. `tests/test_engine.py` proves the shipped sentences are the drawn ones.

After a change to `build` or to Faker's words, write the file again with
`python -m emulator.inference.corpus`.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from emulator import seeded
from emulator.inference.fakestrings import lorem_source, words

#: how many sentences a corpus has
SENTENCES = 2048
#: the seed whose corpus ships drawn
SHIPPED_SEED = 0
SHIPPED = Path(__file__).parent / "data" / f"corpus-{SHIPPED_SEED}.txt.gz"
_HEADER = "faker-lorem-sha256 "


def corpus(seed: int) -> list[str]:
    """The corpus of `seed`: the shipped one when it applies, else drawn."""
    if seed == SHIPPED_SEED:
        shipped = read_shipped()
        if shipped is not None:
            return shipped
    return build(seed)


def build(seed: int) -> list[str]:
    """Draw the corpus of `seed`: sentences of 6 to 14 words, a comma in the longer ones."""
    rng = seeded.rng("scaigrid-emulator", "corpus", seed)
    vocabulary = words()
    out = []
    for _ in range(SENTENCES):
        picked = rng.choices(vocabulary, k=rng.randint(6, 14))
        if len(picked) >= 10:  # longer sentences read better with a pause
            picked[len(picked) // 2 - 1] += ","
        sentence = " ".join(picked)
        while len(sentence) < 24:  # a floor, so 31 picks always fill the longest answer
            sentence += " " + rng.choice(vocabulary)
        out.append(sentence[0].upper() + sentence[1:] + ".")
    return out


def read_shipped() -> list[str] | None:
    """The shipped sentences, or None when the words installed are not the ones they were drawn
    from (or the file is missing or damaged)."""
    digest = _source_digest()
    try:
        lines = gzip.decompress(SHIPPED.read_bytes()).decode("utf-8").split("\n")
    except (OSError, EOFError, UnicodeDecodeError):
        return None
    if digest is None or lines[0] != _HEADER + digest or len(lines) != SENTENCES + 1:
        return None
    return lines[1:]


def _source_digest() -> str | None:
    source = lorem_source()
    try:
        return None if source is None else hashlib.sha256(source.read_bytes()).hexdigest()
    except OSError:
        return None


def write_shipped() -> Path:
    """Draw the shipped seed's corpus and write it, headed by the digest of the words' source."""
    digest = _source_digest()
    if digest is None:
        raise SystemExit("Faker's en_US lorem source was not found; nothing written")
    text = "\n".join([_HEADER + digest, *build(SHIPPED_SEED)])
    SHIPPED.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
    return SHIPPED


if __name__ == "__main__":
    print(f"wrote {write_shipped()}")
