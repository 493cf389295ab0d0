"""A fast encoder of audit records to canonical JSON lines.

`json.dumps(record, sort_keys=True, ...)` over a whole record costs several microseconds per
append. The record's top-level keys and its nested objects have fixed shapes, so this module
writes them in sorted key order by hand, escaping strings with the same function `json.dumps`
uses when `ensure_ascii` is false. Only nested attributes go through the general encoder. The
output must equal `canonical_json` of the same record, byte for byte: the tests compare the
two, and `verify_log` recomputes every hash with `canonical_json`.
"""

from __future__ import annotations

import json.encoder
from collections.abc import Callable, Mapping
from typing import Any

from agentlease.audit.hashing import canonical_json
from agentlease.audit.record import CredentialInfo, DecisionInfo, ErrorInfo, UsageInfo

__all__ = ["encode_attributes", "encode_record"]

# The string escaper of `json.dumps(..., ensure_ascii=False)`, in C when CPython has it.
_encode_string: Callable[[str], str] = json.encoder.encode_basestring


def encode_attributes(attributes: Mapping[str, Any]) -> str:
    """Encode a record's attributes as canonical JSON.

    Flat mappings of strings, integers, booleans and None, the usual case, are encoded here.
    Anything else, floats included, goes through `canonical_json`.

    Raises:
        TypeError: A key is not a string, or a value is not JSON.
        ValueError: A value is NaN or an infinity.
    """
    if not attributes:
        return "{}"
    parts: list[str] = []
    for key in sorted(attributes):
        value = attributes[key]
        if value is None:
            encoded = "null"
        elif value is True:
            encoded = "true"
        elif value is False:
            encoded = "false"
        elif type(value) is str:
            encoded = _encode_string(value)
        elif type(value) is int:
            encoded = int.__repr__(value)
        else:
            return canonical_json(attributes)
        if type(key) is not str:
            return canonical_json(attributes)
        parts.append(f"{_encode_string(key)}:{encoded}")
    return "{" + ",".join(parts) + "}"


def _text(value: str) -> str:
    return _encode_string(value)


def _optional_text(value: str | None) -> str:
    return "null" if value is None else _encode_string(value)


def _optional_int(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def _decision(value: DecisionInfo | None) -> str:
    if value is None:
        return "null"
    policy_ids = ",".join([_encode_string(policy_id) for policy_id in value.policy_ids])
    allowed = "true" if value.allowed else "false"
    return (
        f'{{"allowed":{allowed},"policy_ids":[{policy_ids}],'
        f'"reason":{_encode_string(value.reason)}}}'
    )


def _credential(value: CredentialInfo | None) -> str:
    if value is None:
        return "null"
    return (
        f'{{"aud":{_optional_text(value.aud)},"exp":{_optional_int(value.exp)},'
        f'"jti":{_optional_text(value.jti)},"kid":{_optional_text(value.kid)},'
        f'"mode":{_encode_string(value.mode)}}}'
    )


def _error(value: ErrorInfo | None) -> str:
    if value is None:
        return "null"
    return f'{{"message":{_encode_string(value.message)},"type":{_encode_string(value.type)}}}'


def _usage(value: UsageInfo | None) -> str:
    if value is None:
        return "null"
    return (
        f'{{"input_tokens":{int(value.input_tokens)},'
        f'"output_tokens":{int(value.output_tokens)},'
        f'"total_tokens":{int(value.total_tokens)}}}'
    )


def encode_record(fields: Mapping[str, Any], attributes_json: str) -> tuple[str, str]:
    """Encode a record without its hash, split where the `hash` key belongs.

    `fields` contains every `AuditRecord` field as the record stores it, and `attributes_json`
    is the canonical JSON of `fields["attributes"]`. Returns the keys before ``"hash"`` and
    the keys after it, each half without the comma that joins them, so the hashed body is
    ``head + "," + tail`` and the stored line is ``head + ',"hash":"<hash>",' + tail``.
    """
    head = (
        f'{{"action":{_text(fields["action"])},"actor":{_text(fields["actor"])},'
        f'"args_hash":{_optional_text(fields["args_hash"])},"attributes":{attributes_json},'
        f'"chain_id":{_text(fields["chain_id"])},'
        f'"credential":{_credential(fields["credential"])},'
        f'"decision":{_decision(fields["decision"])},"error":{_error(fields["error"])}'
    )
    tail = (
        f'"on_behalf_of":{_optional_text(fields["on_behalf_of"])},'
        f'"outcome":{_text(fields["outcome"])},'
        f'"parent_session_id":{_optional_text(fields["parent_session_id"])},'
        f'"prev_hash":{_text(fields["prev_hash"])},'
        f'"resource":{_optional_text(fields["resource"])},'
        f'"result_hash":{_optional_text(fields["result_hash"])},'
        f'"schema_version":{int(fields["schema_version"])},"seq":{int(fields["seq"])},'
        f'"session_id":{_text(fields["session_id"])},'
        f'"span_id":{_optional_text(fields["span_id"])},'
        f'"task_name":{_optional_text(fields["task_name"])},"time":{_text(fields["time"])},'
        f'"trace_id":{_optional_text(fields["trace_id"])},"usage":{_usage(fields["usage"])}}}'
    )
    return head, tail
