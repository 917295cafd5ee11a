"""Schema-driven fake JSON values: `fake_value(schema, rng)` returns a value meant to validate.

Used for tool-call arguments and `json_schema` response formats, so a client's parser and its own
schema validation see realistic data. The value is a pure function of the schema and the state of
the `random.Random` passed in; strings come from `fakestrings` (Faker's English lorem words,
formats, and `pattern` through `regexgen`).

Supported keywords, the JSON Schema that OpenAI's structured outputs accept and more: `type` (a
name or a list of names, so `["string", "null"]` is nullable), `enum` and `const` at any level;
objects (`properties`, `required`, `additionalProperties` incl. false, `minProperties`,
`maxProperties`); arrays (`items`, `prefixItems`, draft-7 tuple `items`, `minItems`, `maxItems`,
`uniqueItems`, `contains`); strings (`pattern`, `minLength`, `maxLength`, `format`: see
`fakestrings`); integers and numbers (`minimum`, `maximum`, `exclusiveMinimum`,
`exclusiveMaximum` in both the numeric and the draft-4 boolean form, `multipleOf`); `boolean`,
`null`; `anyOf` and `oneOf` (a usable branch, drawn at random, but deep down the one that grows
least when some branch is an object, an array or a `$ref`; for `oneOf` a branch whose value also
matches another branch is skipped when a quick check can tell); `allOf` (merged into one
schema); `$ref` to a JSON pointer inside the same document ("#", "#/$defs/...",
"#/definitions/..."), recursive ones included: past a depth, optional properties and optional
items are left out and nullable objects and arrays are null, so a value always ends.

Not honoured, silently (the value may then fail validation): `patternProperties`,
`propertyNames`, `not`, `if`/`then`/`else`, `dependentRequired`/`dependentSchemas`, `$ref`s to
other documents, a `pattern` the regex generator cannot read (`fakestrings` says which), and
demands past the caps below. Unsatisfiable schemas (e.g. `false`) give `None`.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeGuard

from emulator.inference.fakestrings import fake_string, words

Schema = Mapping[str, Any]

# Past this depth, optional properties and optional array items are left out, so recursive
# schemas (a tree node whose children are nodes) end; _MAX_DEPTH is the hard stop.
_SHALLOW = 3
_MAX_DEPTH = 12
# Caps on what one schema may ask for, so `minItems: 1e12` cannot hang a live call or a batch
# worker: a schema that demands more gets a value that stops at the cap (and does not validate).
# Strings have theirs in `fakestrings`.
_MAX_ITEMS = 256
_MAX_PROPERTIES = 64
# Values generated before everything counts as deep: a tree whose nodes need two child nodes
# otherwise doubles with every level.
_BUDGET = 2000
_ONE_OF_TRIES = 4
_DEFAULT_SPAN = 100  # an unbounded number side is this far from the other bound

_TAKE_MAX = frozenset({"minimum", "minLength", "minItems", "minProperties"})
_TAKE_MIN = frozenset({"maximum", "maxLength", "maxItems", "maxProperties"})
_KEYWORD_TYPES = (
    ({"properties", "required", "additionalProperties", "minProperties"}, "object"),
    ({"items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains"}, "array"),
    ({"minLength", "maxLength", "format", "pattern"}, "string"),
    ({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}, "number"),
)


def fake_value(schema: Any, rng: random.Random, vocabulary: Sequence[str] | None = None) -> Any:
    """A value for `schema` (a JSON Schema as parsed JSON), drawn from `rng`."""
    return _Generator(schema, rng, vocabulary or words()).value(schema, 0)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _dump_key(value: Any) -> str:
    # Identity for uniqueItems; sort_keys so {"a":1,"b":2} and {"b":2,"a":1} count as equal.
    return json.dumps(value, sort_keys=True)


# --- merging (allOf, $ref with siblings, anyOf/oneOf branch + siblings) ---------------------------


def _types(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [t for t in value if isinstance(t, str)]


def _type_meet(a: Any, b: Any) -> Any:
    left, right = _types(a), _types(b)
    out = [t for t in left if t in right or (t == "integer" and "number" in right)]
    out += [t for t in right if t == "integer" and "number" in left and t not in out]
    return out or a  # an empty meet is unsatisfiable; keep one side and do our best


def _merge_key(key: str, a: Any, b: Any) -> Any:
    if key == "properties" and isinstance(a, Mapping) and isinstance(b, Mapping):
        return {**a, **{k: {"allOf": [a[k], v]} if k in a else v for k, v in b.items()}}
    if key == "required" and isinstance(a, list) and isinstance(b, list):
        return list(dict.fromkeys([*a, *b]))
    if key == "type":
        return _type_meet(a, b)
    if key == "enum" and isinstance(a, list) and isinstance(b, list):
        return [v for v in a if v in b] or a
    if _is_num(a) and _is_num(b) and key in _TAKE_MAX | {"exclusiveMinimum"}:
        return max(a, b)
    if _is_num(a) and _is_num(b) and key in _TAKE_MIN | {"exclusiveMaximum"}:
        return min(a, b)
    if key in ("additionalProperties", "items"):
        if a is False or b is False:
            return False
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            return {"allOf": [a, b]}
    return a  # anything else: the first schema wins (best effort)


def merge(a: Schema, b: Schema) -> dict[str, Any]:
    """One schema meant to accept what both `a` and `b` accept (best effort)."""
    out = dict(a)
    for key, value in b.items():
        out[key] = _merge_key(key, out[key], value) if key in out else value
    return out


# --- quick conformance check, only to steer oneOf away from values matching two branches ----------


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: _is_int(v) or (isinstance(v, float) and v.is_integer()),
    "number": _is_num,
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


# --- the generator --------------------------------------------------------------------------------


class _Generator:
    def __init__(self, root: Any, rng: random.Random, words: Sequence[str]) -> None:
        self.root = root
        self.rng = rng
        self.words = words
        self.budget = _BUDGET
        self.by_type: dict[str, Callable[[Schema, int], Any]] = {
            "object": self._object,
            "array": self._array,
            "string": self._string,
            "integer": self._integer,
            "number": self._number,
            "boolean": lambda s, d: self.rng.random() < 0.5,
            "null": lambda s, d: None,
        }

    # ---- schema plumbing ----

    def resolve(self, schema: Any) -> Schema | None:
        """`schema` with top-level `$ref` and `allOf` folded in; None for an unsatisfiable one."""
        if schema is True or schema is None:
            return {}
        if not isinstance(schema, Mapping):
            return None
        for _ in range(_MAX_DEPTH):  # a $ref cycle that never reaches a real schema stops here
            if "$ref" in schema:
                target = self.pointer(schema["$ref"])
                rest = {k: v for k, v in schema.items() if k != "$ref"}
                schema = merge(target, rest) if rest else target
            elif isinstance(schema.get("allOf"), list):
                merged: Schema = {k: v for k, v in schema.items() if k != "allOf"}
                for part in schema["allOf"]:
                    resolved = self.resolve(part)
                    if resolved is None:
                        return None
                    merged = merge(merged, resolved)
                schema = merged
            else:
                break
        return dict(schema)

    def pointer(self, ref: Any) -> Schema:
        if not isinstance(ref, str) or not ref.startswith("#"):
            return {}  # another document: out of scope, anything goes
        node: Any = self.root
        for raw in ref[1:].split("/")[1:]:
            part = raw.replace("~1", "/").replace("~0", "~")
            node = node.get(part) if isinstance(node, Mapping) else None
        return node if isinstance(node, Mapping) else {}

    def kind(self, schema: Schema, depth: int) -> str:
        declared = schema.get("type")
        if isinstance(declared, str):
            return declared if declared in self.by_type else "string"
        if isinstance(declared, list):
            options = [t for t in declared if t in self.by_type] or ["string"]
            solid = [t for t in options if t != "null"]
            # A nullable field is mostly filled in; deep down, a nullable object or array is null
            # instead, which ends recursion.
            grows = depth >= _SHALLOW and ("object" in solid or "array" in solid)
            if not solid or ("null" in options and (grows or self.rng.random() < 0.2)):
                return "null"
            return str(self.rng.choice(solid))
        keys = schema.keys()
        return next((name for words, name in _KEYWORD_TYPES if words & keys), "string")

    # ---- values ----

    def value(self, raw: Any, depth: int) -> Any:
        schema = self.resolve(raw)
        if schema is None or depth > _MAX_DEPTH:
            return None
        self.budget -= 1
        if self.budget < 0:
            depth = max(depth, _SHALLOW)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return self.rng.choice(enum)
        for key in ("oneOf", "anyOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                siblings = {k: v for k, v in schema.items() if k != key}
                return self._branch(siblings, branches, depth, exclusive=key == "oneOf")
        return self.by_type[self.kind(schema, depth)](schema, depth)

    def _branch(self, siblings: Schema, branches: list[Any], depth: int, *, exclusive: bool) -> Any:
        usable = [(i, b) for i, b in enumerate(branches) if self.resolve(b) is not None]
        if not usable:
            return None
        weights = [_weight(branch) for _, branch in usable]
        if depth >= _SHALLOW and max(weights) >= 2:  # deep down, prefer branches that do not
            usable.sort(key=lambda pair: _weight(pair[1]))  # grow, so values stay small and end
        elif len(usable) > 1:  # else any branch, so `anyOf: [X, null]` is sometimes null
            start = self.rng.randrange(len(usable))
            usable = usable[start:] + usable[:start]
        if not exclusive:
            return self.value(merge(siblings, {"allOf": [usable[0][1]]}), depth)
        first: Any = None
        for index, branch in usable:
            others = [b for i, b in enumerate(branches) if i != index]
            # A few draws per branch: overlapping branches (any string vs a short string) often
            # have values that match just one of them.
            for _ in range(_ONE_OF_TRIES):
                candidate = self.value(merge(siblings, {"allOf": [branch]}), depth)
                first = candidate if first is None else first
                if not any(self.conforms(other, candidate) for other in others):
                    return candidate
        return first

    def _object(self, schema: Schema, depth: int) -> dict[str, Any]:
        props = schema.get("properties")
        props = props if isinstance(props, Mapping) else {}
        required = [k for k in schema.get("required", ()) if isinstance(k, str)]
        extra = schema.get("additionalProperties", True)
        keys = [k for k in props if k in required or depth < _SHALLOW]
        keys += [k for k in required if k not in props]
        most = schema.get("maxProperties")
        if isinstance(most, int):
            optional = [k for k in keys if k not in required]
            drop = set(optional[max(0, most - len(required)) :])
            keys = [k for k in keys if k not in drop]
        extra_schema = extra if isinstance(extra, Mapping) else {}
        out = {k: self.value(props.get(k, extra_schema), depth + 1) for k in keys}
        self._fill_min_properties(schema, props, extra, out, depth)
        return out

    def _fill_min_properties(
        self, schema: Schema, props: Mapping[str, Any], extra: Any, out: dict[str, Any], depth: int
    ) -> None:
        least = schema.get("minProperties", 0)
        least = min(least, _MAX_PROPERTIES) if _is_int(least) else 0
        for key in props:
            if len(out) >= least:
                return
            out.setdefault(key, self.value(props[key], depth + 1))
        if extra is False:
            return
        extra_schema = extra if isinstance(extra, Mapping) else {}
        for word in self.words:
            if len(out) >= least:
                return
            if word not in out:
                out[word] = self.value(extra_schema, depth + 1)

    def _array(self, schema: Schema, depth: int) -> list[Any]:
        items = schema.get("items")
        prefix = schema.get("prefixItems")
        if isinstance(items, list):  # draft-7 tuple form
            prefix, items = items, schema.get("additionalItems")
        prefix = prefix if isinstance(prefix, list) else []
        least = min(schema["minItems"], _MAX_ITEMS) if _is_int(schema.get("minItems")) else 0
        most = schema.get("maxItems") if _is_int(schema.get("maxItems")) else None
        if items is False:
            most = len(prefix) if most is None else min(most, len(prefix))
        want = least if depth >= _SHALLOW else max(least, len(prefix), self.rng.randint(1, 3))
        want = max(least, want if most is None else min(want, most))
        out: list[Any] = []
        seen: set[str] = set()
        if isinstance(schema.get("contains"), Mapping) and want:
            out.append(self.value(schema["contains"], depth + 1))
            seen.add(_dump_key(out[0]))
        unique = schema.get("uniqueItems") is True
        for _ in range(8 * want + 8):  # retries are only for uniqueItems over a small value space
            if len(out) >= want:
                break
            sub = prefix[len(out)] if len(out) < len(prefix) else items
            item = self.value(sub, depth + 1)
            key = _dump_key(item)
            if unique and key in seen:
                continue
            seen.add(key)
            out.append(item)
        return out

    def _string(self, schema: Schema, depth: int) -> str:
        return fake_string(schema, self.rng, self.words)

    def _integer(self, schema: Schema, depth: int) -> int:
        lo, hi, lo_open, hi_open = _bounds(schema)
        low, high = _span(
            None if lo is None else (math.floor(lo) + 1 if lo_open else math.ceil(lo)),
            None if hi is None else (math.ceil(hi) - 1 if hi_open else math.floor(hi)),
        )
        step = schema.get("multipleOf")
        if _is_num(step) and step > 0:
            return int(self._multiple(step, low, high, False, False, whole=True))
        return self.rng.randint(low, high) if low <= high else low

    def _number(self, schema: Schema, depth: int) -> float | int:
        lo, hi, lo_open, hi_open = _bounds(schema)
        low, high = _span(lo, hi)
        step = schema.get("multipleOf")
        if _is_num(step) and step > 0:
            return self._multiple(step, low, high, lo_open, hi_open, whole=False)
        # Two decimals read naturally and are almost never whole, so a oneOf of integer and number
        # can tell the value apart.
        value = round(float(low + (high - low) * (0.1 + 0.8 * self.rng.random())), 2)
        return value if _inside(value, low, high, lo_open, hi_open) else float((low + high) / 2)

    def _multiple(
        self, step: float, low: float, high: float, lo_open: bool, hi_open: bool, *, whole: bool
    ) -> float | int:
        first, last = math.ceil(low / step), math.floor(high / step)
        candidates = [k for k in range(first, last + 1)[:64] if k]
        self.rng.shuffle(candidates)
        for k in [*candidates, first, last]:
            value = k * step
            # Float multiples like 0.07 / 0.01 are not exact, and validators check the quotient;
            # an integer needs a whole multiple (k * 0.5 is whole only for even k).
            if not (value / step).is_integer() or not _inside(value, low, high, lo_open, hi_open):
                continue
            if float(value).is_integer():
                return int(value)
            if not whole:
                return value
        return step * first

    def conforms(self, raw: Any, value: Any) -> bool:
        """Whether `value` may match `raw`: False only when a cheap check proves it does not."""
        schema = self.resolve(raw)
        if schema is None:
            return False
        if "const" in schema and schema["const"] != value:
            return False
        if isinstance(schema.get("enum"), list) and value not in schema["enum"]:
            return False
        declared = schema.get("type")
        if declared is not None and not any(
            _TYPE_CHECKS.get(t, lambda v: True)(value) for t in _types(declared)
        ):
            return False
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                if not any(self.conforms(b, value) for b in schema[key]):
                    return False
        if isinstance(value, dict):
            return self._object_conforms(schema, value)
        return _scalar_conforms(schema, value)

    def _object_conforms(self, schema: Schema, value: dict[str, Any]) -> bool:
        props = schema.get("properties")
        props = props if isinstance(props, Mapping) else {}
        if any(k not in value for k in schema.get("required", ()) if isinstance(k, str)):
            return False
        if schema.get("additionalProperties") is False and any(k not in props for k in value):
            return False
        return all(self.conforms(props[k], v) for k, v in value.items() if k in props)


def _mentions_ref(node: Any) -> bool:
    if isinstance(node, Mapping):
        return "$ref" in node or any(_mentions_ref(v) for v in node.values())
    if isinstance(node, list):
        return any(_mentions_ref(v) for v in node)
    return False


def _weight(branch: Any) -> int:
    """How much a branch may grow: null < other scalars < containers < anything with a $ref."""
    if _mentions_ref(branch):
        return 3
    declared = branch.get("type") if isinstance(branch, Mapping) else None
    if declared is None or declared in ("object", "array"):
        return 2
    return 0 if declared == "null" else 1


def _scalar_conforms(schema: Schema, value: Any) -> bool:
    if isinstance(value, str):
        least, most = schema.get("minLength"), schema.get("maxLength")
        if _is_int(least) and len(value) < least or _is_int(most) and len(value) > most:
            return False
        pattern = schema.get("pattern")
        if not isinstance(pattern, str):
            return True
        from emulator.inference.regexgen import searches  # see fake_string: loaded on demand

        return searches(pattern, value) is not False
    if _is_num(value):
        lo, hi, lo_open, hi_open = _bounds(schema)
        low = -math.inf if lo is None else lo
        high = math.inf if hi is None else hi
        return _inside(value, low, high, lo_open, hi_open)
    return True


def _bounds(schema: Schema) -> tuple[float | None, float | None, bool, bool]:
    """(low, high, low is exclusive, high is exclusive), from either exclusive-bound dialect."""
    lo = schema.get("minimum") if _is_num(schema.get("minimum")) else None
    hi = schema.get("maximum") if _is_num(schema.get("maximum")) else None
    lo_open = schema.get("exclusiveMinimum") is True  # draft 4: a flag on minimum
    hi_open = schema.get("exclusiveMaximum") is True
    emin, emax = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if _is_num(emin) and (lo is None or emin >= lo):
        lo, lo_open = emin, True
    if _is_num(emax) and (hi is None or emax <= hi):
        hi, hi_open = emax, True
    return lo, hi, lo_open, hi_open


def _span(low: Any, high: Any) -> tuple[Any, Any]:
    """Both bounds, filling a missing side `_DEFAULT_SPAN` away from the other (or from 0)."""
    if low is None and high is None:
        return 0, _DEFAULT_SPAN
    if low is None:
        return high - _DEFAULT_SPAN, high
    if high is None:
        return low, low + _DEFAULT_SPAN
    return low, high


def _inside(value: float, low: float, high: float, lo_open: bool, hi_open: bool) -> bool:
    above = value > low if lo_open else value >= low
    below = value < high if hi_open else value <= high
    return above and below
