"""Regular expressions read into a small tree, for drawing strings that match (`regexgen`).

The syntax read is the part that realistic JSON Schema patterns use, in both the ECMA-262 and the
Python spellings (validators in Python use `re`):

* literals and escapes (`\\.`, `\\n`, `\\t`, `\\xHH`, `\\uHHHH`), `.`, classes `[...]` and
  `[^...]` with ranges, and `\\d \\w \\s \\D \\W \\S` inside and outside them;
* quantifiers `? * + {n} {n,} {n,m}` (and Python's `{,m}`), lazy (`*?`) or possessive (`*+`);
* groups `(...)`, `(?:...)`, `(?<name>...)`, `(?P<name>...)`, alternation `|`, backreferences
  `\\1`, `\\k<name>`, `(?P=name)`;
* anchors `^ $ \\A \\Z \\z` (positions, so they add nothing).

Lookarounds (`(?=...)`, `(?!...)`, `(?<=...)`, `(?<!...)`) and word boundaries (`\\b`, `\\B`)
are read and skipped, and the pattern is marked approximate (its draws must be checked). Anything
else (inline flags, `\\p{...}`, conditionals, a pattern that does not parse) is `Unsupported`.

Each class is read into the characters a draw picks from, chosen for readable output: printable
ASCII members when the class has any (`[^@]` gives letters and digits, not control characters),
alphanumerics first, and `.` letters and digits; an approximate pattern draws from every printable
character instead, as checks such as "contains a symbol" then pass more often.
"""

from __future__ import annotations

import functools
import re
import string
import warnings
from collections.abc import Sequence
from dataclasses import dataclass


class Unsupported(ValueError):
    """The pattern uses syntax the generator does not draw from (the message says which)."""


# --- the parsed pattern ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chars:
    """One character from `pool` (already chosen for readability)."""

    pool: str


@dataclass(frozen=True, slots=True)
class Seq:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Alt:
    options: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Repeat:
    node: Node
    least: int
    most: int | None  # None: unbounded


@dataclass(frozen=True, slots=True)
class Group:
    node: Node
    index: int
    name: str | None


@dataclass(frozen=True, slots=True)
class Backref:
    ref: int | str


@dataclass(frozen=True, slots=True)
class Nothing:
    """An anchor, a boundary or a lookaround: matches without consuming anything."""

    approximate: bool  # True for what the generator cannot honour (lookarounds, \b, \B)


Node = Chars | Seq | Alt | Repeat | Group | Backref | Nothing


@dataclass(frozen=True, slots=True)
class Parsed:
    root: Node
    approximate: bool  # some part was skipped: check draws with `re`
    anchored: bool  # has an anchor: padding the match would break it


# --- character sets -------------------------------------------------------------------------------

_PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
_ALNUM = string.ascii_letters + string.digits
_WORD = _ALNUM + "_"
_SPACE_CHARS = " \t\n\r\f\v"
_FALLBACK = "éøßñüçå"  # for a negated class that excludes every printable ASCII character

# (ranges of the class, what to draw from when nothing narrower applies)
_CLASS_ESCAPES: dict[str, tuple[tuple[tuple[int, int], ...], bool]] = {
    "d": (((0x30, 0x39),), False),
    "w": (((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)), False),
    "s": (tuple((ord(c), ord(c)) for c in _SPACE_CHARS), False),
    "D": (((0x30, 0x39),), True),
    "W": (((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)), True),
    "S": (tuple((ord(c), ord(c)) for c in _SPACE_CHARS), True),
}
# the readable choice outside a class: \s is a space, \S a letter or digit
_ESCAPE_POOLS = {"d": string.digits, "w": _WORD, "s": " ", "D": string.ascii_letters, "W": " -.,"}
_ESCAPE_POOLS["S"] = _ALNUM
_LITERAL_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "0": "\0"}


