"""Stable hashes of tool arguments and results, and the canonical JSON they are computed over.

The audit log stores a hash of what a tool received and returned, never the values, so a
reviewer can match a record against a value they hold without the log exposing it. The hash is
SHA-256 over the canonical JSON of the value: keys sorted, no whitespace, UTF-8.

NOTE: a hash of a low-entropy value (a city name, a yes/no flag) can be reversed by hashing
candidate values, so the hash hides a value only as well as the value resists guessing.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import enum
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any, cast

__all__ = ["canonical_json", "sha256_hex", "stable_hash"]

_ENCODER = json.JSONEncoder(
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=False,
    allow_nan=False,
)


def canonical_json(value: Any) -> str:
    """Encode a JSON value canonically: keys sorted, compact separators, non-ASCII kept as is.

    This is the encoding the audit hash chain is computed over. The value must already be
    plain JSON (dicts with string keys, lists, strings, numbers, booleans, None).

    Raises:
        TypeError: The value contains something JSON cannot represent.
        ValueError: The value contains NaN or an infinity.
    """
    return _ENCODER.encode(value)


def sha256_hex(text: str) -> str:
    """Return the SHA-256 of the UTF-8 encoding of a string, as 64 lowercase hex digits."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stable_hash(value: Any) -> str:
    """Hash any value to 64 hex digits that stay the same across processes and runs.

    Plain JSON values hash their canonical JSON. Other values are first converted to JSON:

    - pydantic models through `model_dump(mode="json")`, dataclasses field by field;
    - sets as sorted lists, bytes as ``{"$bytes": <base64>}``;
    - dates and times as ISO 8601, enums as their value;
    - mapping keys, NaN and infinities as strings.

    Anything else falls back to its `repr`. That is stable only when the type's `repr` is,
    and the default `object.__repr__` is not, because it contains a memory address.

    Distinct values can share a hash after this conversion: a tuple and a list with the same
    items, or a string and an object whose `repr` is that string.
    """
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError):
        try:
            text = _ENCODER.encode(_to_json(value))
        except RecursionError:
            # A container that contains itself; its repr marks the cycle with "...".
            text = repr(value)
    return sha256_hex(text)


def _to_json(value: Any) -> Any:
    """Convert a value to plain JSON for `stable_hash`, recursively."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        items = cast("Mapping[Any, Any]", value).items()
        return {_key_to_str(key): _to_json(item) for key, item in items}
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in cast("list[Any] | tuple[Any, ...]", value)]
    if isinstance(value, (set, frozenset)):
        members = [_to_json(item) for item in cast("set[Any] | frozenset[Any]", value)]
        return sorted(members, key=_ENCODER.encode)
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, enum.Enum):
        return _to_json(value.value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return _to_json(_dump_model(model_dump, value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _to_json(fields)
    return repr(value)


def _key_to_str(key: Any) -> str:
    if isinstance(key, str):
        return key
    converted = _to_json(key)
    return converted if isinstance(converted, str) else _ENCODER.encode(converted)


def _dump_model(model_dump: Any, value: Any) -> Any:
    """Call a pydantic-style `model_dump`, falling back to `repr` when it fails."""
    try:
        return model_dump(mode="json")
    except Exception:  # a broken or foreign model_dump: hash what repr shows instead
        return repr(value)
