"""Convert request values to Cedar's JSON form, guided by the attributes a schema declares.

This module reads a Cedar schema in JSON format with the standard library only. The Cedar
engine module parses and validates the same schema with cedarpy before this module reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

__all__ = ["Attribute", "InvalidValue", "SchemaShape", "read_shape", "to_attributes"]

_LONG_MIN = -(2**63)
_LONG_MAX = 2**63 - 1

# Cedar's JSON schema names of the primitive types, with the matching Python type.
_PRIMITIVES: dict[str, tuple[str, type]] = {
    "String": ("a string", str),
    "Long": ("an integer", int),
    "Boolean": ("a boolean", bool),
    "Bool": ("a boolean", bool),
}


class InvalidValue(Exception):
    """A request value that cannot be sent to Cedar; the engine denies the request."""


@dataclass(frozen=True, slots=True)
class Attribute:
    """One declared attribute.

    Attributes:
        kind: The Cedar primitive type name, or ``""`` for sets, records, entities and
            extension types, which Cedar checks on its own.
        required: Whether the schema requires the attribute.
    """

    kind: str
    required: bool


@dataclass(frozen=True, slots=True)
class SchemaShape:
    """The attributes a schema declares.

    Attributes:
        entities: Attributes by entity type name, qualified with its namespace.
        contexts: Context attributes by action name, for actions of the empty namespace.
    """

    entities: Mapping[str, Mapping[str, Attribute]]
    contexts: Mapping[str, Mapping[str, Attribute]]


def _qualify(namespace: str, name: str) -> str:
    return f"{namespace}::{name}" if namespace else name


def _as_dict(value: Any) -> dict[str, Any]:
    return cast("dict[str, Any]", value) if isinstance(value, dict) else {}


class _ShapeReader:
    """Reads declared attributes out of a JSON schema document that Cedar accepted."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._document = document
        self._common: dict[str, dict[str, Any]] = {}
        for namespace, body in document.items():
            for name, definition in _as_dict(_as_dict(body).get("commonTypes")).items():
                self._common[_qualify(namespace, name)] = _as_dict(definition)

    def _resolve(self, type_: dict[str, Any], namespace: str) -> dict[str, Any]:
        """Follow references to common types; Cedar has already rejected reference cycles."""
        for _ in range(32):
            kind = type_.get("type")
            by_name = kind == "EntityOrCommon"
            if by_name:
                kind = type_.get("name")
            if not isinstance(kind, str):
                return type_
            common = self._common.get(_qualify(namespace, kind)) or self._common.get(kind)
            if common is None:
                if by_name:
                    return {"type": kind if kind in _PRIMITIVES else "Entity"}
                return type_
            type_ = common
        return type_

    def _attributes(self, type_: Any, namespace: str) -> dict[str, Attribute]:
        record = self._resolve(_as_dict(type_), namespace)
        declared: dict[str, Attribute] = {}
        for name, attribute in _as_dict(record.get("attributes")).items():
            definition = _as_dict(attribute)
            kind = self._resolve(definition, namespace).get("type")
            declared[name] = Attribute(
                kind=kind if isinstance(kind, str) and kind in _PRIMITIVES else "",
                required=definition.get("required", True) is not False,
            )
        return declared

    def read(self) -> SchemaShape:
        entities: dict[str, Mapping[str, Attribute]] = {}
        contexts: dict[str, Mapping[str, Attribute]] = {}
        for namespace, body in self._document.items():
            for name, definition in _as_dict(_as_dict(body).get("entityTypes")).items():
                shape = _as_dict(definition).get("shape")
                entities[_qualify(namespace, name)] = self._attributes(shape, namespace)
            if namespace:
                continue
            for name, definition in _as_dict(_as_dict(body).get("actions")).items():
                applies_to = _as_dict(_as_dict(definition).get("appliesTo"))
                contexts[name] = self._attributes(applies_to.get("context"), namespace)
        return SchemaShape(entities=entities, contexts=contexts)


def read_shape(document: Mapping[str, Any]) -> SchemaShape:
    """Read the declared entity and context attributes of a Cedar JSON schema document."""
    return _ShapeReader(document).read()


def _to_cedar(value: Any, where: str) -> Any:
    """Convert a nested value; ``None`` inside a record leaves the key out."""
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not _LONG_MIN <= value <= _LONG_MAX:
            raise InvalidValue(
                f"{where} is outside Cedar's 64-bit integer range; use a smaller number."
            )
        return int(value)
    if isinstance(value, Mapping):
        record: dict[str, Any] = {}
        items = cast("Mapping[Any, Any]", value)
        for key, item in items.items():
            if not isinstance(key, str):
                raise InvalidValue(f"{where} has a key of type {type(key).__name__}; use strings.")
            if item is not None:
                record[key] = _to_cedar(item, f"{where}.{key}")
        return record
    if isinstance(value, (list, tuple, set, frozenset)):
        members = cast("Iterable[Any]", value)
        return [_to_cedar(item, f"{where}[]") for item in members]
    raise InvalidValue(
        f"{where} has type {type(value).__name__}, which Cedar cannot represent; "
        "use a string, integer, boolean, list or mapping."
    )


def _check_kind(value: Any, kind: str, label: str) -> None:
    expected = _PRIMITIVES.get(kind)
    if expected is None:
        return
    noun, python_type = expected
    bool_for_integer = python_type is int and isinstance(value, bool)
    if bool_for_integer or not isinstance(value, python_type):
        raise InvalidValue(
            f"{label} must be {noun} but has type {type(value).__name__}; "
            "pass the type the schema declares."
        )


def to_attributes(
    values: Mapping[str, Any], declared: Mapping[str, Attribute] | None, where: str
) -> dict[str, Any]:
    """Convert the top-level attributes of an entity or a context.

    With ``declared`` (the schema declares the entity type or action), undeclared keys are
    dropped, a ``None`` becomes ``""`` for a ``String`` and is left out otherwise, primitive
    types are checked, and a missing required attribute is an error. Without it, every key is
    converted and Cedar checks the result against the schema.

    Raises:
        InvalidValue: A value has the wrong type or cannot be represented, or a required
            attribute is missing. The message names the attribute, never its value.
    """
    attributes: dict[str, Any] = {}
    for name, value in values.items():
        label = f"{where} attribute {name!r}"
        if not isinstance(name, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise InvalidValue(f"{label} has a name of type {type(name).__name__}; use strings.")

        attribute = None
        if declared is not None:
            attribute = declared.get(name)
            if attribute is None:
                continue

        if value is None:
            if attribute is not None and attribute.kind == "String":
                attributes[name] = ""
            continue

        if attribute is not None:
            _check_kind(value, attribute.kind, label)
        attributes[name] = _to_cedar(value, label)

    if declared is not None:
        for name, attribute in declared.items():
            if attribute.required and name not in attributes:
                raise InvalidValue(
                    f"{where} lacks the attribute {name!r} that the schema requires; set it."
                )
    return attributes
