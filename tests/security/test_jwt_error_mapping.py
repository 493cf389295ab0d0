"""PyJWT stays behind one module, and every error it can raise becomes a GrantError there."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import jwt
import jwt.exceptions
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agentlease.errors import GrantError, GrantExpired, GrantInvalid
from agentlease.grants import _jwt

PACKAGES = Path(__file__).resolve().parents[2] / "packages"
PYJWT_EXCEPTIONS = [
    cls
    for _, cls in inspect.getmembers(jwt.exceptions, inspect.isclass)
    if issubclass(cls, jwt.exceptions.PyJWTError)
]


def make_exception(cls: type[Exception]) -> Exception:
    if issubclass(cls, jwt.exceptions.MissingRequiredClaimError):
        return cls("exp")
    return cls("PyJWT detail that may quote key material")


def test_pyjwt_exception_walk_finds_classes() -> None:
    assert jwt.exceptions.PyJWTError in PYJWT_EXCEPTIONS
    assert len(PYJWT_EXCEPTIONS) >= 15


def test_every_pyjwt_exception_is_mapped() -> None:
    # An explicit entry per class, so a class added by a PyJWT upgrade fails here until
    # someone decides its reason code.
    unmapped = [cls.__name__ for cls in PYJWT_EXCEPTIONS if cls not in _jwt.PYJWT_ERRORS]

    assert unmapped == []


@pytest.mark.parametrize("cls", PYJWT_EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_translate_error_uses_table_entry(cls: type[Exception]) -> None:
    error_class, reason, _ = _jwt.PYJWT_ERRORS[cls]

    translated = _jwt.translate_error(make_exception(cls))

    assert type(translated) is error_class
    assert translated.reason == reason


@pytest.mark.parametrize("cls", PYJWT_EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_translate_error_drops_pyjwt_message(cls: type[Exception]) -> None:
    translated = _jwt.translate_error(make_exception(cls))

    assert "key material" not in str(translated)


def test_translate_error_maps_expiry_to_grant_expired() -> None:
    translated = _jwt.translate_error(jwt.exceptions.ExpiredSignatureError("expired"))

    assert isinstance(translated, GrantExpired)


def test_translate_error_names_missing_claim() -> None:
    translated = _jwt.translate_error(jwt.exceptions.MissingRequiredClaimError("task_id"))

    assert "'task_id'" in str(translated)


def test_translate_error_maps_unknown_subclass_by_base() -> None:
    class FutureSignatureError(jwt.exceptions.InvalidSignatureError):
        pass

    translated = _jwt.translate_error(FutureSignatureError("new in a later PyJWT"))

    assert translated.reason == "bad_signature"


def test_translate_error_maps_type_error_from_key_mismatch() -> None:
    # PyJWT raises TypeError, not one of its own exceptions, when an EC token is checked
    # against an RSA key.
    ec_token = jwt.encode({"sub": "x"}, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    rsa_public_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    with pytest.raises(TypeError) as caught:
        jwt.decode(ec_token, rsa_public_key, algorithms=["ES256"])

    translated = _jwt.translate_error(caught.value)

    assert isinstance(translated, GrantInvalid)
    assert translated.reason == "wrong_key_type"


def test_verification_key_translates_mismatched_key() -> None:
    # Built directly, bypassing the checks that bind a key to its algorithm.
    rsa_public_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    key = _jwt.VerificationKey("k1", "ES256", rsa_public_key)

    with pytest.raises(GrantError) as caught:
        key.verify(b"header.payload", b"\x01" * 64)

    assert caught.value.reason == "wrong_key_type"


def test_translate_error_falls_back_for_other_exceptions() -> None:
    translated = _jwt.translate_error(RuntimeError("unexpected"))

    assert translated.reason == "invalid"


def imports_pyjwt(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            alias.name == "jwt" or alias.name.startswith("jwt.") for alias in node.names
        ):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module is not None
            and (node.module == "jwt" or node.module.startswith("jwt."))
        ):
            return True
    return False


def test_pyjwt_imported_only_in_jwt_module() -> None:
    importers = sorted(
        path.relative_to(PACKAGES).as_posix()
        for path in PACKAGES.glob("*/src/**/*.py")
        if imports_pyjwt(path)
    )

    assert importers == ["agentlease/src/agentlease/grants/_jwt.py"]
