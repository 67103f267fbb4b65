"""Client certificates minted with the inventory's issuer (a test CA the servers
trust): a copy of the target's identity without defect, the control, and copies with
exactly one defect each (expired, not yet valid, serverAuth-only, no SAN, an unknown
SPIFFE ID).

Everything else is copied from the identity: subject, key usage, the other SANs,
even the public key, so the one defect is the only thing a server can object to.
Nothing here is written anywhere; the issuer's key signs and stays in memory.
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtls_audit.scanner.credentials.factory import new_key
from mtls_audit.scanner.model.minting import (
    UNKNOWN_PATH_PREFIX,
    name_for_common_name,
    subject_alternative_names,
    trust_domain_for,
    unavailable_variants,
)
from mtls_audit.scanner.model.observations import MINTED_VARIANTS, Presented
from mtls_audit.scanner.model.spiffe import spiffe_id_or_none
from mtls_audit.scanner.model.target import ClientCredential, Issuer, SigningKey, Target

_GENERIC_SUBJECT = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mtls-audit minted client")])
_CONTROL_LIFETIME = datetime.timedelta(days=1)


class Minter:
    """Mints, per run, the variants of each distinct (identity, trust domain)."""

    def __init__(self, issuer: Issuer, now: datetime.datetime | None = None) -> None:
        self._issuer = issuer
        self._now = now or datetime.datetime.now(datetime.UTC)
        self._cache: dict[tuple[bytes, str | None], dict[Presented, ClientCredential]] = {}
        # One random path per run: a server cannot have a rule for it.
        self._unknown_path = UNKNOWN_PATH_PREFIX + secrets.token_hex(4)

    def for_target(self, target: Target) -> dict[Presented, ClientCredential]:
        """The control (``MINTED``) and every variant that can be made for ``target``."""
        identity = target.identity.credential if target.identity else None
        domain = trust_domain_for(target)
        key = (identity.certificate.fingerprint(hashes.SHA256()) if identity else b"", str(domain) if domain else None)
        if key not in self._cache:
            self._cache[key] = self._mint(target, identity)
        return self._cache[key]

    def _mint(self, target: Target, identity: ClientCredential | None) -> dict[Presented, ClientCredential]:
        private_key: SigningKey = identity.private_key if identity else new_key()
        template = identity.certificate if identity else None
        now = self._now
        unknown = trust_domain_for(target)
        in_date = _default_validity(now)

        def mint(
            dates: Callable[[x509.CertificateBuilder], x509.CertificateBuilder] = in_date,
            *,
            sans: list[x509.GeneralName] | None = None,
            usages: list[x509.ObjectIdentifier] | None = None,
            subject: x509.Name | None = None,
        ) -> ClientCredential:
            builder = self._builder(template, private_key, sans=sans, usages=usages, subject=subject)
            builder = dates(builder)
            certificate = builder.sign(self._issuer.private_key, _hash_for(self._issuer.private_key))
            return ClientCredential(certificate, (self._issuer.certificate, *self._issuer.chain), private_key)

        minted = {
            Presented.MINTED: mint(),
            Presented.EXPIRED: mint(
                lambda b: b.not_valid_before(now - datetime.timedelta(days=30)).not_valid_after(
                    now - datetime.timedelta(days=1)
                )
            ),
            Presented.NOT_YET_VALID: mint(
                lambda b: b.not_valid_before(now + datetime.timedelta(days=1)).not_valid_after(
                    now + datetime.timedelta(days=31)
                )
            ),
            Presented.SERVER_AUTH_ONLY: mint(usages=[ExtendedKeyUsageOID.SERVER_AUTH]),
        }
        unavailable = unavailable_variants(target)
        if Presented.CN_ONLY not in unavailable:
            minted[Presented.CN_ONLY] = mint(sans=[], subject=_with_common_name(template))
        if Presented.UNKNOWN_SPIFFE_ID not in unavailable and unknown is not None:
            others = [n for n in subject_alternative_names(template) if not _is_spiffe(n)]
            fresh = x509.UniformResourceIdentifier(str(unknown.child(self._unknown_path)))
            minted[Presented.UNKNOWN_SPIFFE_ID] = mint(sans=[fresh, *others])
        assert set(minted) <= {Presented.MINTED, *MINTED_VARIANTS}
        return minted

    def _builder(
        self,
        template: x509.Certificate | None,
        private_key: SigningKey,
        *,
        sans: list[x509.GeneralName] | None,
        usages: list[x509.ObjectIdentifier] | None,
        subject: x509.Name | None,
    ) -> x509.CertificateBuilder:
        public_key = private_key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject or (template.subject if template else _GENERIC_SUBJECT))
            .issuer_name(self._issuer.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._issuer.private_key.public_key()),
                critical=False,
            )
        )
        key_usage = _extension(template, x509.KeyUsage)
        if key_usage is not None:
            builder = builder.add_extension(key_usage.value, critical=key_usage.critical)
        names = subject_alternative_names(template) if sans is None else sans
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if usages is None:
            copied = _extension(template, x509.ExtendedKeyUsage)
            usages = list(copied.value) if copied is not None else [ExtendedKeyUsageOID.CLIENT_AUTH]
        return builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)


def _default_validity(now: datetime.datetime) -> Callable[[x509.CertificateBuilder], x509.CertificateBuilder]:
    return lambda b: b.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + _CONTROL_LIFETIME)


def _with_common_name(template: x509.Certificate | None) -> x509.Name | None:
    """The identity's subject, given a CN from its first SAN if it has none: the
    "identity only in the CN" copy must still name the identity somewhere."""
    if template is None or template.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        return None
    name = name_for_common_name(template)
    assert name is not None  # unavailable_variants() keeps cn-only from being minted without one
    common_name = x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return x509.Name([*template.subject.rdns, common_name])


def _is_spiffe(name: x509.GeneralName) -> bool:
    return isinstance(name, x509.UniformResourceIdentifier) and spiffe_id_or_none(name.value) is not None


def _extension(certificate: x509.Certificate | None, kind: type) -> x509.Extension | None:
    if certificate is None:
        return None
    try:
        return certificate.extensions.get_extension_for_class(kind)
    except (x509.ExtensionNotFound, ValueError):
        return None


def _hash_for(key: SigningKey) -> hashes.SHA256 | None:
    # EdDSA signs the message itself: cryptography wants no digest for it.
    return None if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) else hashes.SHA256()
