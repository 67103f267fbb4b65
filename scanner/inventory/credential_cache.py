"""The trust bundles and client identities an inventory names, each file loaded once.

Thousands of targets usually share one CA bundle and one identity: every distinct
file is parsed once, and targets that name the same identity share one
:class:`ClientIdentity` object (and trust bundle tuple), so a target costs a few
hundred bytes however big its certificates are.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography import x509

from mtls_audit.scanner.credentials.files import (
    CredentialError,
    SigningKey,
    load_certificates,
    load_pkcs12_credential,
    load_private_key,
    looks_like_inline_data,
    make_client_credential,
)
from mtls_audit.scanner.inventory.errors import FieldError
from mtls_audit.scanner.inventory.fields import password_from_env, password_hint
from mtls_audit.scanner.inventory.keys import IDENTITY_KEYS, ISSUER_KEYS, unknown_key
from mtls_audit.scanner.model.target import ClientIdentity, Issuer
from mtls_audit.scanner.model.text import describe, show, type_name

# Names go into probe ids (``identity:web@tls1.3``) and reports.
_IDENTITY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


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
        self.named: dict[str, ClientIdentity] = {}  # the inventory's ``identities``

    def load_named(self, value: Any) -> None:
        """Load the top-level ``identities`` map; FieldError names the entry at fault."""
        if not isinstance(value, dict):
            raise FieldError(
                "identities", f"must be a mapping of names to {{cert, key}} or {{pkcs12}}, got {type_name(value)}"
            )
        for name, setting in value.items():
            if not isinstance(name, str) or not _IDENTITY_NAME.fullmatch(name):
                raise FieldError(
                    "identities",
                    f"identity name {show(name) if isinstance(name, str) else describe(name)} must be letters, "
                    "digits, '.', '-' or '_' (at most 64, starting with a letter or digit)",
                )
            try:
                identity = self._inline(setting)
            except FieldError as error:
                raise FieldError(f"identities.{name}{error.field.removeprefix('identity')}", error.reason) from None
            self.named[name] = replace(identity, name=name)

    def named_identity(self, value: Any, field: str) -> ClientIdentity:
        """An identity by its name in ``identities``."""
        if isinstance(value, str) and value in self.named:
            return self.named[value]
        if not isinstance(value, str):
            raise FieldError(field, f"must be the name of an identity, got {describe(value)}")
        known = ", ".join(self.named) if self.named else "none: the inventory has no 'identities' map"
        close = difflib.get_close_matches(value, list(self.named), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise FieldError(field, f"unknown identity {show(value)} (defined: {known}){hint}")

    def issuer(self, value: Any) -> Issuer:
        """The top-level ``issuer``: a CA certificate and its key, checked to match."""
        if not isinstance(value, dict):
            raise FieldError("issuer", f"must be a mapping with cert and key, got {type_name(value)}")
        for key in value:
            if key not in ISSUER_KEYS:
                reason, expected = unknown_key(key, ISSUER_KEYS)
                raise FieldError("issuer", f"{reason} {expected}")
        for needed in ("cert", "key"):
            if needed not in value:
                raise FieldError(f"issuer.{needed}", "missing: the issuer needs both cert and key")
        password = self._password(value, "issuer.password_env")
        cert_path, certificates = self._certificates_at(value["cert"], "issuer.cert")
        issuer_key_display, issuer_key_path = self._resolve(value["key"], "issuer.key")
        try:
            key = load_private_key(issuer_key_path, password, display=issuer_key_display)
            credential = make_client_credential(
                certificates, key, cert_display=value["cert"], key_display=issuer_key_display, owner="the issuer's"
            )
        except CredentialError as error:
            raise FieldError("issuer.key", password_hint(str(error), "issuer.password_env")) from None
        not_a_ca = _not_a_ca(credential.certificate)
        if not_a_ca:
            raise FieldError("issuer.cert", f"{value['cert']} {not_a_ca}; the issuer must be a CA certificate")
        return Issuer(credential.certificate, credential.chain, credential.private_key, cert_path)

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
        if isinstance(value, str):
            return self.named_identity(value, "identity")
        return self._inline(value)

    def _inline(self, value: Any) -> ClientIdentity:
        if not isinstance(value, dict):
            raise FieldError(
                "identity",
                f"must be a mapping with cert and key (or pkcs12), or an identity's name, got {type_name(value)}",
            )
        for key in value:
            if key not in IDENTITY_KEYS:
                reason, expected = unknown_key(key, IDENTITY_KEYS)
                raise FieldError("identity", f"{reason} {expected}")
        if "pkcs12" in value:
            for other in ("cert", "key"):
                if other in value:
                    raise FieldError(f"identity.{other}", "set either pkcs12 or cert and key, not both")
            return self._pkcs12(value)
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

    def _password(self, value: dict[Any, Any], field: str) -> bytes | None:
        password_env = value.get("password_env")
        if password_env is None:
            return None
        try:
            return password_from_env(password_env, self.environ)
        except ValueError as error:
            raise FieldError(field, str(error)) from None

    def _pkcs12(self, value: dict[Any, Any]) -> ClientIdentity:
        password = self._password(value, "identity.password_env")
        display, path = self._resolve(value["pkcs12"], "identity.pkcs12")
        cache_key = (path.resolve(), path.resolve(), password)
        if cache_key not in self._identities:
            try:
                credential = load_pkcs12_credential(path, password, display=display)
            except CredentialError as error:
                raise FieldError("identity.pkcs12", password_hint(str(error), "password_env")) from None
            self._identities[cache_key] = ClientIdentity(
                credential, path, path, pkcs12=True, password_env=value.get("password_env")
            )
        return self._identities[cache_key]

    def _load_identity(self, value: dict[Any, Any]) -> ClientIdentity:
        password = self._password(value, "identity.password_env")

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
        identity = ClientIdentity(
            credential=credential, cert_path=cert_path, key_path=key_path, password_env=value.get("password_env")
        )
        self._identities[cache_key] = identity
        return identity

    def _resolve(self, value: Any, field: str) -> tuple[str, Path]:
        if not isinstance(value, str) or not value.strip():
            raise FieldError(field, f"must be a file path, got {describe(value)}")
        if looks_like_inline_data(value):
            # Never echo it: it may be a pasted private key.
            raise FieldError(field, "must be a file path, not inline PEM or base64 data")
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


def _not_a_ca(certificate: x509.Certificate) -> str | None:
    """Why ``certificate`` cannot issue certificates, or None."""
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return "has no basicConstraints extension"
    except ValueError:
        return "has a malformed extension"
    if not constraints.ca:
        return "is not a CA (basicConstraints CA:FALSE)"
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:
        return "has a malformed keyUsage"
    return None if usage.key_cert_sign else "may not sign certificates (keyUsage without keyCertSign)"
