"""The one reader of user documents: scenario and sweep files (YAML) and template files (JSON).

A document is refused, as one `InputError` naming the file (and the line where there is one),
before it can cost much: larger than `MAX_DOCUMENT_BYTES`, not UTF-8, nested deeper than
`MAX_DEPTH`, or expanding (YAML aliases counted at their full size) to more than `MAX_NODES`
values. A key written twice in one mapping is an error, not "the last one wins". YAML is read
safely (no Python tags); numbers are decimal: `1e-9` and `1_000` are numbers, and `010`,
`0x10` and `12:30` are strings, not 8, 16 and 750 (YAML 1.1's octal, hex and base 60).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lsched.errors import InputError

MAX_DOCUMENT_BYTES = 256 << 10
"""Largest scenario or sweep file read: 256 KiB, about 100 times the largest bundled one (3 kB).
PyYAML builds about 0.4 MB of dense YAML a second here, so this keeps `validate` within about a
second on any file; a larger one is refused unread."""
MAX_TEMPLATE_FILE_BYTES = 16 << 20
"""Largest template file read (16 MiB; the bundled TPC-DS file is under 200 kB)."""
MAX_DEPTH = 64
"""Deepest nesting of lists and mappings (the bundled files nest 6 deep)."""
MAX_NODES = 1_000_000
"""Most values a document may hold once YAML aliases are expanded (a bundled template file
holds under 20,000, and a 1 MB file cannot hold 1,000,000 without aliases): an alias bomb is
refused before it is built."""

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # type: ignore[assignment]
_INT_TAG, _FLOAT_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_DIGITS = r"[0-9](?:_?[0-9])*"
"""Digits, an underscore allowed between two (`1_000`), not at either end."""
_INT = re.compile(r"^[-+]?(?:0|[1-9](?:_?[0-9])*)$")
"""Integers are decimals (`1_000` too, as YAML 1.1 reads it). YAML 1.1 also reads `010` as 8,
`0x10` as 16 and `1:30` as 90 (base 60), so `time_of_day: 12:30` was 750 seconds, not half
past noon: those stay strings, which a number field refuses and a time of day reads as what it
says. (Stricter than YAML 1.2, which reads `0x10` as 16 and `0o10` as 8.)"""
_FLOAT = re.compile(
    rf"""^(?:[-+]?(?:{_DIGITS}\.(?:{_DIGITS})?|\.{_DIGITS})(?:[eE][-+]?[0-9]+)?"""
    rf"""|[-+]?{_DIGITS}[eE][-+]?[0-9]+"""
    r"""|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"""
)
"""Floats as YAML 1.2 writes them, `1e9` and `5e-3` too (YAML 1.1 read them as strings), and
`1_000.5` as YAML 1.1 did; no base-60 `1:30.5`."""


class _StrictLoader(_Loader):  # type: ignore[misc, valid-type]
    """Safe loading that refuses a key repeated within one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: SafeConstructor names the problem
                continue
            if duplicate:
                mark = key_node.start_mark
                raise _Refused(f"line {mark.line + 1}", f"duplicate key {key!r}")
        return super().construct_mapping(node, deep=deep)


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(_INT_TAG, _INT, list("-+0123456789"))
_StrictLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))


