"""Identity sources: a development identity, and an OIDC token file that rotates."""

from __future__ import annotations

import getpass
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentlease.errors import ConfigurationError, GrantError, IdentityError
from agentlease.grants._jwt import decode_identity_token
from agentlease.identity.model import WorkloadIdentity

__all__ = ["DevelopmentIdentity", "OIDCTokenFile"]

_SPIFFE_ID = re.compile(r"^spiffe://[a-z0-9._-]+(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*$")
_MAX_IDENTITY_TOKEN_BYTES = 16 * 1024


def _default_spiffe_id() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    safe = re.sub(r"[^A-Za-z0-9._-]", "-", user) or "unknown"
    return f"spiffe://agentlease.local/dev/{safe}"


class DevelopmentIdentity:
    """A self-asserted SPIFFE identity for development and notebooks.

    It is marked unverified, so a production policy can refuse it with
    ``forbid (...) unless { principal.verified }``.

    Example:
        >>> DevelopmentIdentity("spiffe://example.org/agent/research").get().verified
        False
    """

    def __init__(self, spiffe_id: str | None = None) -> None:
        spiffe_id = spiffe_id or _default_spiffe_id()
        if not _SPIFFE_ID.match(spiffe_id):
            raise ConfigurationError(
                f"Invalid SPIFFE ID {spiffe_id!r}; use the form spiffe://trust-domain/path."
            )
        self._identity = WorkloadIdentity(
            id=spiffe_id, subject=spiffe_id, verified=False, source="development"
        )

    def get(self) -> WorkloadIdentity:
        """Return the development identity."""
        return self._identity

    def __repr__(self) -> str:
        return f"DevelopmentIdentity({self._identity.id!r})"


class OIDCTokenFile:
    """An identity read from an OIDC token file, such as a Kubernetes projected token.

    The file is read again whenever its modification time or size changes, so a rotated token
    is picked up by the next task. With `jwks`, the token's signature, issuer and audience are
    verified and the identity is marked verified; without it, the claims are only parsed and
    the identity is unverified.

    Args:
        path: The token file.
        jwks: The issuer's JSON Web Key Set, used to verify the token.
        issuer: The expected ``iss``; required with `jwks`.
        audience: The expected ``aud``; required with `jwks`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        jwks: Mapping[str, Any] | None = None,
        issuer: str | None = None,
        audience: str | None = None,
    ) -> None:
        if jwks is not None and (issuer is None or audience is None):
            raise ConfigurationError(
                "OIDCTokenFile with jwks also needs issuer and audience; "
                "set both so the token can be verified."
            )
        self._path = Path(path)
        self._jwks = jwks
        self._issuer = issuer
        self._audience = audience
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._identity: WorkloadIdentity | None = None

    def get(self) -> WorkloadIdentity:
        """Return the identity in the file, reading it again if the file changed.

        Raises:
            IdentityError: The file is missing or its token is invalid.
        """
        try:
            stat = self._path.stat()
        except OSError as exc:
            raise IdentityError(
                f"Cannot read the OIDC token file {str(self._path)!r} ({exc.strerror}); "
                "check that the path exists and is readable."
            ) from None

        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if self._identity is not None and stamp == self._stamp:
                return self._identity
            identity = self._load()
            self._identity = identity
            self._stamp = stamp
            return identity

    def _load(self) -> WorkloadIdentity:
        token = self._path.read_text(encoding="utf-8").strip()
        try:
            claims = decode_identity_token(
                token,
                keys=self._jwks,
                issuer=self._issuer,
                audience=self._audience,
                max_bytes=_MAX_IDENTITY_TOKEN_BYTES,
            )
        except GrantError as exc:
            raise IdentityError(
                f"The token in {str(self._path)!r} is invalid ({exc.reason}); "
                "check that the file holds a current token from the expected issuer."
            ) from None

        issuer = claims.get("iss")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise IdentityError(
                f"The token in {str(self._path)!r} has no 'sub' claim; "
                "an identity token must name its subject."
            )
        issuer_text = issuer if isinstance(issuer, str) else None
        identity_id = subject if subject.startswith("spiffe://") else f"{issuer_text}#{subject}"
        return WorkloadIdentity(
            id=identity_id,
            subject=subject,
            issuer=issuer_text,
            verified=self._jwks is not None,
            source="oidc-file",
            claims=dict(claims),
            credential=token,
        )

    def __repr__(self) -> str:
        return f"OIDCTokenFile({str(self._path)!r}, verified={self._jwks is not None})"
