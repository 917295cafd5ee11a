"""Strings that match a regular expression: what a JSON Schema `pattern` gets.

`matching(pattern, rng, ...)` draws a string that `re.search(pattern, string)` accepts (JSON
Schema patterns are unanchored searches), from the tree `regexparse` reads. Without length bounds
an unbounded quantifier repeats a few times; with `minLength`/`maxLength`, each draw aims at a
length inside them (every node knows the shortest and longest string it can give) and an
unanchored pattern is padded with words. A pattern with lookarounds or word boundaries is drawn
without them and each draw checked with `re`. After `TRIES` draws without one that fits, the
closest is returned; a pattern `regexparse` cannot read raises `Unsupported`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from emulator.inference.regexparse import (
    Alt,
    Backref,
    Chars,
    Group,
    Node,
    Repeat,
    Seq,
    Unsupported,
    compiled,
    parse,
)

__all__ = ["TRIES", "Unsupported", "matching", "searches"]

#: draws per pattern before the closest is returned as it is
TRIES = 12


def searches(pattern: str, text: str) -> bool | None:
    """Whether `pattern` finds a match in `text`; None when Python cannot compile the pattern."""
    checker = compiled(pattern)
    return None if checker is None else checker.search(text) is not None


def matching(
    pattern: str,
    rng: random.Random,
    words: Sequence[str],
    *,
    least: int = 0,
    most: int | None = None,
    cap: int = 4096,
) -> str:
    """A string that contains a match of `pattern` and is `least`..`most` characters long (see
    the module docstring); at most about `cap` characters whatever the pattern asks."""
    parsed = parse(pattern)
    checker = compiled(pattern) if parsed.approximate else None
    if parsed.approximate and checker is None:
        raise Unsupported("the pattern does not compile")
    bounded = least > 0 or most is not None
    best, miss = "", math.inf  # the closest draw to the length bounds, of those that match
    for attempt in range(TRIES):
        drawer = _Drawer(rng, cap)
        if bounded:
            drawer.draw(parsed.root, drawer.aim(parsed.root, least, most))
        else:
            drawer.mode = _MODES[attempt % len(_MODES)]
            drawer.draw(parsed.root, None)
        text = drawn = "".join(drawer.out)
        if not parsed.anchored:  # words around an unanchored match keep it a match
            while len(text) < least:
                text += " " + rng.choice(words)
            if most is not None and len(drawn) <= most < len(text):
                text = text[:most]  # the padding overshot: cut it, not the match
        if checker is not None and checker.search(text) is None:
            best = best or text
            continue
        off = max(least - len(text), 0 if most is None else len(text) - most, 0)
        if not off:
            return text
        if off < miss:
            best, miss = text, off
    return best


# --- drawing --------------------------------------------------------------------------------------

_SPREAD = 4  # an unbounded quantifier repeats up to this many times more than it must
# repetition counts of successive draws without length bounds: typical ones first, then extremes
_MODES = ("typical", "short", "typical", "long")
_Span = tuple[int, float]  # the shortest and longest string a node gives (math.inf: no longest)


class _Drawer:
    """One draw: `draw(node, want)` appends a string for `node` to `out`, of about `want`
    characters when `want` is given, else with repetition counts of `mode`."""

    def __init__(self, rng: random.Random, cap: int) -> None:
        self.rng, self.cap = rng, cap
        self.mode = "typical"
        self.groups: dict[int | str, str] = {}
        self.out: list[str] = []
        self.length = 0
        self.spans: dict[int, _Span] = {}  # by id(node): nodes live as long as the parse cache

    def aim(self, root: Node, least: int, most: int | None) -> int:
        """A length to aim at: within `least`..`most` and what `root` can give, else nearest."""
        low, high = self.span(root)
        top = min(high, most if most is not None else max(least, low) + _SPREAD, self.cap)
        bottom = max(low, least)
        return self.rng.randint(bottom, int(top)) if bottom <= top else min(bottom, int(top))

    def span(self, node: Node) -> _Span:
        known = self.spans.get(id(node))
        if known is None:
            known = self.spans[id(node)] = self._span(node)
        return known

    def _span(self, node: Node) -> _Span:
        if isinstance(node, Chars):
            return 1, 1
        if isinstance(node, Seq):
            spans = [self.span(item) for item in node.items]
            return sum(lo for lo, _ in spans), sum(hi for _, hi in spans)
        if isinstance(node, Alt):
            spans = [self.span(option) for option in node.options]
            return min(lo for lo, _ in spans), max(hi for _, hi in spans)
        if isinstance(node, Repeat):
            lo, hi = self.span(node.node)
            if node.most == 0 or hi == 0:
                return 0, 0
            return node.least * lo, hi * (math.inf if node.most is None else node.most)
        if isinstance(node, Group):
            return self.span(node.node)
        return (0, math.inf) if isinstance(node, Backref) else (0, 0)

    def draw(self, node: Node, want: int | None) -> None:
        if self.length > self.cap:
            return  # past the cap: the caller gets a string that stops here
        if isinstance(node, Chars):
            self.emit(self.rng.choice(node.pool))
        elif isinstance(node, Seq):
            self.sequence(node.items, want)
        elif isinstance(node, Alt):
            self.draw(self.option(node.options, want), want)
        elif isinstance(node, Repeat):
            self.sequence((node.node,) * self.count(node, want), want)
        elif isinstance(node, Group):
            start = len(self.out)
            self.draw(node.node, want)
            text = "".join(self.out[start:])
            self.groups[node.index] = text
            if node.name is not None:
                self.groups[node.name] = text
        elif isinstance(node, Backref):
            self.emit(self.groups.get(node.ref, ""))

    def emit(self, text: str) -> None:
        self.out.append(text)
        self.length += len(text)

    def sequence(self, items: Sequence[Node], want: int | None) -> None:
        """Each item in turn, sharing `want` out: an item gets at least what it must have, at
        most what leaves the rest enough, at random in between."""
        spans = [self.span(item) for item in items] if want is not None else []
        # what the items after each one can give at least and at most (sums, as inf - inf is nan)
        after: list[_Span] = [(0, 0)]
        for low, high in reversed(spans[1:]):
            after.append((after[-1][0] + low, after[-1][1] + high))
        after.reverse()
        for index, item in enumerate(items):
            if self.length > self.cap:
                return
            if want is None:
                self.draw(item, None)
                continue
            (low, high), (rest_low, rest_high) = spans[index], after[index]
            top = min(high, want - rest_low)
            bottom = max(low, want - rest_high)
            share = self.rng.randint(int(bottom), int(top)) if bottom <= top else int(bottom)
            before = self.length
            self.draw(item, share)
            want -= self.length - before

    def option(self, options: Sequence[Node], want: int | None) -> Node:
        """An alternative at random; with `want`, one that can give that length if any can."""
        if want is not None:
            fits = [o for o in options if self.span(o)[0] <= want <= self.span(o)[1]]
            if fits:
                return self.rng.choice(fits)
            return min(options, key=lambda o: min(abs(want - b) for b in self.span(o)))
        return self.rng.choice(options)

    def count(self, node: Repeat, want: int | None) -> int:
        """How often a repeat repeats: never more than the cap has characters, so `a{1000000}`
        stops there."""
        least = min(node.least, self.cap + 1)
        most = min(self.cap + 1 if node.most is None else node.most, self.cap + 1)
        if want is not None:
            low, high = self.span(node.node)
            fewest = max(least, math.ceil(want / high) if 0 < high < math.inf else 0)
            fewest = max(fewest, 1) if want > 0 and high == math.inf else fewest
            most = min(most, want // low) if low else min(most, fewest + _SPREAD)
            return self.rng.randint(fewest, most) if fewest <= most else min(fewest, most)
        if self.mode == "short":
            return least
        if self.mode == "long":
            return most if node.most is not None else min(least + 4 * _SPREAD, most)
        return self.rng.randint(least, min(most, least + _SPREAD))