class _Refused(Exception):
    """A document refused before or while it is built: where, and why."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem


def read_text(
    path: str | Path,
    *,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    error: type[InputError] = InputError,
    source: str | None = None,
    knob: str = "MAX_DOCUMENT_BYTES",
) -> str:
    """The file's text, refused (as `error`) when missing, too large or not UTF-8."""
    source = str(path) if source is None else source
    if Path(path).exists() and not Path(path).is_file():  # a pipe would block the open
        raise error(source, "", "not a regular file (a device, pipe or folder)")
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as problem:
        raise error(source, "", problem.strerror or str(problem)) from None
    if len(data) > max_bytes:
        raise error(
            source,
            "",
            f"larger than {max_bytes} bytes (lsched.documents.{knob})",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise error(
            source, "", f"not a UTF-8 text file (byte {problem.start} is not UTF-8)"
        ) from None


def parse_yaml(text: str, source: str, error: type[InputError] = InputError) -> Any:
    """The YAML document in `text`, within the depth and size limits, keys unique."""
    try:
        aliases = "*" in text or "&" in text  # or an asterisk in a string: counted all the same
        if aliases:
            _check_shape(text)  # depth and expanded size, before anything is built
        document = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no Python tags
    except _Refused as problem:
        raise error(source, problem.where, problem.problem) from None
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        detail = getattr(problem, "problem", None) or str(problem)
        raise error(source, where, f"invalid YAML: {detail}") from None
    except RecursionError:
        raise error(source, "", f"nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, OverflowError) as problem:  # a value its constructor cannot build
        raise error(source, "", f"invalid YAML value ({problem})") from None
    problem = "" if aliases else _tree_problem(document)
    if problem:
        raise error(source, "", problem)
    return document


def _tree_problem(document: Any) -> str:
    """Depth beyond MAX_DEPTH, walked without recursion (a file without aliases cannot hold
    more than MAX_NODES values: its size bounds them)."""
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels (lsched.documents.MAX_DEPTH)"
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return ""


def _check_shape(text: str) -> None:
    """Walk the parse events (no objects built): depth and expanded size within limits."""
    depth = 0
    total = 0
    anchors: dict[str, int] = {}
    open_counts: list[tuple[str | None, int]] = []
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            size = anchors.get(event.anchor or "", 1)
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor:
                anchors[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise _Refused(
                    f"line {mark.line + 1}",
                    f"nested deeper than {MAX_DEPTH} levels (lsched.documents.MAX_DEPTH)",
                )
            open_counts.append((event.anchor, total))
            total += 1
            continue
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            anchor, started = open_counts.pop()
            if anchor:
                anchors[anchor] = total - started
            continue
        else:
            continue
        total += size
        if total > MAX_NODES:
            mark = event.start_mark
            raise _Refused(
                f"line {mark.line + 1}",
                f"more than {MAX_NODES} values once aliases are expanded "
                "(lsched.documents.MAX_NODES)",
            )


def parse_json(text: str, source: str, error: type[InputError] = InputError) -> Any:
    """The JSON document in `text`, within the depth and size limits, keys unique."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise _Refused(key, "duplicate key")
            out[key] = value
        return out

    problem = _json_shape_problem(text)
    if problem:
        raise error(source, "", problem)
    try:
        return json.loads(text, object_pairs_hook=unique, parse_constant=_no_constant)
    except _Refused as duplicate:
        raise error(source, duplicate.where, duplicate.problem) from None
    except json.JSONDecodeError as bad:
        raise error(source, f"line {bad.lineno}", f"invalid JSON: {bad.msg}") from None
    except ValueError as bad:  # NaN or Infinity
        raise error(source, "", f"invalid JSON: {bad}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_shape_problem(text: str) -> str:
    """Depth and count of JSON values, from the brackets and separators outside strings."""
    depth = 0
    values = 0
    in_string = False
    escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            values += 1
            if depth > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels (lsched.documents.MAX_DEPTH)"
        elif char in "]}":
            depth -= 1
        elif char == ",":
            values += 1
            if values > MAX_NODES:
                return f"more than {MAX_NODES} values (lsched.documents.MAX_NODES)"
    return ""


Loc = tuple[str | int, ...]


def closest_hint(name: str, allowed: Sequence[str]) -> str:
    """ "did you mean 'x'? " for the allowed name closest to a misspelt one, else ""."""
    close = difflib.get_close_matches(name, allowed, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def unknown_key_message(key: str, allowed: Sequence[str]) -> str:
    """'unknown key', with the keys allowed there and the closest one (a misspelling)."""
    if not allowed:
        return "unknown key"
    return f"unknown key ({closest_hint(key, allowed)}allowed: {', '.join(allowed)})"


def validation_problem(
    error: ValidationError,
    *,
    where: Callable[[Loc], str],
    unknown_key: Callable[[Loc], str] = lambda loc: "unknown key",
) -> tuple[str, str]:
    """The first problem pydantic found in a document, as (field path, one-line problem).

    `where` spells a loc as the user wrote it; `unknown_key` explains a key the schema lacks.
    A misspelt key also makes the key it should have been "missing": the misspelling is named.
    """
    problems = error.errors(include_url=False)
    first = min(problems, key=lambda p: p["type"] != "extra_forbidden")
    path = where(first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    kind = first["type"]
    if kind == "extra_forbidden":
        message = unknown_key(first["loc"])
    elif kind == "missing":
        message = "required key is missing"
    elif not isinstance(first.get("input"), dict | list):
        message += f" (got {first.get('input')!r})"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem{'s' * (len(problems) > 2)})"
    return path, message


def setting_value(text: str) -> Any:
    """The VALUE of a command line's `--set KEY=VALUE` (`lsched run` and `lsched train` alike):
    JSON where it parses (3, 0.5, [1, 2], true), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def load_mapping(
    path: str | Path,
    *,
    error: type[InputError] = InputError,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    parse: Callable[[str, str, type[InputError]], Any] = parse_yaml,
) -> dict[str, Any]:
    """Read and parse a document whose top level must be a mapping of sections."""
    source = str(path)
    document = parse(read_text(path, max_bytes=max_bytes, error=error), source, error)
    if not isinstance(document, dict):
        kind = "an empty file" if document is None else f"a {type(document).__name__}"
        raise error(source, "", f"expected a mapping of sections, got {kind}")
    return document


__all__ = [
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_NODES",
    "MAX_TEMPLATE_FILE_BYTES",
    "load_mapping",
    "parse_json",
    "parse_yaml",
    "read_text",
    "setting_value",
    "validation_problem",
]
