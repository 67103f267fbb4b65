"""The inventory's named identities, PKCS#12 bundles, the issuer, access rules,
server_identity and max_cert_lifetime_days: good files load right; bad ones stop the
real command before it connects anywhere, with one line naming the file, the field
(and the target) and carrying no password, key or bundle bytes. The ad-hoc
``scan HOST:PORT --pkcs12`` too."""

from __future__ import annotations

import base64
import copy
import datetime
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from test_inventory import (
    PASSWORD,
    PKI,
    _chain,
    _delete,
    _issue,
    _key_pem,
    _name,
    _pem,
    _set,
    assert_safe,
    load_error,
    pki,  # noqa: F401 - a fixture
    workdir,  # noqa: F401 - a fixture
    write_yaml,
)
from test_outputs import (
    assert_refused_before_scanning,
    connections,
    files_under,
    listener,  # noqa: F401 - a fixture
    run_cli,
)

from mtls_audit.scanner.inventory import load_inventory
from mtls_audit.scanner.model.target import AccessRule, Expect

P12_PASSWORD = "p12-Secr3t_horse!"
WRONG_P12_PASSWORD = "not-the-Bundle-pw9"
ISSUER_PASSWORD = "issuer-Key_pass7!"
P12_ENV = "WEB_P12_PASSWORD"
ISSUER_ENV = "ISSUER_KEY_PASSWORD"
SECRETS = (PASSWORD, P12_PASSWORD, WRONG_P12_PASSWORD, ISSUER_PASSWORD)
FAST = ["--connect-timeout", "1", "--handshake-timeout", "0.5", "--rounds", "1"]


# --------------------------------------------------------------------------- extra PKI


@dataclass(frozen=True)
class IdentityPKI:
    root: x509.Certificate
    issuing_ca: x509.Certificate
    issuing_ca_key: ec.EllipticCurvePrivateKey
    web: x509.Certificate
    web_key: ec.EllipticCurvePrivateKey
    files: dict[str, bytes]
    secrets: tuple[bytes, ...]  # key and bundle files: no message may quote them