def _pool(ranges: Sequence[tuple[int, int]], negated: bool, wide: bool) -> str:
    """What a class draws from: its printable ASCII members (alphanumerics first unless `wide`),
    else characters of its own ranges."""

    def member(c: str) -> bool:
        inside = any(lo <= ord(c) <= hi for lo, hi in ranges)
        return inside != negated

    if not wide:
        readable = "".join(c for c in _ALNUM if member(c))
        if readable:
            return readable
    printable = "".join(c for c in _PRINTABLE if member(c))
    if printable:
        return printable
    if negated:
        rest = "".join(c for c in _FALLBACK if member(c))
        if rest:
            return rest
        raise Unsupported("a negated class that excludes every character tried")
    # A class of non-ASCII ranges only ([\u4e00-\u9fa5]): up to 64 of its own characters.
    return "".join(chr(c) for lo, hi in ranges for c in range(lo, min(hi, lo + 63) + 1))


# --- the parser -----------------------------------------------------------------------------------

_QUANTIFIER = re.compile(r"\{(\d*)(,(\d*))?\}")


class _Parser:
    def __init__(self, pattern: str, *, wide: bool) -> None:
        self.text, self.pos = pattern, 0
        self.wide = wide  # draw from all printable characters, not alphanumerics first
        self.groups = 0
        self.approximate = self.anchored = False

    def parse(self) -> Parsed:
        root = self.alternation()
        if self.pos != len(self.text):
            raise Unsupported(f"unbalanced ')' at {self.pos}")
        return Parsed(root, self.approximate, self.anchored)

    def peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.text[index] if index < len(self.text) else ""

    def take(self) -> str:
        if self.pos >= len(self.text):
            raise Unsupported("the pattern ends inside an escape, group or class")
        char = self.text[self.pos]
        self.pos += 1
        return char

    def alternation(self) -> Node:
        options = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            options.append(self.sequence())
        return options[0] if len(options) == 1 else Alt(tuple(options))

    def sequence(self) -> Node:
        items: list[Node] = []
        while self.peek() not in ("", "|", ")"):
            items.append(self.quantified(self.atom()))
        return items[0] if len(items) == 1 else Seq(tuple(items))

    def quantified(self, node: Node) -> Node:
        char = self.peek()
        if char in ("?", "*", "+"):
            self.pos += 1
            least, most = {"?": (0, 1), "*": (0, None), "+": (1, None)}[char]
        else:
            match = _QUANTIFIER.match(self.text, self.pos)
            if match is None or not (match.group(1) or match.group(2)):  # "{" or "{}": literal
                return node
            self.pos = match.end()
            least = int(match.group(1) or 0)  # Python reads {,n} as {0,n}
            most = least if match.group(2) is None else int(match.group(3) or -1)
            most = None if most == -1 else most
            if most is not None and most < least:
                raise Unsupported(f"the quantifier {match.group(0)} has min over max")
        if self.peek() in ("?", "+"):  # lazy or possessive: the same strings match
            self.pos += 1
        if self.peek() in ("?", "*", "+"):
            raise Unsupported("a quantifier follows a quantifier")
        if isinstance(node, Nothing):
            return node
        return Repeat(node, least, most)

    def atom(self) -> Node:
        char = self.take()
        if char == "(":
            return self.group()
        if char == "[":
            return self.char_class()
        if char == ".":
            return Chars(_PRINTABLE if self.wide else _ALNUM)
        if char in "^$":
            self.anchored = True
            return Nothing(approximate=False)
        if char == "\\":
            return self.escape()
        if char in "*+?":
            raise Unsupported(f"nothing to repeat at {self.pos - 1}")
        return Chars(char)

    def group(self) -> Node:
        name: str | None = None
        if self.peek() == "?":
            self.pos += 1
            kind = self.take()
            if kind in "=!" or (kind == "<" and self.peek() in "=!"):
                self.pos += 0 if kind in "=!" else 1
                self.alternation()  # parsed to find its end, then skipped
                self.close()
                self.approximate = True
                return Nothing(approximate=True)
            if kind == ":":
                node = self.alternation()
                self.close()
                return node
            if kind == "P" and self.peek() == "=":
                self.pos += 1
                return Backref(self.until(")"))
            if kind == "<" or (kind == "P" and self.take() == "<"):
                name = self.until(">")
            else:
                raise Unsupported(f"the group syntax (?{kind} at {self.pos - 2}")
        self.groups += 1
        index = self.groups
        node = self.alternation()
        self.close()
        return Group(node, index, name)

    def close(self) -> None:
        if self.take() != ")":
            raise Unsupported("a group is not closed")

    def until(self, end: str) -> str:
        stop = self.text.find(end, self.pos)
        if stop < 0:
            raise Unsupported(f"no {end!r} closes a name")
        found, self.pos = self.text[self.pos : stop], stop + 1
        return found

    def escape(self) -> Node:
        char = self.take()
        if char in _ESCAPE_POOLS:
            return Chars(_ESCAPE_POOLS[char])
        if char in "bB":
            self.approximate = True
            return Nothing(approximate=True)
        if char in "AZz":
            self.anchored = True
            return Nothing(approximate=False)
        if char.isdigit() and char != "0":
            digits = char
            while self.peek().isdigit():
                digits += self.take()
            return Backref(int(digits))
        if char == "k" and self.peek() == "<":
            self.pos += 1
            return Backref(self.until(">"))
        return Chars(self.escaped_char(char))

    def escaped_char(self, char: str) -> str:
        """The character an escape that stands for one character means (`\\.` is ".")."""
        if char in _LITERAL_ESCAPES:
            return _LITERAL_ESCAPES[char]
        if char in "xu":
            width = 2 if char == "x" else 4
            digits = self.text[self.pos : self.pos + width]
            if len(digits) != width or not all(d in string.hexdigits for d in digits):
                raise Unsupported(f"\\{char} needs {width} hex digits")
            self.pos += width
            return chr(int(digits, 16))
        if char.isalnum():  # \p{...}, \cX, \N{...} and the like
            raise Unsupported(f"the escape \\{char}")
        return char

    def char_class(self) -> Node:
        negated = self.peek() == "^"
        self.pos += negated
        ranges: list[tuple[int, int]] = []
        first = True
        while first or self.peek() != "]":
            first = False
            low = self.class_item(ranges, negated)
            if low is None:
                continue
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.pos += 1
                high = self.class_item(ranges, negated)
                if high is None or high < low:
                    raise Unsupported("a class range that is not a range of characters")
                ranges.append((low, high))
            else:
                ranges.append((low, low))
        self.pos += 1
        return Chars(_pool(ranges, negated, wide=self.wide))

    def class_item(self, ranges: list[tuple[int, int]], negated: bool) -> int | None:
        """The code point of one class member; a `\\d`-style escape adds its ranges and is None."""
        char = self.take()
        if char != "\\":
            return ord(char)
        char = self.take()
        if char in _CLASS_ESCAPES:
            inner, inverted = _CLASS_ESCAPES[char]
            if inverted:  # [\D], [\S], [\W]: everything printable outside the escape's ranges
                outside = _pool(inner, True, wide=True)
                ranges.extend((ord(c), ord(c)) for c in outside)
            else:
                ranges.extend(inner)
            return None
        if char == "b":
            return 0x08  # in a class, \b is a backspace
        return ord(self.escaped_char(char))


def parse(pattern: str) -> Parsed:
    """The pattern read into a tree; raises `Unsupported` with the reason it cannot be."""
    parsed = _parse(pattern)
    if isinstance(parsed, Unsupported):
        raise parsed
    return parsed


@functools.lru_cache(maxsize=256)
def _parse(pattern: str) -> Parsed | Unsupported:
    """`parse`, remembered (a failure too). A pattern with lookarounds is read again to draw from
    every printable character (see the module docstring)."""
    try:
        parsed = _Parser(pattern, wide=False).parse()
        return _Parser(pattern, wide=True).parse() if parsed.approximate else parsed
    except Unsupported as exc:
        return exc
    except RecursionError:
        return Unsupported("the pattern nests too deeply")


@functools.lru_cache(maxsize=256)
def compiled(pattern: str) -> re.Pattern[str] | None:
    """The pattern compiled by Python's `re` (what validators check with), or None."""
    with warnings.catch_warnings():  # e.g. FutureWarning for "[[" in a class
        warnings.simplefilter("ignore")
        try:
            return re.compile(pattern)
        except (re.error, OverflowError, RecursionError):
            return None
