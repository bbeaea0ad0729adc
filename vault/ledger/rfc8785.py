"""RFC 8785 JSON Canonicalization Scheme (JCS), for the values custody events hold.

The custody entry (format v1, :mod:`vault.ledger.custody`) is the JCS text of the entry object:
keys sorted by their UTF-16 code units, no insignificant whitespace, UTF-8, strings escaped as
ECMAScript's ``JSON.stringify`` does (section 3.2.2.2). Numbers are where JCS is hard
(section 3.2.2.3 serialises IEEE 754 doubles); custody events hold none, so this module admits
only integers within +/-(2**53-1) (I-JSON, RFC 7493 section 2.2), whose text is unambiguous,
and refuses floats, NaN and the infinities. Nesting is bounded (:data:`MAX_JSON_DEPTH`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from json.encoder import encode_basestring as _json_string
from typing import Any

from vault.errors import InvalidInput

MAX_SAFE_INTEGER = 2**53 - 1  # RFC 8785 / I-JSON: integers a double holds exactly
MAX_JSON_DEPTH = 32


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON of ``value``: keys sorted by UTF-16 code units, no whitespace.

    Only null, booleans, integers within +/-(2**53-1), strings, lists and string-keyed maps are
    allowed: floats have no single canonical text, so they are refused. Raises InvalidInput.
    """
    return canonical_plain(json_copy(value))


def json_copy(value: Any, depth: int = 0) -> Any:
    """A plain copy of ``value`` (dicts, lists, str, int, bool, None) fit for canonical JSON.

    Raises InvalidInput for floats, unsafe integers, non-string keys and other types.
    """
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return value
    if kind is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return value
        raise InvalidInput("integers in custody events must lie within +/-(2**53-1); use a string")
    if depth >= MAX_JSON_DEPTH:
        raise InvalidInput(f"custody JSON nests deeper than {MAX_JSON_DEPTH}")
    if isinstance(value, Mapping):
        copy: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput("custody JSON object keys must be strings")
            copy[str.__str__(key)] = json_copy(item, depth + 1)
        return copy
    if isinstance(value, list | tuple):
        return [json_copy(item, depth + 1) for item in value]
    if isinstance(value, float):
        raise InvalidInput("floats are not allowed in custody events; use a string or integer")
    if isinstance(value, str):  # a str subclass such as a str-valued Enum: its text
        return str.__str__(value)
    if isinstance(value, int):  # an int subclass (IntEnum): its number
        return json_copy(int(value), depth)
    raise InvalidInput(f"a {kind.__name__} cannot go into a custody event")


_dumps = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
).encode


def canonical_plain(plain: Any) -> bytes:
    # ``plain`` holds only JSON types (json_copy or json.loads made it). The C encoder sorts
    # keys by code point, which is JCS's UTF-16 order whenever all text is ASCII; otherwise
    # fall back to the exact (slower) JCS writer.
    text_ = _dumps(plain)
    if not text_.isascii():
        text_ = _jcs(plain)
    try:
        return text_.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("custody JSON text must be valid Unicode (no lone surrogates)") from None


def _jcs(value: Any) -> str:
    if isinstance(value, dict):
        keys = sorted(value, key=_utf16)  # JCS orders keys by UTF-16 code units
        return "{" + ",".join(_json_string(k) + ":" + _jcs(value[k]) for k in keys) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_jcs(v) for v in value) + "]"
    return _dumps(value)


def _utf16(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _refuse_float(text_: str) -> Any:
    raise InvalidInput(f"non-integer number {text_}")


def _safe_int(text_: str) -> int:
    value = int(text_)
    if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise InvalidInput(f"integer {text_} is beyond +/-(2**53-1)")
    return value


DECODER = json.JSONDecoder(
    parse_float=_refuse_float, parse_constant=_refuse_float, parse_int=_safe_int
)


__all__ = ["DECODER", "MAX_JSON_DEPTH", "MAX_SAFE_INTEGER", "canonical_json", "canonical_plain",
           "json_copy"]