def _ca_without_cert_sign(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """CA:TRUE, but a keyUsage that does not allow signing certificates."""
    now = datetime.datetime.now(datetime.UTC)
    usage = dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(_name("CA that may not sign"))
        .issuer_name(_name("CA that may not sign"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, **usage), critical=True)
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def ids(pki: PKI) -> IdentityPKI:  # noqa: F811 - the imported fixture
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _issue("Test Root", root_key, "Test Root", root_key, ca=True)
    issuing_ca_key = ec.generate_private_key(ec.SECP256R1())
    issuing_ca = _issue("Issuing CA", issuing_ca_key, "Test Root", root_key, ca=True)
    web_key = ec.generate_private_key(ec.SECP256R1())
    web = _issue("web-client", web_key, "Issuing CA", issuing_ca_key)
    no_sign_key = ec.generate_private_key(ec.SECP256R1())

    def bundle(encryption) -> bytes:
        return pkcs12.serialize_key_and_certificates(b"web", web_key, web, [issuing_ca, root], encryption)

    files = {
        "pki/web.p12": bundle(serialization.BestAvailableEncryption(P12_PASSWORD.encode())),
        "pki/web-plain.p12": bundle(serialization.NoEncryption()),
        "pki/issuing-ca.pem": _pem(issuing_ca) + _pem(root),  # the issuer, then its chain
        "pki/issuing-ca.key": _key_pem(issuing_ca_key),
        "pki/issuing-ca-encrypted.key": _key_pem(issuing_ca_key, ISSUER_PASSWORD.encode()),
        "pki/no-cert-sign-ca.pem": _pem(_ca_without_cert_sign(no_sign_key)),
        "pki/no-cert-sign-ca.key": _key_pem(no_sign_key),
    }
    secrets = tuple(
        data
        for name, data in {**pki.files, **files}.items()
        if name.endswith((".key", ".p12")) and name != "pki/x25519.key"
    )
    return IdentityPKI(root, issuing_ca, issuing_ca_key, web, web_key, files, secrets)


@pytest.fixture
def here(workdir: Path, ids: IdentityPKI) -> Path:  # noqa: F811 - the imported fixture
    """The test PKI of test_inventory plus the bundles and issuers above."""
    for name, data in ids.files.items():
        (workdir / name).write_bytes(data)
    return workdir


def identity_document(address: str = "ledger.internal:8443") -> dict:
    """The inventory of the feature's description, one target at ``address``."""
    return {
        "identities": {
            "payment": {"cert": "pki/client.pem", "key": "pki/client.key"},
            "web": {"pkcs12": "pki/web.p12", "password_env": P12_ENV},
        },
        "issuer": {"cert": "pki/issuing-ca.pem", "key": "pki/issuing-ca.key"},
        "defaults": {"trust": "pki/ca.pem", "identity": "payment", "max_cert_lifetime_days": 3},
        "targets": [
            {
                "name": "ledger",
                "address": address,
                "server_identity": "spiffe://svc/ledger",
                "access": [
                    {"identity": "payment", "request": "POST /transfer", "expect": "allow"},
                    {"identity": "web", "request": "POST /transfer", "expect": "deny"},
                    {"identity": "web", "expect": "deny"},
                ],
            }
        ],
    }


ENV = {P12_ENV: P12_PASSWORD}


def assert_no_secrets(line: str, pki: PKI, ids: IdentityPKI) -> None:  # noqa: F811
    """assert_safe, plus: no password of this module, and no 24 characters in a row of
    the base64 (PEM body or whole file) of any key or PKCS#12 file."""
    assert_safe(line, pki)
    for secret in SECRETS:
        assert secret not in line, line
    for data in ids.secrets:
        encoded = [base64.b64encode(data).decode()]
        if b"-----BEGIN" in data:
            encoded.append("".join(data.decode().splitlines()[1:-1]))
        for text in encoded:
            for start in range(0, max(1, len(text) - 24), 8):
                assert text[start : start + 24] not in line, line


# --------------------------------------------------------------------------- loading


def test_named_identities_in_defaults_per_target_and_inline(here: Path, pki: PKI, ids: IdentityPKI) -> None:  # noqa: F811
    document = identity_document()
    document["targets"] += [
        {"name": "web-api", "address": "web.internal:443", "identity": "web"},
        {
            "name": "inline",
            "address": "inline.internal:443",
            "identity": {"cert": "pki/client.pem", "key": "pki/client.key"},
        },
        {"name": "anonymous", "address": "anon.internal:443", "identity": None},
    ]
    ledger, web_api, inline, anonymous = load_inventory(write_yaml(here, document), ENV)

    payment = ledger.identity
    assert payment is not None and payment.name == "payment" and not payment.pkcs12
    assert payment.credential.certificate == pki.client
    assert payment.cert_path == here / "pki/client.pem" and payment.key_path == here / "pki/client.key"
    assert ledger.access[0].identity is payment, "a name is the one identity, not a copy"

    web = web_api.identity
    assert web is not None and web.name == "web" and web.pkcs12 and web.password_env == P12_ENV
    assert web.credential.certificate == ids.web
    assert web is ledger.access[1].identity

    assert inline.identity is not None and inline.identity.name is None
    assert inline.identity.credential.certificate == pki.client
    assert inline.identity.credential.chain == (pki.ca,)
    assert anonymous.identity is None


@pytest.mark.parametrize(
    ("bundle", "environ", "password_env"),
    [("pki/web.p12", ENV, P12_ENV), ("pki/web-plain.p12", {}, None)],
    ids=["encrypted", "unencrypted"],
)
def test_pkcs12_identity_has_its_certificate_chain_and_key(
    here: Path, ids: IdentityPKI, bundle: str, environ: dict, password_env: str | None
) -> None:
    document = identity_document()
    document["identities"]["web"] = {"pkcs12": bundle} | ({"password_env": password_env} if password_env else {})
    document["defaults"]["identity"] = "web"
    (target,) = load_inventory(write_yaml(here, document), environ)

    web = target.identity
    assert web is not None and web.name == "web"
    assert web.pkcs12 and web.password_env == password_env
    assert web.cert_path == web.key_path == here / bundle
    assert web.credential.certificate == ids.web
    assert web.credential.chain == (ids.issuing_ca, ids.root), "the bundle's other certificates, in bundle order"
    assert web.credential.private_key.private_numbers() == ids.web_key.private_numbers()


def test_inline_pkcs12_identity_loads(here: Path, ids: IdentityPKI) -> None:
    document = identity_document()
    document["targets"][0]["identity"] = {"pkcs12": "pki/web.p12", "password_env": P12_ENV}
    (target,) = load_inventory(write_yaml(here, document), ENV)
    assert target.identity is not None and target.identity.name is None and target.identity.pkcs12
    assert target.identity.credential.certificate == ids.web


def test_issuer_is_on_every_target_with_its_chain(here: Path, ids: IdentityPKI) -> None:
    document = identity_document()
    document["targets"].append({"name": "other", "address": "other.internal:443"})
    targets = load_inventory(write_yaml(here, document), ENV)

    issuer = targets[0].issuer
    assert issuer is not None
    assert all(target.issuer is issuer for target in targets)
    assert issuer.certificate == ids.issuing_ca
    assert issuer.chain == (ids.root,), "the extra certificates in the issuer's file"
    assert issuer.private_key.private_numbers() == ids.issuing_ca_key.private_numbers()
    assert issuer.cert_path == here / "pki/issuing-ca.pem"
    assert ISSUER_PASSWORD not in repr(issuer) and "private_numbers" not in repr(issuer)

    del document["issuer"]
    assert all(target.issuer is None for target in load_inventory(write_yaml(here, document), ENV))


def test_issuer_key_takes_its_password_from_the_environment(here: Path, ids: IdentityPKI) -> None:
    document = identity_document()
    document["issuer"] = {
        "cert": "pki/issuing-ca.pem",
        "key": "pki/issuing-ca-encrypted.key",
        "password_env": ISSUER_ENV,
    }
    (target,) = load_inventory(write_yaml(here, document), ENV | {ISSUER_ENV: ISSUER_PASSWORD})
    assert target.issuer is not None
    assert target.issuer.private_key.private_numbers() == ids.issuing_ca_key.private_numbers()


def test_access_rules_parse_with_defaults(here: Path) -> None:
    document = identity_document()
    document["defaults"]["access"] = [{"identity": "web", "request": "DELETE /accounts/7", "expect": " DENY "}]
    document["targets"].append({"name": "inherits", "address": "inherits.internal:443"})
    ledger, inherits = load_inventory(write_yaml(here, document), ENV)

    payment = ledger.identity
    web = inherits.access[0].identity
    assert ledger.access == (
        AccessRule(payment, Expect.ALLOW, "POST", "/transfer"),
        AccessRule(web, Expect.DENY, "POST", "/transfer"),
        AccessRule(web, Expect.DENY, "GET", None),
    ), "a target's own access list replaces the default one"
    assert ledger.access[2].request is None, "no request: the target's own GET http_path"
    assert ledger.access[0].request == "POST /transfer" and ledger.access[0].name == "payment"
    assert inherits.access == (AccessRule(web, Expect.DENY, "DELETE", "/accounts/7"),)
    assert web.name == "web"


def test_no_access_rules_by_default(here: Path) -> None:
    document = identity_document()
    del document["targets"][0]["access"]
    (target,) = load_inventory(write_yaml(here, document), ENV)
    assert target.access == ()


@pytest.mark.parametrize(
    ("written", "normalized"),
    [
        ("spiffe://svc/ledger", "spiffe://svc/ledger"),
        ("spiffe://SVC.Example.ORG/Ledger/API", "spiffe://svc.example.org/Ledger/API"),
        ("SPIFFE://Svc/ledger", "spiffe://svc/ledger"),
        ("  spiffe://svc/ledger ", "spiffe://svc/ledger"),
        ("spiffe://svc", "spiffe://svc"),
    ],
)
def test_server_identity_is_normalized(here: Path, written: str, normalized: str) -> None:
    document = identity_document()
    document["targets"][0]["server_identity"] = written
    (target,) = load_inventory(write_yaml(here, document), ENV)
    assert target.server_identity == normalized


def test_server_identity_alone_does_not_match_the_server_name(here: Path) -> None:
    document = identity_document()
    document["targets"] += [
        {
            "name": "named",
            "address": "10.0.0.7:8443",
            "server_identity": "spiffe://svc/ledger",
            "server_name": "ledger.internal",
        },
        {"name": "plain", "address": "plain.internal:443"},
    ]
    spiffe_only, named, plain = load_inventory(write_yaml(here, document), ENV)

    assert (spiffe_only.match_server_name, spiffe_only.server_name) == (False, "ledger.internal")
    assert (named.match_server_name, named.server_name) == (True, "ledger.internal")
    assert named.server_identity == "spiffe://svc/ledger"
    assert (plain.match_server_name, plain.server_identity) == (True, None)


def test_max_cert_lifetime_days(here: Path) -> None:
    document = identity_document()
    document["targets"] += [
        {"name": "own", "address": "own.internal:443", "max_cert_lifetime_days": 30},
        {"name": "one", "address": "one.internal:443", "max_cert_lifetime_days": 1},
    ]
    ledger, own, one = load_inventory(write_yaml(here, document), ENV)
    assert (ledger.max_cert_lifetime_days, own.max_cert_lifetime_days, one.max_cert_lifetime_days) == (3, 30, 1)

    del document["defaults"]["max_cert_lifetime_days"]
    assert load_inventory(write_yaml(here, document), ENV)[0].max_cert_lifetime_days == 398


# --------------------------------------------------------------------------- bad input, through the CLI

LEDGER = "target 'ledger' (#1)"


def _rule(number: int, rule: dict):
    return _set(f"targets.0.access.{number - 1}", rule)


# (id, mutation, unset the bundle's password variable?, expected fragments besides the file)
BAD_CASES = [
    (
        "rule-unknown-identity",
        _rule(1, {"identity": "payments-svc", "expect": "allow"}),
        False,
        [LEDGER, "field 'access[1].identity'", "unknown identity 'payments-svc'", "defined: payment, web"],
    ),
    (
        "defaults-unknown-identity",
        _set("defaults.identity", "paymnet"),
        False,
        ["defaults", "field 'identity'", "unknown identity 'paymnet'", "did you mean 'payment'?"],
    ),
    (
        "target-unknown-identity",
        _set("targets.0.identity", "wbe"),
        False,
        [LEDGER, "field 'identity'", "unknown identity 'wbe'", "did you mean 'web'?"],
    ),
    (
        "pkcs12-wrong-password",
        _set("identities.web.password_env", "WRONG_P12_PASSWORD"),
        False,
        ["field 'identities.web.pkcs12'", "wrong password for pki/web.p12"],
    ),
    (
        "pkcs12-encrypted-without-password-env",
        _delete("identities.web.password_env"),
        False,
        ["field 'identities.web.pkcs12'", "pki/web.p12", "without a password", "set password_env"],
    ),
    (
        "pkcs12-password-env-unset",
        lambda document: None,
        True,
        ["field 'identities.web.password_env'", f"environment variable {P12_ENV} is not set"],
    ),
    (
        "pkcs12-password-in-password-env",
        _set("identities.web.password_env", P12_PASSWORD),
        False,
        ["field 'identities.web.password_env'", "not the password itself"],
    ),
    (
        "pkcs12-not-pkcs12-key",
        _set("identities.web", {"pkcs12": "pki/client.key"}),
        False,
        ["field 'identities.web.pkcs12'", "pki/client.key", "not PKCS#12"],
    ),
    (
        "pkcs12-not-pkcs12-with-password",
        _set("identities.web.pkcs12", "pki/client.pem"),
        False,
        ["field 'identities.web.pkcs12'", "pki/client.pem", "is PEM, not PKCS#12: give it as cert and key instead"],
    ),
    (
        "pkcs12-and-cert",
        _set("identities.web.cert", "pki/client.pem"),
        False,
        ["field 'identities.web.cert'", "either pkcs12 or cert and key, not both"],
    ),
    (
        "pkcs12-missing-file",
        _set("identities.web.pkcs12", "pki/nope.p12"),
        False,
        ["field 'identities.web.pkcs12'", "cannot read pki/nope.p12"],
    ),
    (
        "pkcs12-inline-pem",
        _set("identities.web.pkcs12", "<PEM of pki/client.key>"),
        False,
        ["field 'identities.web.pkcs12'", "must be a file path, not inline PEM or base64 data"],
    ),
    (
        # A Kubernetes secret holds the bundle as one line of base64; pasted, it must
        # not come back in the error.
        "pkcs12-base64-pasted",
        _set("identities.web.pkcs12", "<base64 of pki/web.p12>"),
        False,
        ["field 'identities.web.pkcs12'"],
    ),
    (
        "issuer-key-base64-pasted",
        _set("issuer.key", "<base64 of pki/issuing-ca.key>"),
        False,
        ["field 'issuer.key'"],
    ),
    (
        "issuer-key-mismatch",
        _set("issuer.key", "pki/other.key"),
        False,
        ["field 'issuer.key'", "pki/other.key does not match", "pki/issuing-ca.pem"],
    ),
    (
        "issuer-not-a-ca",
        _set("issuer", {"cert": "pki/client.pem", "key": "pki/client.key"}),
        False,
        ["field 'issuer.cert'", "pki/client.pem is not a CA (basicConstraints CA:FALSE)"],
    ),
    (
        "issuer-without-key-cert-sign",
        _set("issuer", {"cert": "pki/no-cert-sign-ca.pem", "key": "pki/no-cert-sign-ca.key"}),
        False,
        ["field 'issuer.cert'", "pki/no-cert-sign-ca.pem", "keyUsage without keyCertSign"],
    ),
    (
        "issuer-missing-key",
        _delete("issuer.key"),
        False,
        ["field 'issuer.key'", "missing", "needs both cert and key"],
    ),
    (
        "issuer-encrypted-key-without-password-env",
        _set("issuer.key", "pki/issuing-ca-encrypted.key"),
        False,
        ["field 'issuer.key'", "pki/issuing-ca-encrypted.key is encrypted", "set issuer.password_env"],
    ),
    (
        "issuer-unknown-key",
        _set("issuer.password", ISSUER_PASSWORD),
        False,
        ["field 'issuer'", "unknown key 'password'", "password_env"],
    ),
    *[
        (
            f"request-{label}",
            _rule(1, {"identity": "payment", "request": request, "expect": "allow"}),
            False,
            [LEDGER, "field 'access[1].request'", *reason],
        )
        for label, request, reason in [
            ("no-method", "transfer", ['must be "METHOD /path"', "'transfer'"]),
            ("lowercase-method", "post /x", ['must be "METHOD /path"', "'post /x'"]),
            (
                "path-without-slash",
                "POST transfer",
                ["the path in 'POST transfer' must start with '/'", "got 'transfer'"],
            ),
            ("path-with-space", "POST /a b", ["the path in 'POST /a b' must not contain spaces"]),
        ]
    ],
    (
        "expect-maybe",
        _rule(1, {"identity": "payment", "expect": "maybe"}),
        False,
        [LEDGER, "field 'access[1].expect'", "must be one of allow, deny", "'maybe'"],
    ),
    (
        "rule-without-expect",
        _rule(2, {"identity": "web", "request": "POST /transfer"}),
        False,
        [LEDGER, "field 'access[2].expect'", "missing"],
    ),
    (
        "rule-repeated",
        _rule(3, {"identity": "payment", "request": "POST /transfer", "expect": "allow"}),
        False,
        [LEDGER, "field 'access[3]'", "repeats rule #1"],
    ),
    (
        "rule-repeated-contradicting",
        _rule(3, {"identity": "web", "request": "POST /transfer", "expect": "allow"}),
        False,
        [LEDGER, "field 'access[3]'", "repeats rule #2"],
    ),
    (
        "rule-unknown-key",
        _rule(1, {"identity": "payment", "request": "POST /transfer", "expect": "allow", "methd": "GET"}),
        False,
        [LEDGER, "field 'access[1]'", "unknown key 'methd'", "identity, request, expect"],
    ),
    (
        "access-in-defaults-unknown-identity",
        _set("defaults.access", [{"identity": "nobody", "expect": "deny"}]),
        False,
        ["defaults", "field 'access[1].identity'", "unknown identity 'nobody'"],
    ),
    (
        "server-identity-dns-name",
        _set("targets.0.server_identity", "ledger.internal"),
        False,
        [LEDGER, "field 'server_identity'", "'ledger.internal' is not a SPIFFE ID", "goes in server_name"],
    ),
    (
        "server-identity-dot-dot",
        _set("targets.0.server_identity", "spiffe://svc/a/../b"),
        False,
        [LEDGER, "field 'server_identity'", "is not a SPIFFE ID", "'..' path segment"],
    ),
    (
        "server-identity-query",
        _set("targets.0.server_identity", "spiffe://svc/a?x"),
        False,
        [LEDGER, "field 'server_identity'", "is not a SPIFFE ID", "query"],
    ),
    (
        "server-identity-in-defaults",
        _set("defaults.server_identity", "spiffe://svc/ledger"),
        False,
        ["defaults", "unknown key 'server_identity'", "belongs on each target"],
    ),
    (
        "max-cert-lifetime-zero",
        _set("defaults.max_cert_lifetime_days", 0),
        False,
        ["defaults", "field 'max_cert_lifetime_days'", "must be 1 or more, got 0"],
    ),
    (
        "max-cert-lifetime-string",
        _set("targets.0.max_cert_lifetime_days", "3"),
        False,
        [LEDGER, "field 'max_cert_lifetime_days'", "whole number of days", "'3'"],
    ),
    (
        "identity-name-with-space",
        _chain(_delete("identities.web"), _set("identities.web api", {"pkcs12": "pki/web.p12"})),
        False,
        ["field 'identities'", "identity name 'web api'", "letters, digits"],
    ),
    (
        "identities-not-a-mapping",
        _set("identities", [{"cert": "pki/client.pem", "key": "pki/client.key"}]),
        False,
        ["field 'identities'", "must be a mapping of names"],
    ),
]


def _paste(node, directory: Path) -> None:
    """Replace "<PEM of FILE>" and "<base64 of FILE>" (a key: of its DER) with that text."""
    for key, value in node.items() if isinstance(node, dict) else enumerate(node):
        if isinstance(value, dict | list):
            _paste(value, directory)
        elif isinstance(value, str) and value.startswith("<PEM of "):
            node[key] = (directory / value.removeprefix("<PEM of ").rstrip(">")).read_text()
        elif isinstance(value, str) and value.startswith("<base64 of "):
            data = (directory / value.removeprefix("<base64 of ").rstrip(">")).read_bytes()
            if data.startswith(b"-----BEGIN"):
                data = serialization.load_pem_private_key(data, None).private_bytes(
                    serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            node[key] = base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("mutation", "unset_password", "expected"),
    [case[1:] for case in BAD_CASES],
    ids=[case[0] for case in BAD_CASES],
)
def test_bad_input_stops_the_scan_with_one_line(
    here: Path,
    pki: PKI,  # noqa: F811
    ids: IdentityPKI,
    listener: socket.socket,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    mutation,
    unset_password: bool,
    expected: list[str],
) -> None:
    host, port = listener.getsockname()
    document = copy.deepcopy(identity_document(f"{host}:{port}"))
    mutation(document)
    _paste(document, here)
    inventory = write_yaml(here, document)
    monkeypatch.setenv("WRONG_P12_PASSWORD", WRONG_P12_PASSWORD)
    monkeypatch.delenv(ISSUER_ENV, raising=False)
    if unset_password:
        monkeypatch.delenv(P12_ENV, raising=False)
    else:
        monkeypatch.setenv(P12_ENV, P12_PASSWORD)
    before = files_under(here)

    result = run_cli("scan", str(inventory), *FAST, cwd=here)

    line = assert_refused_before_scanning(result, listener, here, before, f"{inventory}: ", *expected)
    assert_no_secrets(line, pki, ids)


def test_the_good_inventory_does_scan_the_listener(
    here: Path,
    listener: socket.socket,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The control for the table above: unchanged, the inventory loads and the scan
    connects, so "no connection" there means "refused before scanning"."""
    host, port = listener.getsockname()
    inventory = write_yaml(here, identity_document(f"{host}:{port}"))
    monkeypatch.setenv(P12_ENV, P12_PASSWORD)

    result = run_cli("scan", str(inventory), *FAST, cwd=here)

    assert "mtls-audit: error" not in result.stderr, result.stderr
    assert result.returncode == 3, (result.returncode, result.stdout, result.stderr)  # nothing answered
    assert connections(listener) >= 1


# --------------------------------------------------------------------------- the ad-hoc scan


def _adhoc(listener: socket.socket, *flags: str) -> list[str]:  # noqa: F811
    host, port = listener.getsockname()
    return ["scan", f"{host}:{port}", "--ca", "pki/ca.pem", *flags, *FAST]


def test_adhoc_pkcs12_with_its_password_scans(
    here: Path,
    listener: socket.socket,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(P12_ENV, P12_PASSWORD)
    result = run_cli(*_adhoc(listener, "--pkcs12", "pki/web.p12", "--key-password-env", P12_ENV), cwd=here)
    assert "mtls-audit: error" not in result.stderr, result.stderr
    assert result.returncode == 3, (result.returncode, result.stdout, result.stderr)
    assert connections(listener) >= 1


def test_adhoc_unencrypted_pkcs12_needs_no_password(
    here: Path,
    listener: socket.socket,  # noqa: F811
) -> None:
    result = run_cli(*_adhoc(listener, "--pkcs12", "pki/web-plain.p12"), cwd=here)
    assert "mtls-audit: error" not in result.stderr, result.stderr
    assert result.returncode == 3, (result.returncode, result.stdout, result.stderr)
    assert connections(listener) >= 1


@pytest.mark.parametrize(
    ("flags", "environ", "expected"),
    [
        (
            ["--pkcs12", "pki/web.p12", "--key-password-env", "WRONG_P12_PASSWORD"],
            {"WRONG_P12_PASSWORD": WRONG_P12_PASSWORD},
            ["--pkcs12: wrong password for pki/web.p12"],
        ),
        (
            ["--pkcs12", "pki/web.p12"],
            {},
            ["--pkcs12: pki/web.p12 could not be opened without a password", "set --key-password-env"],
        ),
        (
            ["--pkcs12", "pki/web.p12", "--key-password-env", P12_ENV],
            {},
            [f"--key-password-env: environment variable {P12_ENV} is not set"],
        ),
        (
            ["--pkcs12", "pki/web.p12", "--cert", "pki/client.pem", "--key-password-env", P12_ENV],
            {P12_ENV: P12_PASSWORD},
            ["--pkcs12: give either --pkcs12 or --cert and --key, not both"],
        ),
        (
            ["--pkcs12", "pki/web.p12", "--key", "pki/client.key"],
            {},
            ["--pkcs12: give either --pkcs12 or --cert and --key, not both"],
        ),
        (
            ["--pkcs12", "pki/client.key", "--key-password-env", P12_ENV],
            {P12_ENV: P12_PASSWORD},
            ["--pkcs12: pki/client.key is PEM, not PKCS#12: give it as cert and key instead"],
        ),
    ],
    ids=["wrong-password", "no-password", "password-variable-unset", "with-cert", "with-key", "not-pkcs12"],
)
def test_adhoc_pkcs12_errors_are_one_line(
    here: Path,
    pki: PKI,  # noqa: F811
    ids: IdentityPKI,
    listener: socket.socket,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    environ: dict,
    expected: list[str],
) -> None:
    for name in (P12_ENV, "WRONG_P12_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    before = files_under(here)

    result = run_cli(*_adhoc(listener, *flags), cwd=here)

    line = assert_refused_before_scanning(result, listener, here, before, *expected)
    assert_no_secrets(line, pki, ids)


def test_pkcs12_flag_with_an_inventory_is_refused(
    here: Path,
    listener: socket.socket,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, port = listener.getsockname()
    inventory = write_yaml(here, identity_document(f"{host}:{port}"))
    monkeypatch.setenv(P12_ENV, P12_PASSWORD)
    before = files_under(here)
    result = run_cli("scan", str(inventory), "--pkcs12", "pki/web.p12", *FAST, cwd=here)
    assert_refused_before_scanning(result, listener, here, before, "--pkcs12", "not to an inventory file")


def test_load_error_helper_agrees_with_the_cli(here: Path) -> None:
    """The library raises the same line the CLI prints (minus its prefix)."""
    document = identity_document()
    document["defaults"]["identity"] = "paymnet"
    path = write_yaml(here, document)
    assert load_error(path, ENV) == (
        f"{path}: defaults: field 'identity': unknown identity 'paymnet' (defined: payment, web); did you mean 'payment'?"
    )
