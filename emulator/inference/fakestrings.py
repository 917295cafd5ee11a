"""Fake strings: Faker's English words, the string formats, and a string for a schema's keywords.

`fake_string(schema, rng, words)` honours `pattern` (through `regexgen`), else `format`, else
draws one to three words; then `minLength` (more words) and `maxLength` (a cut). Formats drawn:
date-time, date, time, email, uri, url, iri, uri-reference, uuid, hostname, ipv4, ipv6 and
duration; each draw is one that validators with format checking accept. A `pattern` the regex
generator cannot read (inline flags, `\\p{...}`, or not a regular expression at all) is ignored:
the string is drawn as if it had none, and may not match.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import random
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeGuard

#: the longest string a schema gets, so `minLength: 1e12` cannot hang a live call or a batch
#: worker: a schema that demands more gets a string that stops here (and does not validate)
MAX_STRING = 4096


@functools.cache
def words() -> tuple[str, ...]:
    """Faker's English lorem words, read on first use. They are read from the source of Faker's
    `en_US` lorem provider without importing it: importing any part of Faker costs ~0.15 s (it
    scans its locales), which a server's first batch or first live answer would pay. Importing
    is the fallback; a test proves both give the same words."""
    return _words_from_source() or _words_from_faker()


def _words_from_faker() -> tuple[str, ...]:
    from faker.providers.lorem.en_US import Provider

    return tuple(Provider.word_list)


_WORD_LIST = re.compile(r"^    word_list = (\(\n.*?\n    \))\n", re.MULTILINE | re.DOTALL)


def lorem_source() -> Path | None:
    """The source file of Faker's `en_US` lorem provider, found without running Faker."""
    spec = importlib.util.find_spec("faker")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0], "providers", "lorem", "en_US", "__init__.py")


def _words_from_source() -> tuple[str, ...] | None:
    """The provider's `word_list` tuple literal, or None if the source is not laid out so."""
    path = lorem_source()
    if path is None:
        return None
    try:
        match = _WORD_LIST.search(path.read_text(encoding="utf-8"))
        found = ast.literal_eval(match.group(1)) if match else None
    except (OSError, ValueError, SyntaxError):
        return None
    if not isinstance(found, tuple) or not all(isinstance(w, str) for w in found):
        return None
    return found


# --- string formats -------------------------------------------------------------------------------


def _date(rng: random.Random, words: Sequence[str]) -> str:
    # Day 28 at most, so every month is valid without a calendar.
    return f"{rng.randint(2020, 2030):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _time(rng: random.Random, words: Sequence[str]) -> str:
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"


def _uuid(rng: random.Random, words: Sequence[str]) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _slug(rng: random.Random, words: Sequence[str]) -> str:
    return rng.choice(words)  # the lorem list is plain lower-case letters: safe in URLs and emails


_FORMATS: dict[str, Callable[[random.Random, Sequence[str]], str]] = {
    "date-time": lambda r, w: f"{_date(r, w)}T{_time(r, w)}",
    "date": _date,
    "time": _time,
    "email": lambda r, w: f"{_slug(r, w)}.{_slug(r, w)}@example.com",
    "uri": lambda r, w: f"https://example.com/{_slug(r, w)}/{_slug(r, w)}",
    "url": lambda r, w: f"https://example.com/{_slug(r, w)}/{_slug(r, w)}",
    "iri": lambda r, w: f"https://example.com/{_slug(r, w)}",
    "uri-reference": lambda r, w: f"/{_slug(r, w)}/{_slug(r, w)}",
    "uuid": _uuid,
    "hostname": lambda r, w: f"{_slug(r, w)}.example.com",
    "ipv4": lambda r, w: ".".join(str(r.randint(1, 254)) for _ in range(4)),
    "ipv6": lambda r, w: "2001:db8::" + format(r.getrandbits(16), "x"),
    "duration": lambda r, w: f"P{r.randint(1, 30)}D",
}


def fake_string(schema: Mapping[str, Any], rng: random.Random, vocabulary: Sequence[str]) -> str:
    """A string for `schema`'s string keywords (see the module docstring), of `vocabulary`'s
    words where words are drawn."""
    least = min(schema["minLength"], MAX_STRING) if _is_int(schema.get("minLength")) else 0
    most = schema["maxLength"] if _is_int(schema.get("maxLength")) else None
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        # the regex generator is imported when a pattern first asks for it: it is sizeable,
        # and a server that is never asked for one need not load it before it starts
        from emulator.inference.regexgen import Unsupported, matching

        try:
            return matching(pattern, rng, vocabulary, least=least, most=most, cap=MAX_STRING)
        except Unsupported:
            pass  # drawn as if there were no pattern: documented above
    fmt = _FORMATS.get(schema.get("format", ""))
    text = fmt(rng, vocabulary) if fmt else _words(rng, vocabulary, rng.randint(1, 3))
    while len(text) < least:
        text += " " + _words(rng, vocabulary, 1)
    if most is not None and len(text) > most:
        cut = text[:most]
        text = cut.rstrip() if len(cut.rstrip()) >= least else cut
    return text


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _words(rng: random.Random, vocabulary: Sequence[str], count: int) -> str:
    return " ".join(rng.choice(vocabulary) for _ in range(count))
