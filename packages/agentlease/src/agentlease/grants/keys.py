"""The ES256 signing key of a local broker, and RFC 7638 JWK thumbprints."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from agentlease.errors import ConfigurationError

__all__ = ["SigningKey", "jwk_thumbprint"]

logger = logging.getLogger(__name__)

# RFC 7638 section 3.2: the members that identify a key, per key type.
_THUMBPRINT_MEMBERS: dict[str, tuple[str, ...]] = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
    "oct": ("k", "kty"),
}
_P256_COORDINATE_BYTES = 32
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _is_p256_private_key(key: object) -> TypeGuard[ec.EllipticCurvePrivateKey]:
    return isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """Compute the RFC 7638 SHA-256 thumbprint of a JWK, base64url-encoded.

    Only the members that identify the key take part, so ``kid``, ``alg`` and ``use`` do not
    change the thumbprint.

    Raises:
        ConfigurationError: The key type is unknown, or a required member is missing or not a
            string.
    """
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise ConfigurationError(
            f"Cannot compute a thumbprint for key type {kty!r}; use an EC, OKP, RSA or oct JWK."
        )

    canonical: dict[str, str] = {}
    for name in members:
        value = jwk.get(name)
        if not isinstance(value, str) or not value:
            raise ConfigurationError(
                f"The {kty} JWK has no valid {name!r} member; "
                f"a {kty} JWK needs {', '.join(members)}."
            )
        canonical[name] = value

    text = json.dumps(canonical, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return _b64url(hashlib.sha256(text.encode("utf-8")).digest())


class SigningKey:
    """An ES256 (ECDSA on P-256 with SHA-256) private key that signs grants.

    The key id is the RFC 7638 thumbprint of the public key, so every process that loads the
    same key file publishes the same ``kid``. `repr` shows the key id only.

    Example:
        >>> key = SigningKey.generate()
        >>> key.public_jwk()["kid"] == key.key_id
        True
    """

    __slots__ = ("_key_id", "_private_key", "_public_jwk", "_public_key")

    algorithm = "ES256"

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        """Wrap a P-256 private key.

        Raises:
            ConfigurationError: The key is not an elliptic curve private key on P-256.
        """
        if not _is_p256_private_key(private_key):
            raise ConfigurationError(
                "SigningKey needs an elliptic curve private key on P-256 (secp256r1); "
                "create one with SigningKey.generate()."
            )
        self._private_key = private_key
        self._public_key = private_key.public_key()

        numbers = self._public_key.public_numbers()
        jwk = {
            "crv": "P-256",
            "kty": "EC",
            "x": _b64url(numbers.x.to_bytes(_P256_COORDINATE_BYTES, "big")),
            "y": _b64url(numbers.y.to_bytes(_P256_COORDINATE_BYTES, "big")),
        }
        self._key_id = jwk_thumbprint(jwk)
        self._public_jwk: dict[str, str] = {
            **jwk,
            "kid": self._key_id,
            "alg": self.algorithm,
            "use": "sig",
        }

    @classmethod
    def generate(cls) -> SigningKey:
        """Generate a new random P-256 key."""
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SigningKey:
        """Load a key from an unencrypted PEM file (PKCS #8 or SEC 1).

        A file that other users can read is loaded, and a warning is logged.

        Raises:
            ConfigurationError: The file is missing or unreadable, or it does not contain an
                unencrypted P-256 private key.
        """
        file = Path(path)
        try:
            data = file.read_bytes()
            mode = file.stat().st_mode
        except FileNotFoundError:
            raise ConfigurationError(
                f"Signing key file {str(file)!r} not found; create it with "
                "SigningKey.generate().save(path), or give LocalBroker a key_file to create."
            ) from None
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot read signing key file {str(file)!r} ({exc.strerror}); "
                "check that it exists and is readable by this process."
            ) from None

        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            logger.warning(
                "Signing key file %s can be read by other users (mode %03o); "
                "restrict it with chmod 600.",
                file,
                stat.S_IMODE(mode),
            )

        try:
            private_key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ConfigurationError(
                f"Signing key file {str(file)!r} does not contain an unencrypted PEM private "
                "key; replace it with one written by SigningKey.save()."
            ) from None
        if not _is_p256_private_key(private_key):
            raise ConfigurationError(
                f"Signing key file {str(file)!r} contains a {type(private_key).__name__}, "
                "not a P-256 key; replace it with one written by SigningKey.save()."
            )
        return cls(private_key)

    def save(self, path: str | os.PathLike[str], *, exist_ok: bool = True) -> None:
        """Write the key as an unencrypted PKCS #8 PEM file with mode 0600.

        Missing parent directories are created with mode 0700. The file is written to a
        temporary name and then moved into place, so a concurrent reader never sees a partial
        key.

        Args:
            path: The file to write.
            exist_ok: Whether to replace an existing file. With False, an existing file is
                kept and `FileExistsError` is raised, so two processes that start at once
                agree on the key that was written first.

        Raises:
            FileExistsError: `exist_ok` is False and the file exists.
        """
        target = Path(path)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        pem = self._private_key.private_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        )

        # mkstemp creates the file with mode 0600, so the key is never readable by others.
        descriptor, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(pem)
                file.flush()
                os.fsync(file.fileno())
            if exist_ok:
                os.replace(temporary, target)
            else:
                # A hard link fails when the target exists, unlike a rename.
                os.link(temporary, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)

    @property
    def key_id(self) -> str:
        """The RFC 7638 thumbprint of the public key, used as ``kid``."""
        return self._key_id

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The public half of the key."""
        return self._public_key

    def public_jwk(self) -> dict[str, str]:
        """Return the public key as a JWK with ``kid``, ``alg`` and ``use``."""
        return dict(self._public_jwk)

    def sign(self, message: bytes) -> bytes:
        """Sign a message with ECDSA P-256 and SHA-256.

        Returns:
            The 64-byte JWS signature: r and s as 32-byte big-endian integers (RFC 7518
            section 3.4), not the DER encoding that `cryptography` returns.
        """
        der = self._private_key.sign(message, _ECDSA_SHA256)
        r, s = decode_dss_signature(der)
        return r.to_bytes(_P256_COORDINATE_BYTES, "big") + s.to_bytes(_P256_COORDINATE_BYTES, "big")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SigningKey):
            return NotImplemented
        return self._key_id == other._key_id

    def __hash__(self) -> int:
        return hash(self._key_id)

    def __repr__(self) -> str:
        return f"SigningKey(kid={self._key_id!r})"
