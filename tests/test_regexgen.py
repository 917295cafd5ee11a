"""Strings drawn from regular expressions (JSON Schema `pattern`), checked with Python's `re`."""

from __future__ import annotations

import random
import re

import pytest

from emulator.inference.fakestrings import words
from emulator.inference.regexgen import Unsupported, matching, searches

DRAWS = 60

PATTERNS = {
    "zip": r"^\d{5}(-\d{4})?$",
    "iban": r"^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$",
    "email-ish": r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$",
    "e164": r"^\+?[1-9]\d{1,14}$",
    "hex colour": r"^#[0-9a-fA-F]{6}$",
    "slug": r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
    "semver": r"^\d+\.\d+\.\d+(-(alpha|beta|rc)\.\d+)?$",
    "mac": r"^([0-9A-F]{2}:){5}[0-9A-F]{2}$",
    "time range": r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$",
    "negated classes": r"^[^\s@]+@[^\s@]+$",
    "escapes": r"^\w+\s\S+\.\D\W$",
    "unanchored": r"SKU-\d+",
    "alternation at the top": r"^yes$|^no$|^maybe$",
    "lazy and possessive": r"^a+?b*+c{2,3}?$",
    "python {,n}": r"^x{,3}y$",
    "hex and unicode escapes": r"^\x41\u00e9[\u4e00-\u9fa5]{2}$",
    "class edge cases": r"^[]a-][\d.][\w-]+$",
    "backreference": r"^(\w+)-\1$",
    "named backreference": r"^(?P<word>[a-z]{2,4}) (?P=word)$",
    "literal brace": r"^a{b}$",
    "password lookaheads": r"^(?=.*[A-Z])(?=.*[a-z])(?=.*\d).{8,64}$",
    "negative lookahead": r"^(?!000)\d{3}-\d{2}$",
    "word boundaries": r"\bend\b",
}


@pytest.mark.parametrize("pattern", PATTERNS.values(), ids=PATTERNS)
def test_draws_match_and_vary(pattern: str) -> None:
    rng = random.Random(pattern)
    drawn = [matching(pattern, rng, words()) for _ in range(DRAWS)]
    assert all(re.search(pattern, text) for text in drawn), drawn
    assert len(set(drawn)) > 1 or pattern in (r"^a{b}$", r"\bend\b"), drawn


@pytest.mark.parametrize(
    ("pattern", "least", "most"),
    [
        (r"^[a-z]+$", 10, 12),
        (r"^[a-z]{1,40}$", 0, 3),
        (r"^\d+(\.\d+)?$", 6, None),
        (r"\d{3}", 20, 24),  # unanchored: padded with words
        (r"^(?=.*\d)[a-z\d]{4,30}$", 20, 22),
    ],
)
def test_length_bounds_are_met(pattern: str, least: int, most: int | None) -> None:
    rng = random.Random(1)
    for _ in range(DRAWS):
        text = matching(pattern, rng, words(), least=least, most=most)
        assert re.search(pattern, text) and least <= len(text), text
        assert most is None or len(text) <= most, text


def test_a_draw_is_a_pure_function_of_the_random_state() -> None:
    pattern = PATTERNS["iban"]
    assert [matching(pattern, random.Random(5), words()) for _ in range(3)] == [
        matching(pattern, random.Random(5), words())
    ] * 3


def test_classes_draw_readable_characters() -> None:
    """`.` and negated classes draw letters and digits, not control or odd characters."""
    rng = random.Random(2)
    for pattern in (r"^.{20}$", r"^[^@]{20}$", r"^\S{20}$"):
        assert matching(pattern, rng, words()).isalnum()


def test_a_huge_repetition_stops_at_the_cap() -> None:
    text = matching(r"((a{1000}){1000}){1000}", random.Random(1), words(), cap=4096)
    assert 4096 <= len(text) <= 4097


@pytest.mark.parametrize(
    "pattern",
    [
        "(?i)abc",  # inline flags
        r"\p{L}+",  # Unicode properties (Python's re has none)
        r"\cJ",
        "(?(1)a|b)",  # conditionals
        "(abc",
        "abc)",
        "[abc",
        "[z-a]",
        "a{3,1}",
        "*a",
        "a**",
        "\\",
        r"\u12",
        "[^\x00-\U0010ffff]",  # a class nothing is in
        "(" * 5000 + ")" * 5000,
    ],
)
def test_what_it_cannot_read_is_unsupported(pattern: str) -> None:
    with pytest.raises(Unsupported):
        matching(pattern, random.Random(1), words())


def test_searches_tells_a_match_and_what_python_cannot_compile() -> None:
    assert searches(r"\d{3}", "ab123") is True
    assert searches(r"^\d{3}$", "ab123") is False
    assert searches("(unclosed", "x") is None


@pytest.mark.parametrize("pattern", [r"^\d{2000}$", r"^a{1000000000}$", r"^(ab){3000,}$"])
def test_a_long_exact_repetition_is_drawn_up_to_the_cap(pattern: str) -> None:
    text = matching(pattern, random.Random(1), words(), cap=4096)
    assert len(text) <= 4097 * 2
    if len(text) <= 4096:
        assert re.search(pattern, text)
