"""The trust bundles and client identities an inventory names, each file loaded once.

Thousands of targets usually share one CA bundle and one identity: every distinct
file is parsed once, and targets that name the same identity share one
:class:`ClientIdentity` object (and trust bundle tuple), so a target costs a few
hundred bytes however big its certificates are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from mtls_audit.scanner.credentials.files import (
    CredentialError,
    SigningKey,
    load_certificates,
    load_private_key,
    make_client_credential,
)
from mtls_audit.scanner.inventory.errors import FieldError
from mtls_audit.scanner.inventory.fields import password_from_env, password_hint
from mtls_audit.scanner.inventory.keys import IDENTITY_KEYS, unknown_key
from mtls_audit.scanner.model.target import ClientIdentity
from mtls_audit.scanner.model.text import describe, type_name


@dataclass(frozen=True, slots=True)
class Trust:
    path: Path
    anchors: tuple[x509.Certificate, ...]


class CredentialCache:
    """Loads ``trust`` and ``identity`` settings, with paths relative to ``base_dir``."""

    def __init__(self, base_dir: Path, environ: Mapping[str, str]) -> None:
        self.base_dir = base_dir
        self.environ = environ
        self._certificates: dict[Path, tuple[x509.Certificate, ...]] = {}
        self._keys: dict[tuple[Path, bytes | None], SigningKey] = {}
        self._identities: dict[tuple[Path, Path, bytes | None], ClientIdentity] = {}
        # The same setting written the same way on many targets: skip resolving paths.
        self._trust_by_setting: dict[str, Trust] = {}
        self._identity_by_setting: dict[tuple[Any, Any, Any], ClientIdentity] = {}

    def trust(self, value: Any) -> Trust:
        if isinstance(value, str) and value in self._trust_by_setting:
            return self._trust_by_setting[value]
        path, anchors = self._certificates_at(value, "trust")
        trust = Trust(path=path, anchors=anchors)
        self._trust_by_setting[value] = trust
        return trust

    def identity(self, value: Any) -> ClientIdentity | None:
        if value is None:
            return None  # an explicit "no identity": the scanner presents only impostors
        if not isinstance(value, dict):
            raise FieldError("identity", f"must be a mapping with cert and key, got {type_name(value)}")
        for key in value:
            if key not in IDENTITY_KEYS:
                reason, expected = unknown_key(key, IDENTITY_KEYS)
                raise FieldError("identity", f"{reason} {expected}")
        for needed, other in (("cert", "key"), ("key", "cert")):
            if needed not in value:
                raise FieldError(
                    f"identity.{needed}",
                    "missing: an identity needs both cert and key"
                    + (f" (only {other} is set)" if other in value else ""),
                )
        setting = (value["cert"], value["key"], value.get("password_env"))
        if all(isinstance(part, str | None) for part in setting) and setting in self._identity_by_setting:
            return self._identity_by_setting[setting]
        identity = self._load_identity(value)
        if all(isinstance(part, str | None) for part in setting):
            self._identity_by_setting[setting] = identity
        return identity

    def _load_identity(self, value: dict[Any, Any]) -> ClientIdentity:
        password = None
        password_env = value.get("password_env")
        if password_env is not None:
            try:
                password = password_from_env(password_env, self.environ)
            except ValueError as error:
                raise FieldError("identity.password_env", str(error)) from None

        cert_path, certificates = self._certificates_at(value["cert"], "identity.cert")
        key_display, key_path = self._resolve(value["key"], "identity.key")
        cache_key = (cert_path.resolve(), key_path.resolve(), password)
        if cache_key in self._identities:
            return self._identities[cache_key]

        key_cache = (key_path.resolve(), password)
        try:
            if key_cache not in self._keys:
                self._keys[key_cache] = load_private_key(key_path, password, display=key_display)
            credential = make_client_credential(
                certificates,
                self._keys[key_cache],
                cert_display=value["cert"],
                key_display=key_display,
            )
        except CredentialError as error:
            raise FieldError("identity.key", password_hint(str(error), "password_env")) from None
        identity = ClientIdentity(credential=credential, cert_path=cert_path, key_path=key_path)
        self._identities[cache_key] = identity
        return identity

    def _resolve(self, value: Any, field: str) -> tuple[str, Path]:
        if not isinstance(value, str) or not value.strip():
            raise FieldError(field, f"must be a file path, got {describe(value)}")
        if "-----BEGIN" in value or "\n" in value:
            # Never echo it: it may be a pasted private key.
            raise FieldError(field, "must be a file path, not inline PEM text")
        return value, self.base_dir / Path(value).expanduser()

    def _certificates_at(self, value: Any, field: str) -> tuple[Path, tuple[x509.Certificate, ...]]:
        display, path = self._resolve(value, field)
        resolved = path.resolve()
        if resolved not in self._certificates:
            try:
                self._certificates[resolved] = load_certificates(path, display=display)
            except CredentialError as error:
                raise FieldError(field, str(error)) from None
        return path, self._certificates[resolved]
