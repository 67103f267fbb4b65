"""Client identities a strict server must refuse, minted in memory for one run.

They copy what a server might check by name (subject, SANs, EKU) from the real
identity, so only the issuer differs: a server that lets them in is not checking the
chain. Their keys never leave memory; reports name them by fingerprint only.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mtls_audit.scanner.credentials.factory import CLIENT_AUTH, Issued, common_name, issue
from mtls_audit.scanner.model.target import ClientCredential

_GENERIC_SUBJECT = common_name("mtls-audit impostor client")


@dataclass(frozen=True)
class Impostors:
    rogue_ca: ClientCredential
    self_signed: ClientCredential


class ImpostorFactory:
    """One rogue CA per run; impostor leaves cached per real identity."""

    def __init__(self) -> None:
        self._rogue_ca = issue(common_name("mtls-audit rogue CA (untrusted, generated for this scan)"), is_ca=True)
        self._cache: dict[bytes, Impostors] = {}

    def for_identity(self, identity: x509.Certificate | None) -> Impostors:
        key = identity.fingerprint(hashes.SHA256()) if identity is not None else b""
        if key not in self._cache:
            self._cache[key] = self._mint(identity)
        return self._cache[key]

    def _mint(self, identity: x509.Certificate | None) -> Impostors:
        subject = identity.subject if identity is not None else _GENERIC_SUBJECT
        names = _copied_extension(identity, x509.SubjectAlternativeName)
        usages = _copied_extension(identity, x509.ExtendedKeyUsage) or [CLIENT_AUTH]
        rogue = issue(subject, issuer=self._rogue_ca, subject_alternative_names=names, extended_key_usages=usages)
        own = issue(subject, subject_alternative_names=names, extended_key_usages=usages)
        return Impostors(
            rogue_ca=_credential(rogue, chain=(self._rogue_ca.certificate,)),
            self_signed=_credential(own, chain=()),
        )


def _copied_extension(certificate: x509.Certificate | None, kind: type) -> list:
    if certificate is None:
        return []
    try:
        return list(certificate.extensions.get_extension_for_class(kind).value)
    except (x509.ExtensionNotFound, ValueError):
        return []


def _credential(issued: Issued, chain: tuple[x509.Certificate, ...]) -> ClientCredential:
    return ClientCredential(certificate=issued.certificate, chain=chain, private_key=issued.private_key)
