"""Check a JSON document against a schema of ``api.json_schema``: the gateway's request check.

A small validator for exactly the part of JSON Schema 2020-12 that ``api.json_schema`` emits
(``type``, ``enum``, ``minimum``, ``maximum``, ``pattern``, ``items``, ``properties``,
``required``, ``additionalProperties``, ``propertyNames``, ``anyOf``, ``allOf``, ``not``,
``$ref`` into ``$defs``; ``title``, ``description``, ``format`` and ``contentEncoding`` are
annotations). A schema using anything else is refused when compiled, so nothing in a
published schema goes unchecked. Semantics are JSON Schema's: ``true`` is no number, ``1.0``
is an integer, a pattern matches a whole string only when anchored (every pattern here is
``^...$``, and ``$`` means the end of the string, not before a final newline).

The answer is the first ``Problem`` found, with the path of the value at fault in the form
the gateway's errors use (``features[1]``, ``outer.inner``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from api.json_schema import JsonSchema

__all__ = ["Checker", "Problem", "compile_schema"]

_ANNOTATIONS: Final = frozenset(
    {"title", "description", "format", "contentEncoding", "$schema", "$defs"}
)
_TYPE_WORDS: Final = {
    "null": "null",
    "boolean": "true or false",
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "array": "an array",
    "object": "an object",
}


@dataclass(frozen=True)
class Problem:
    """Why a document does not fit: ``path`` of the value at fault ("" for the document
    itself) and a sentence saying what is wrong."""

    path: str
    message: str


Check = Callable[[Any, str], Problem | None]
Checker = Callable[[Any], Problem | None]
"""A compiled schema: the first problem of a document, or None when it fits."""


def _where(path: str) -> str:
    return path or "the body"


def _is(value: Any, kind: str) -> bool:
    """Whether ``value`` (as ``orjson`` / ``json`` load it) is of JSON Schema type ``kind``."""
    kind_of_value = type(value)
    if kind == "number":
        return kind_of_value is int or kind_of_value is float
    if kind == "integer":
        return kind_of_value is int or (kind_of_value is float and value.is_integer())
    if kind == "string":
        return kind_of_value is str
    if kind == "boolean":
        return kind_of_value is bool
    if kind == "null":
        return value is None
    if kind == "array":
        return kind_of_value is list
    if kind == "object":
        return kind_of_value is dict
    raise ValueError(f"unknown JSON Schema type {kind!r}")


def _same(a: Any, b: Any) -> bool:
    """JSON equality of scalars: numbers by value (1 == 1.0), ``true`` is not 1."""
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if _is(a, "number") and _is(b, "number"):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _describe(schema: JsonSchema) -> str:
    """A few words for what ``schema`` takes, for error messages."""
    if "description" in schema:
        return str(schema["description"])
    if "enum" in schema:
        return "one of " + ", ".join(str(value) for value in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(_describe(alternative) for alternative in schema["anyOf"])
    kinds = schema.get("type")
    if kinds is None:
        return "a value of another form"
    words = [_TYPE_WORDS[kind] for kind in ([kinds] if isinstance(kinds, str) else kinds)]
    if "format" in schema:
        words[0] = f"{words[0]} ({schema['format']})"
    return " or ".join(words)


class _Compiler:
    def __init__(self, root: JsonSchema) -> None:
        self.definitions: dict[str, JsonSchema] = root.get("$defs", {})
        self.compiled: dict[str, Check] = {}

    def reference(self, ref: str) -> Check:
        prefix = "#/$defs/"
        if not ref.startswith(prefix) or ref[len(prefix) :] not in self.definitions:
            raise ValueError(f"unresolvable $ref {ref!r}")
        name = ref[len(prefix) :]

        def check(value: Any, path: str) -> Problem | None:
            return self.compiled[name](value, path)

        if name not in self.compiled:
            self.compiled[name] = check  # placeholder while compiling (recursive types)
            self.compiled[name] = self.compile(self.definitions[name])
        return check

    def compile(self, schema: JsonSchema) -> Check:
        checks: list[Check] = []
        unknown = set(schema) - _ANNOTATIONS - {
            "type", "enum", "minimum", "maximum", "pattern", "items", "properties",
            "required", "additionalProperties", "propertyNames", "anyOf", "allOf", "not", "$ref",
        }  # fmt: skip
        if unknown:
            raise ValueError(f"a schema keyword this checker does not know: {sorted(unknown)}")
        described = _describe(schema)
        if "$ref" in schema:
            checks.append(self.reference(schema["$ref"]))
        if "type" in schema:
            kinds = schema["type"]
            kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)

            def check_type(value: Any, path: str) -> Problem | None:
                if any(_is(value, kind) for kind in kinds):
                    return None
                return Problem(path, f"{_where(path)} must be {described}")

            checks.append(check_type)
        if "enum" in schema:
            allowed = tuple(schema["enum"])

            def check_enum(value: Any, path: str) -> Problem | None:
                if any(_same(value, option) for option in allowed):
                    return None
                return Problem(path, f"{_where(path)} must be {described}")

            checks.append(check_enum)
        if "minimum" in schema or "maximum" in schema:
            low, high = schema.get("minimum"), schema.get("maximum")

            def check_range(value: Any, path: str) -> Problem | None:
                if not _is(value, "number"):
                    return None
                if low is not None and value < low:
                    return Problem(path, f"{_where(path)} must be at least {low}")
                if high is not None and value > high:
                    return Problem(path, f"{_where(path)} must be at most {high}")
                return None

            checks.append(check_range)
        if "pattern" in schema:
            checks.append(self.pattern(schema["pattern"], described))
        if "items" in schema:
            item = self.compile(schema["items"])

            def check_items(value: Any, path: str) -> Problem | None:
                if type(value) is not list:
                    return None
                for i, element in enumerate(value):
                    problem = item(element, f"{path}[{i}]")
                    if problem is not None:
                        return problem
                return None

            checks.append(check_items)
        if "required" in schema:
            required = tuple(schema["required"])

            def check_required(value: Any, path: str) -> Problem | None:
                if type(value) is not dict:
                    return None
                for key in required:
                    if key not in value:
                        return Problem(_join(path, key), f"{_where(path)} needs {key!r}")
                return None

            checks.append(check_required)
        if any(key in schema for key in ("properties", "additionalProperties", "propertyNames")):
            checks.append(self.object(schema))
        if "anyOf" in schema:
            checks.append(self.any_of(schema["anyOf"], described))
        for part in schema.get("allOf", ()):
            checks.append(self.compile(part))
        if "not" in schema:
            forbidden = self.compile(schema["not"])
            says = schema["not"].get("description", "is of a form that is not allowed")

            def check_not(value: Any, path: str) -> Problem | None:
                if forbidden(value, path) is None:
                    return Problem(path, f"{_where(path)} {says}")
                return None

            checks.append(check_not)

        def check_all(value: Any, path: str) -> Problem | None:
            for check in checks:
                problem = check(value, path)
                if problem is not None:
                    return problem
            return None

        return checks[0] if len(checks) == 1 else check_all

    @staticmethod
    def pattern(pattern: str, described: str) -> Check:
        if not (pattern.startswith("^") and pattern.endswith("$")):
            raise ValueError(f"patterns must be anchored (^...$): {pattern!r}")
        whole = re.compile(pattern[1:-1])  # fullmatch: "$" is the end, not before a newline

        def check_pattern(value: Any, path: str) -> Problem | None:
            if type(value) is not str or whole.fullmatch(value):
                return None
            return Problem(path, f"{_where(path)} must be {described}")

        return check_pattern

    def object(self, schema: JsonSchema) -> Check:
        properties = {key: self.compile(sub) for key, sub in schema.get("properties", {}).items()}
        extra = schema.get("additionalProperties", True)
        other: Check | None = None if isinstance(extra, bool) else self.compile(extra)
        closed = extra is False
        names = self.compile(schema["propertyNames"]) if "propertyNames" in schema else None

        def check_object(value: Any, path: str) -> Problem | None:
            if type(value) is not dict:
                return None
            for key, item in value.items():
                where = _join(path, key)
                if names is not None and names(key, where) is not None:
                    return Problem(where, f"{where}: the key {key!r} is not of the key's form")
                known = properties.get(key)
                if known is not None:
                    problem = known(item, where)
                elif closed:
                    return Problem(where, f"{_where(path)} has no field named {key!r}")
                else:
                    problem = other(item, where) if other is not None else None
                if problem is not None:
                    return problem
            return None

        return check_object

    def any_of(self, alternatives: list[JsonSchema], described: str) -> Check:
        compiled = [(self.compile(sub), sub.get("type")) for sub in alternatives]

        def check_any(value: Any, path: str) -> Problem | None:
            problems = []
            for check, kinds in compiled:
                problem = check(value, path)
                if problem is None:
                    return None
                if kinds is not None and any(
                    _is(value, kind) for kind in ([kinds] if isinstance(kinds, str) else kinds)
                ):
                    problems.append(problem)  # the right type, a wrong value: the telling one
            if len(problems) == 1:
                return problems[0]
            return Problem(path, f"{_where(path)} must be {described}")

        return check_any


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def compile_schema(schema: JsonSchema) -> Checker:
    """Compile ``schema`` (with its ``$defs``) into a checker; ``ValueError`` for a keyword
    or a ``$ref`` it does not know."""
    check = _Compiler(schema).compile(schema)

    def checker(document: Any) -> Problem | None:
        return check(document, "")

    return checker
