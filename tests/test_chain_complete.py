"""chain-complete on chains that link by signature but are not valid paths.

A chain whose intermediate is not a CA (basicConstraints CA:FALSE), breaks a
pathLenConstraint, or lacks keyUsage keyCertSign is rejected by every client, so
it must fail with the verifier's reason; only a dating problem may fall back to
signature-only linking (expiry-soon reports dates)."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from observation_builders import DAY, NOW, PKI, SERVER_NAME, der, evidence, make_target, strict_tls13_server
from real_servers import issue_ca_certificate

from mtls_audit.checks import chain_complete, expiry_soon
from mtls_audit.checks.base import Status
from mtls_audit.scanner.credentials.factory import CLIENT_AUTH, SERVER_AUTH, Issued, common_name, issue, new_key
from mtls_audit.scanner.model.finding import Finding

ROOT_CN = "CN=mtls-audit test root CA"


def leaf(issuer: Issued, *, not_before=NOW - 30 * DAY, not_after=NOW + 335 * DAY) -> Issued:
    return issue(
        common_name(SERVER_NAME),
        issuer=issuer,
        subject_alternative_names=[x509.DNSName(SERVER_NAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        extended_key_usages=[SERVER_AUTH],
        not_before=not_before,
        not_after=not_after,
    )


def intermediate(name: str, *, issuer: Issued = PKI.root, **options) -> Issued:
    options.setdefault("not_before", NOW - 1800 * DAY)
    options.setdefault("not_after", NOW + 1800 * DAY)
    return issue_ca_certificate(f"{name} intermediate CA", issuer=issuer, **options)


def check(check_module, *chain: Issued) -> Finding:
    observations = strict_tls13_server(chain=der(*chain))
    return check_module.CHECK.evaluate(evidence(make_target(), *observations))


def chain_complete_of(*chain: Issued) -> Finding:
    return check(chain_complete, *chain)


# -- the chains that must keep their verdict -----------------------------------------


def test_good_chain_passes_with_the_built_path():
    good = intermediate("good")
    finding = chain_complete_of(leaf(good), good)
    assert finding.status is Status.PASS, finding.summary
    assert finding.evidence["built_path"] == ["CN=api.test", "CN=good intermediate CA", ROOT_CN]
    assert ROOT_CN in finding.summary


def test_missing_intermediate_fails_naming_it():
    good = intermediate("good")
    finding = chain_complete_of(leaf(good))
    assert finding.status is Status.FAIL
    assert "CN=good intermediate CA is neither presented nor a trust anchor" in finding.summary
    assert finding.remediation == chain_complete.REMEDIATION


def test_expired_intermediate_passes_chain_complete_and_fails_expiry_soon():
    # The leaf was issued while the intermediate was in date: the chain is complete.
    expired = intermediate("expired", not_before=NOW - 1000 * DAY, not_after=NOW - DAY)
    server = leaf(expired, not_before=NOW - 30 * DAY, not_after=NOW + 335 * DAY)
    finding = chain_complete_of(server, expired)
    assert finding.status is Status.PASS, finding.summary
    assert finding.evidence["built_path"] == ["CN=api.test", "CN=expired intermediate CA", ROOT_CN]
    expiry = check(expiry_soon, server, expired)
    assert expiry.status is Status.FAIL
    assert "server chain CN=expired intermediate CA expired on" in expiry.summary


def test_validity_periods_that_never_overlap_still_pass_as_a_dating_problem():
    # Issued by the intermediate after it expired: no moment has the whole path in
    # date, every verifier failure is about dates, and the links all verify.
    stale = intermediate("stale", not_before=NOW - 1000 * DAY, not_after=NOW - 100 * DAY)
    finding = chain_complete_of(leaf(stale, not_before=NOW - 10 * DAY), stale)
    assert finding.status is Status.PASS, finding.summary
    assert "never overlap" in finding.summary
    assert finding.evidence["signature_path"] == ["CN=api.test", "CN=stale intermediate CA", ROOT_CN]


# -- the chains the old fallback let through -----------------------------------------


def assert_invalid(finding: Finding, reason: str) -> None:
    assert finding.status is Status.FAIL, finding.summary
    assert reason in finding.summary
    assert reason in finding.evidence["verifier_error"]
    assert ROOT_CN in finding.summary
    assert finding.remediation == chain_complete.REMEDIATION_INVALID


def test_intermediate_with_ca_false_fails():
    not_a_ca = intermediate("not-a-CA", ca=False)
    finding = chain_complete_of(leaf(not_a_ca), not_a_ca)
    assert_invalid(finding, "basicConstraints.cA must be asserted in a CA certificate")
    assert finding.evidence["signature_path"] == ["CN=api.test", "CN=not-a-CA intermediate CA", ROOT_CN]


def test_path_length_exceeded_fails():
    # root -> upper (pathlen 0) -> lower -> leaf: upper may issue no further CA.
    upper = intermediate("upper", path_length=0)
    lower = intermediate("lower", issuer=upper)
    finding = chain_complete_of(leaf(lower), lower, upper)
    assert_invalid(finding, "path length constraint violated")


def test_intermediate_without_key_cert_sign_fails():
    no_cert_sign = intermediate("no-keyCertSign", key_cert_sign=False)
    finding = chain_complete_of(leaf(no_cert_sign), no_cert_sign)
    assert_invalid(finding, "keyUsage.keyCertSign must be asserted in a CA certificate")


BROKEN = {
    "ca-false": ({"ca": False}, "basicConstraints.cA must be asserted"),
    "no-keyCertSign": ({"key_cert_sign": False}, "keyUsage.keyCertSign must be asserted"),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_intermediate_that_is_also_expired_still_fails(kind: str):
    # At "now" the verifier stops at the expiry (it checks dates first); at a
    # moment when both are in date it reports the real reason.
    options, reason = BROKEN[kind]
    broken = intermediate("broken", not_before=NOW - 1000 * DAY, not_after=NOW - DAY, **options)
    finding = chain_complete_of(leaf(broken), broken)
    assert_invalid(finding, reason)


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_intermediate_under_an_expired_leaf_still_fails(kind: str):
    options, reason = BROKEN[kind]
    broken = intermediate("broken", **options)
    finding = chain_complete_of(leaf(broken, not_before=NOW - 400 * DAY, not_after=NOW - DAY), broken)
    assert_invalid(finding, reason)


def test_path_length_exceeded_with_an_expired_intermediate_still_fails():
    upper = intermediate("upper", path_length=0, not_before=NOW - 1000 * DAY, not_after=NOW - DAY)
    lower = intermediate("lower", issuer=upper, not_before=NOW - 900 * DAY, not_after=NOW + 900 * DAY)
    finding = chain_complete_of(leaf(lower), lower, upper)
    assert_invalid(finding, "path length constraint violated")


def test_a_valid_path_beside_a_broken_one_passes():
    # The server also sends a stray CA:FALSE certificate with the same name and key
    # as the real intermediate: the verifier builds the good path.
    good = intermediate("good")
    stray = Issued(
        x509.CertificateBuilder()
        .subject_name(good.certificate.subject)
        .issuer_name(PKI.root.certificate.subject)
        .public_key(good.private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 300 * DAY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(PKI.root.private_key, hashes.SHA256()),
        good.private_key,
    )
    finding = chain_complete_of(leaf(good), stray, good)
    assert finding.status is Status.PASS, finding.summary


# -- the CA profile: what mainstream clients accept must not fail -------------------


def raw_ca(subject: str, extensions: list[tuple[x509.ExtensionType, bool]], *, issuer: Issued = PKI.root) -> Issued:
    """An intermediate with exactly these (extension, critical) pairs."""
    key = new_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(common_name(subject))
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - 100 * DAY)
        .not_valid_after(NOW + 1000 * DAY)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return Issued(builder.sign(issuer.private_key, hashes.SHA256()), key)


def test_openssl_style_intermediate_passes():
    # `openssl x509 -req -extfile` with only basicConstraints, not critical, and an
    # authorityKeyIdentifier with issuer and serial (`keyid,issuer`): OpenSSL, Go
    # and Java accept it; cryptography's CA/B profile alone would not.
    root = PKI.root.certificate
    aki = x509.AuthorityKeyIdentifier(
        x509.SubjectKeyIdentifier.from_public_key(PKI.root.private_key.public_key()).digest,
        [x509.DirectoryName(root.subject)],
        root.serial_number,
    )
    plain = raw_ca(
        "openssl-style intermediate CA", [(x509.BasicConstraints(ca=True, path_length=None), False), (aki, False)]
    )
    finding = chain_complete_of(leaf(plain), plain)
    assert finding.status is Status.PASS, finding.summary
    assert finding.evidence["built_path"][1] == "CN=openssl-style intermediate CA"


def test_intermediate_restricted_to_server_auth_passes():
    server_only = raw_ca(
        "serverAuth-only intermediate CA",
        [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (x509.ExtendedKeyUsage([SERVER_AUTH]), False),
        ],
    )
    finding = chain_complete_of(leaf(server_only), server_only)
    assert finding.status is Status.PASS, finding.summary


def test_intermediate_restricted_to_client_auth_fails():
    client_only = raw_ca(
        "clientAuth-only intermediate CA",
        [(x509.BasicConstraints(ca=True, path_length=0), True), (x509.ExtendedKeyUsage([CLIENT_AUTH]), False)],
    )
    finding = chain_complete_of(leaf(client_only), client_only)
    assert_invalid(finding, "must allow serverAuth")
