"""The issuer-minted copies of a target's identity: the control and five variants,
each differing from the control in exactly its one defect."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from observation_builders import make_target

from mtls_audit.scanner.credentials.factory import CLIENT_AUTH, Issued, common_name, issue
from mtls_audit.scanner.credentials.minted import Minter
from mtls_audit.scanner.model.minting import UNKNOWN_PATH_PREFIX, unavailable_variants
from mtls_audit.scanner.model.observations import MINTED_VARIANTS, Presented
from mtls_audit.scanner.model.spiffe import parse_spiffe_id
from mtls_audit.scanner.model.target import ClientCredential, ClientIdentity, Issuer, Target

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
DAY = datetime.timedelta(days=1)

PAYMENT_ID = "spiffe://svc/payment"
PAYMENT_DNS = "payment.svc.cluster.local"
ALL = (Presented.MINTED, *MINTED_VARIANTS)

# -- a small PKI ----------------------------------------------------------------------

ROOT = issue(common_name("minting test root"), is_ca=True, not_before=NOW - 900 * DAY, not_after=NOW + 900 * DAY)
# The issuer is an intermediate, so its chain (the root) must follow it.
ISSUER_CA = issue(
    common_name("minting test issuer"), issuer=ROOT, is_ca=True, not_before=NOW - 800 * DAY, not_after=NOW + 800 * DAY
)
ISSUER = Issuer(ISSUER_CA.certificate, (ROOT.certificate,), ISSUER_CA.private_key, Path("/etc/mtls-audit/issuer.pem"))
# The identity comes from another CA altogether: the copies are re-issued, not re-signed.
IDENTITY_CA = issue(common_name("workload CA"), is_ca=True)


def _identity(
    issued: Issued, *, chain: tuple[x509.Certificate, ...] = (IDENTITY_CA.certificate,), name: str | None = "payment"
) -> ClientIdentity:
    credential = ClientCredential(issued.certificate, chain, issued.private_key)
    return ClientIdentity(credential, Path("/etc/id/payment.pem"), Path("/etc/id/payment.key"), name=name)


PAYMENT = issue(
    common_name("payment"),
    issuer=IDENTITY_CA,
    subject_alternative_names=[x509.UniformResourceIdentifier(PAYMENT_ID), x509.DNSName(PAYMENT_DNS)],
    extended_key_usages=[CLIENT_AUTH],
    not_before=NOW - 10 * DAY,
    not_after=NOW + 20 * DAY,
)


def _target(identity: ClientIdentity | None = None, **overrides: Any) -> Target:
    return make_target(identity_=identity if identity is not None else _identity(PAYMENT), issuer=ISSUER, **overrides)


@pytest.fixture(scope="module")
def minted() -> dict[Presented, ClientCredential]:
    return Minter(ISSUER, now=NOW).for_target(_target())


# -- reading a certificate ------------------------------------------------------------


def _ext(certificate: x509.Certificate, kind: type) -> x509.Extension | None:
    try:
        return certificate.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


def _public(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _profile(certificate: x509.Certificate) -> dict[str, Any]:
    """Everything a server could judge a client certificate on, but its serial."""
    san = _ext(certificate, x509.SubjectAlternativeName)
    eku = _ext(certificate, x509.ExtendedKeyUsage)
    key_usage = _ext(certificate, x509.KeyUsage)
    basic = _ext(certificate, x509.BasicConstraints)
    return {
        "subject": certificate.subject,
        "issuer": certificate.issuer,
        "public_key": _public(certificate),
        "not_before": certificate.not_valid_before_utc,
        "not_after": certificate.not_valid_after_utc,
        "san": list(san.value) if san else None,
        "eku": list(eku.value) if eku else None,
        "key_usage": (key_usage.value, key_usage.critical) if key_usage else None,
        "basic_constraints": (basic.value, basic.critical) if basic else None,
        "extension_oids": sorted(
            e.oid.dotted_string for e in certificate.extensions if e.oid != x509.SubjectAlternativeName.oid
        ),
    }


def _differences(a: x509.Certificate, b: x509.Certificate) -> set[str]:
    pa, pb = _profile(a), _profile(b)
    return {k for k in pa if pa[k] != pb[k]}


def _uris(certificate: x509.Certificate) -> list[str]:
    san = _ext(certificate, x509.SubjectAlternativeName)
    return [n.value for n in san.value if isinstance(n, x509.UniformResourceIdentifier)] if san else []


def _dns(certificate: x509.Certificate) -> list[str]:
    san = _ext(certificate, x509.SubjectAlternativeName)
    return [n.value for n in san.value if isinstance(n, x509.DNSName)] if san else []


# -- the full set ---------------------------------------------------------------------


def test_control_and_all_five_variants_are_minted(minted: dict[Presented, ClientCredential]) -> None:
    assert set(minted) == set(ALL)
    fingerprints = {c.certificate.fingerprint(c.certificate.signature_hash_algorithm) for c in minted.values()}
    assert len(fingerprints) == 6


def test_control_is_the_identity_reissued_by_the_issuer(minted: dict[Presented, ClientCredential]) -> None:
    control = minted[Presented.MINTED].certificate
    original = PAYMENT.certificate
    assert control.subject == original.subject
    assert control.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "payment"
    assert _ext(control, x509.SubjectAlternativeName).value == _ext(original, x509.SubjectAlternativeName).value
    assert list(_ext(control, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    key_usage = _ext(control, x509.KeyUsage)
    original_usage = _ext(original, x509.KeyUsage)
    assert key_usage.value == original_usage.value
    assert key_usage.critical == original_usage.critical
    assert key_usage.value.digital_signature is True
    assert _public(control) == _public(original)
    assert control.issuer == ISSUER_CA.certificate.subject
    assert control.issuer != original.issuer
    control.verify_directly_issued_by(ISSUER_CA.certificate)
    basic = _ext(control, x509.BasicConstraints)
    assert basic.value.ca is False
    assert basic.critical is True
    aki = _ext(control, x509.AuthorityKeyIdentifier).value
    ski = _ext(ISSUER_CA.certificate, x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    # Valid right now, and short-lived.
    assert control.not_valid_before_utc <= NOW < control.not_valid_after_utc
    assert control.not_valid_before_utc == NOW - datetime.timedelta(minutes=5)
    assert control.not_valid_after_utc == NOW + DAY


def test_control_does_not_verify_against_the_identitys_own_ca(minted: dict[Presented, ClientCredential]) -> None:
    with pytest.raises(ValueError):
        minted[Presented.MINTED].certificate.verify_directly_issued_by(IDENTITY_CA.certificate)


@pytest.mark.parametrize("presented", ALL)
def test_every_copy_is_signed_by_the_issuer_with_the_identitys_key(
    minted: dict[Presented, ClientCredential], presented: Presented
) -> None:
    credential = minted[presented]
    certificate = credential.certificate
    certificate.verify_directly_issued_by(ISSUER_CA.certificate)
    assert certificate.issuer == ISSUER_CA.certificate.subject
    assert _public(certificate) == _public(PAYMENT.certificate)
    assert credential.private_key is PAYMENT.private_key
    assert credential.chain == (ISSUER_CA.certificate, ROOT.certificate)


EXPECTED_DIFFERENCES = {
    Presented.EXPIRED: {"not_before", "not_after"},
    Presented.NOT_YET_VALID: {"not_before", "not_after"},
    Presented.SERVER_AUTH_ONLY: {"eku"},
    Presented.CN_ONLY: {"san"},
    Presented.UNKNOWN_SPIFFE_ID: {"san"},
}


@pytest.mark.parametrize("presented", MINTED_VARIANTS)
def test_each_variant_differs_from_the_control_in_its_defect_only(
    minted: dict[Presented, ClientCredential], presented: Presented
) -> None:
    control = minted[Presented.MINTED].certificate
    variant = minted[presented].certificate
    assert _differences(variant, control) == EXPECTED_DIFFERENCES[presented]


def test_expired_copy(minted: dict[Presented, ClientCredential]) -> None:
    certificate = minted[Presented.EXPIRED].certificate
    assert certificate.not_valid_after_utc < NOW
    assert certificate.not_valid_before_utc < certificate.not_valid_after_utc


def test_not_yet_valid_copy(minted: dict[Presented, ClientCredential]) -> None:
    certificate = minted[Presented.NOT_YET_VALID].certificate
    assert certificate.not_valid_before_utc > NOW
    assert certificate.not_valid_after_utc > certificate.not_valid_before_utc


def test_server_auth_only_copy(minted: dict[Presented, ClientCredential]) -> None:
    eku = _ext(minted[Presented.SERVER_AUTH_ONLY].certificate, x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_cn_only_copy_has_no_san_and_keeps_the_cn(minted: dict[Presented, ClientCredential]) -> None:
    certificate = minted[Presented.CN_ONLY].certificate
    assert _ext(certificate, x509.SubjectAlternativeName) is None
    assert certificate.subject == PAYMENT.certificate.subject
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "payment"


def test_unknown_spiffe_id_copy(minted: dict[Presented, ClientCredential]) -> None:
    certificate = minted[Presented.UNKNOWN_SPIFFE_ID].certificate
    uris = _uris(certificate)
    assert len(uris) == 1
    fresh = parse_spiffe_id(uris[0])
    assert fresh.trust_domain == "svc"
    assert fresh.path != "/payment"
    assert fresh.path.startswith(UNKNOWN_PATH_PREFIX)
    assert len(fresh.path) > len(UNKNOWN_PATH_PREFIX)
    assert _dns(certificate) == [PAYMENT_DNS]
    assert PAYMENT_ID not in uris


def test_unknown_path_is_fresh_per_minter() -> None:
    target = _target()
    first = _uris(Minter(ISSUER, now=NOW).for_target(target)[Presented.UNKNOWN_SPIFFE_ID].certificate)
    second = _uris(Minter(ISSUER, now=NOW).for_target(target)[Presented.UNKNOWN_SPIFFE_ID].certificate)
    assert first != second


# -- what can and cannot be minted ----------------------------------------------------


def test_identity_without_san_gets_no_cn_only_copy() -> None:
    bare = issue(common_name("payment"), issuer=IDENTITY_CA, extended_key_usages=[CLIENT_AUTH])
    target = _target(_identity(bare))
    minted = Minter(ISSUER, now=NOW).for_target(target)
    assert Presented.CN_ONLY not in minted
    # No SAN means no SPIFFE ID, and the target has no server_identity either.
    assert Presented.UNKNOWN_SPIFFE_ID not in minted
    assert set(minted) == {Presented.MINTED, Presented.EXPIRED, Presented.NOT_YET_VALID, Presented.SERVER_AUTH_ONLY}
    reasons = unavailable_variants(target)
    assert set(reasons) == {Presented.CN_ONLY, Presented.UNKNOWN_SPIFFE_ID}
    assert "no subjectAltName" in reasons[Presented.CN_ONLY]
    assert "no SPIFFE trust domain" in reasons[Presented.UNKNOWN_SPIFFE_ID]
    for credential in minted.values():
        assert _ext(credential.certificate, x509.SubjectAlternativeName) is None


def test_identity_without_san_but_server_identity_gets_an_unknown_id_only() -> None:
    bare = issue(common_name("payment"), issuer=IDENTITY_CA, extended_key_usages=[CLIENT_AUTH])
    target = _target(_identity(bare), server_identity="spiffe://mesh.local/ns/prod/sa/api")
    minted = Minter(ISSUER, now=NOW).for_target(target)
    assert Presented.CN_ONLY not in minted
    certificate = minted[Presented.UNKNOWN_SPIFFE_ID].certificate
    assert len(_uris(certificate)) == 1
    assert parse_spiffe_id(_uris(certificate)[0]).trust_domain == "mesh.local"
    assert list(_ext(certificate, x509.SubjectAlternativeName).value) == [
        x509.UniformResourceIdentifier(_uris(certificate)[0])
    ]
    assert set(unavailable_variants(target)) == {Presented.CN_ONLY}


def test_no_spiffe_trust_domain_anywhere_means_no_unknown_id() -> None:
    dns_only = issue(
        common_name("payment"),
        issuer=IDENTITY_CA,
        subject_alternative_names=[x509.DNSName(PAYMENT_DNS)],
        extended_key_usages=[CLIENT_AUTH],
    )
    target = _target(_identity(dns_only))
    assert target.server_identity is None
    minted = Minter(ISSUER, now=NOW).for_target(target)
    assert Presented.UNKNOWN_SPIFFE_ID not in minted
    assert Presented.CN_ONLY in minted
    assert set(unavailable_variants(target)) == {Presented.UNKNOWN_SPIFFE_ID}


def test_trust_domain_comes_from_server_identity_when_the_identity_has_none() -> None:
    dns_only = issue(
        common_name("payment"),
        issuer=IDENTITY_CA,
        subject_alternative_names=[x509.DNSName(PAYMENT_DNS)],
        extended_key_usages=[CLIENT_AUTH],
    )
    target = _target(_identity(dns_only), server_identity="spiffe://Mesh.Example/ns/prod/sa/api")
    minted = Minter(ISSUER, now=NOW).for_target(target)
    certificate = minted[Presented.UNKNOWN_SPIFFE_ID].certificate
    uris = _uris(certificate)
    assert len(uris) == 1
    fresh = parse_spiffe_id(uris[0])
    assert fresh.trust_domain == "mesh.example"
    assert fresh.path.startswith(UNKNOWN_PATH_PREFIX)
    assert _dns(certificate) == [PAYMENT_DNS]
    assert _differences(certificate, minted[Presented.MINTED].certificate) == {"san"}


def test_identitys_own_trust_domain_wins_over_server_identity() -> None:
    target = _target(server_identity="spiffe://other.domain/api")
    certificate = Minter(ISSUER, now=NOW).for_target(target)[Presented.UNKNOWN_SPIFFE_ID].certificate
    assert parse_spiffe_id(_uris(certificate)[0]).trust_domain == "svc"


def test_identity_with_several_spiffe_ids_gets_exactly_one_fresh_one() -> None:
    two = issue(
        common_name("payment"),
        issuer=IDENTITY_CA,
        subject_alternative_names=[
            x509.UniformResourceIdentifier(PAYMENT_ID),
            x509.UniformResourceIdentifier("spiffe://svc/payment-admin"),
            x509.DNSName(PAYMENT_DNS),
        ],
        extended_key_usages=[CLIENT_AUTH],
    )
    certificate = Minter(ISSUER, now=NOW).for_target(_target(_identity(two)))[Presented.UNKNOWN_SPIFFE_ID].certificate
    uris = _uris(certificate)
    assert len(uris) == 1
    assert parse_spiffe_id(uris[0]).path not in ("/payment", "/payment-admin")
    assert _dns(certificate) == [PAYMENT_DNS]


def test_identity_without_eku_gets_client_auth_on_the_control() -> None:
    no_eku = issue(
        common_name("payment"),
        issuer=IDENTITY_CA,
        subject_alternative_names=[x509.UniformResourceIdentifier(PAYMENT_ID)],
    )
    minted = Minter(ISSUER, now=NOW).for_target(_target(_identity(no_eku)))
    assert list(_ext(minted[Presented.MINTED].certificate, x509.ExtendedKeyUsage).value) == [CLIENT_AUTH]
    assert list(_ext(minted[Presented.SERVER_AUTH_ONLY].certificate, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]


def test_cn_only_copy_of_an_identity_without_cn_takes_its_first_san_as_cn() -> None:
    no_cn = issue(
        x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "acme")]),
        issuer=IDENTITY_CA,
        subject_alternative_names=[x509.UniformResourceIdentifier(PAYMENT_ID)],
        extended_key_usages=[CLIENT_AUTH],
    )
    minted = Minter(ISSUER, now=NOW).for_target(_target(_identity(no_cn)))
    certificate = minted[Presented.CN_ONLY].certificate
    assert _ext(certificate, x509.SubjectAlternativeName) is None
    assert certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "acme"
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == PAYMENT_ID
    # The other copies keep the subject exactly.
    assert minted[Presented.MINTED].certificate.subject == no_cn.certificate.subject


def test_ed25519_issuer() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    name = common_name("ed25519 issuer")
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 30 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, None)
    )
    issuer = Issuer(ca, (), key, Path("/etc/mtls-audit/ed-issuer.pem"))
    minted = Minter(issuer, now=NOW).for_target(_target())
    assert set(minted) == set(ALL)
    for credential in minted.values():
        credential.certificate.verify_directly_issued_by(ca)
        assert credential.certificate.issuer == name
        assert credential.chain == (ca,)
        assert _public(credential.certificate) == _public(PAYMENT.certificate)


def test_target_without_identity_gets_a_generic_subject() -> None:
    target = make_target(identity_=None, issuer=ISSUER, server_identity="spiffe://mesh.local/api")
    minted = Minter(ISSUER, now=NOW).for_target(target)
    assert Presented.CN_ONLY not in minted
    assert unavailable_variants(target)[Presented.CN_ONLY] == "the target has no client identity to copy"
    assert set(minted) == set(ALL) - {Presented.CN_ONLY}
    keys = {_public(c.certificate) for c in minted.values()}
    assert len(keys) == 1  # one fresh key for every copy
    assert keys != {_public(PAYMENT.certificate)}
    for presented, credential in minted.items():
        certificate = credential.certificate
        certificate.verify_directly_issued_by(ISSUER_CA.certificate)
        assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "mtls-audit minted client"
        expected_eku = [ExtendedKeyUsageOID.SERVER_AUTH] if presented is Presented.SERVER_AUTH_ONLY else [CLIENT_AUTH]
        assert list(_ext(certificate, x509.ExtendedKeyUsage).value) == expected_eku
    assert _ext(minted[Presented.MINTED].certificate, x509.SubjectAlternativeName) is None
    unknown = _uris(minted[Presented.UNKNOWN_SPIFFE_ID].certificate)
    assert len(unknown) == 1
    assert parse_spiffe_id(unknown[0]).trust_domain == "mesh.local"


def test_target_without_identity_or_trust_domain_gets_the_dated_and_eku_copies() -> None:
    target = make_target(identity_=None, issuer=ISSUER)
    minted = Minter(ISSUER, now=NOW).for_target(target)
    assert set(minted) == {Presented.MINTED, Presented.EXPIRED, Presented.NOT_YET_VALID, Presented.SERVER_AUTH_ONLY}


def test_minted_private_key_matches_the_certificate() -> None:
    minted = Minter(ISSUER, now=NOW).for_target(make_target(identity_=None, issuer=ISSUER))
    for credential in minted.values():
        assert _public(credential.certificate) == credential.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


# -- caching --------------------------------------------------------------------------


def test_results_are_cached_per_identity() -> None:
    minter = Minter(ISSUER, now=NOW)
    first = minter.for_target(_target())
    second = minter.for_target(_target())
    assert second is first
    for presented in ALL:
        assert second[presented] is first[presented]
    # Another target with the same identity shares the copies.
    other = minter.for_target(_target(name="other", port=9443))
    assert other is first


def test_another_identity_gets_its_own_copies() -> None:
    minter = Minter(ISSUER, now=NOW)
    first = minter.for_target(_target())
    orders = issue(
        common_name("orders"),
        issuer=IDENTITY_CA,
        subject_alternative_names=[x509.UniformResourceIdentifier("spiffe://svc/orders")],
        extended_key_usages=[CLIENT_AUTH],
    )
    second = minter.for_target(_target(_identity(orders, name="orders")))
    assert second is not first
    assert second[Presented.MINTED].certificate.subject == common_name("orders")
    assert _public(second[Presented.MINTED].certificate) == _public(orders.certificate)


def test_same_identity_in_another_trust_domain_is_minted_again() -> None:
    # An identity without a SPIFFE ID takes its trust domain from the target.
    dns_only = issue(
        common_name("payment"),
        issuer=IDENTITY_CA,
        subject_alternative_names=[x509.DNSName(PAYMENT_DNS)],
        extended_key_usages=[CLIENT_AUTH],
    )
    minter = Minter(ISSUER, now=NOW)
    a = minter.for_target(_target(_identity(dns_only), server_identity="spiffe://a.example/api"))
    b = minter.for_target(_target(_identity(dns_only), server_identity="spiffe://b.example/api"))
    again = minter.for_target(_target(_identity(dns_only), server_identity="spiffe://a.example/other"))
    assert a is not b
    assert again is a
    assert parse_spiffe_id(_uris(a[Presented.UNKNOWN_SPIFFE_ID].certificate)[0]).trust_domain == "a.example"
    assert parse_spiffe_id(_uris(b[Presented.UNKNOWN_SPIFFE_ID].certificate)[0]).trust_domain == "b.example"


def test_cn_only_copy_always_names_the_identity_in_a_cn() -> None:
    """EXPECTED TO FAIL against the current code (see the report): an identity with an
    empty subject whose first SAN is an IP address gets a "cn-only" copy with an empty
    subject and no SAN at all (RFC 5280 section 4.1.2.6 forbids that), which names no
    identity anywhere. Either the copy carries a CN, or it is not minted and
    unavailable_variants says why."""
    ip_only = issue(
        x509.Name([]),
        issuer=IDENTITY_CA,
        subject_alternative_names=[x509.IPAddress(ipaddress.ip_address("10.0.0.7"))],
        extended_key_usages=[CLIENT_AUTH],
    )
    target = _target(_identity(ip_only))
    minted = Minter(ISSUER, now=NOW).for_target(target)
    if Presented.CN_ONLY in minted:
        certificate = minted[Presented.CN_ONLY].certificate
        assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME), certificate.subject
    else:
        assert Presented.CN_ONLY in unavailable_variants(target)
