"""Inventory and credential loading: good files load right, bad ones fail with one clear line."""

from __future__ import annotations

import copy
import datetime
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import mtls_audit.scanner.inventory.credential_cache as credential_cache
from mtls_audit.scanner.credentials.files import (
    CredentialError,
    load_certificates,
    load_client_credential,
    load_private_key,
)
from mtls_audit.scanner.inventory import (
    InventoryError,
    load_inventory,
    parse_address,
    target_from_command_line,
)
from mtls_audit.scanner.model.observations import TLSVersion
from mtls_audit.scanner.model.target import AppProtocol, ClientAuthExpectation

PASSWORD = "Corr3ct-horse_battery!"
KNOWN_CHECKS = ("client-cert-required", "wrong-ca-rejected", "tls13-only", "expiry-soon")


# --------------------------------------------------------------------------- test PKI


@dataclass(frozen=True)
class PKI:
    ca: x509.Certificate
    server: x509.Certificate
    client: x509.Certificate
    client_key: ec.EllipticCurvePrivateKey
    files: dict[str, bytes]  # relative name -> contents

    def write(self, directory: Path) -> None:
        for name, data in self.files.items():
            target = directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject, subject_key, issuer, issuer_key, *, ca=False, san=None, eku=None):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in san]), critical=False
        )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key, password: bytes | None = None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


@pytest.fixture(scope="module")
def pki() -> PKI:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("Test CA", ca_key, "Test CA", ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue(
        "api.internal",
        server_key,
        "Test CA",
        ca_key,
        san=["api.internal"],
        eku=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue("scanner-client", client_key, "Test CA", ca_key, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    other_key = ec.generate_private_key(ec.SECP256R1())
    dh_key = x25519.X25519PrivateKey.generate()
    files = {
        "pki/ca.pem": _pem(ca),
        "pki/ca.der": ca.public_bytes(serialization.Encoding.DER),
        "pki/server.pem": _pem(server),
        "pki/client.pem": _pem(client) + _pem(ca),  # leaf, then its chain
        "pki/client-only.pem": _pem(client),
        "pki/client.key": _key_pem(client_key),
        "pki/client-encrypted.key": _key_pem(client_key, PASSWORD.encode()),
        "pki/other.key": _key_pem(other_key),
        "pki/x25519.key": _key_pem(dh_key),
        "pki/combined.pem": _pem(client) + _key_pem(client_key),
        "pki/empty.pem": b"",
        "pki/garbage.pem": b"this is not a certificate\n",
    }
    return PKI(ca=ca, server=server, client=client, client_key=client_key, files=files)


@pytest.fixture
def workdir(tmp_path: Path, pki: PKI) -> Path:
    pki.write(tmp_path)
    return tmp_path


def base_document() -> dict:
    return {
        "defaults": {
            "trust": "pki/ca.pem",
            "identity": {"cert": "pki/client.pem", "key": "pki/client.key"},
            "expiry_warning_days": 30,
        },
        "targets": [
            {
                "name": "payments-api",
                "address": "api.internal:8443",
                "server_name": "api.internal",
                "tags": ["staging"],
            },
            {"address": "127.0.0.1:9443", "server_name": "api.internal"},
        ],
    }


def write_yaml(directory: Path, document, name: str = "inventory.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def load_error(path: Path, environ=None, **kwargs) -> str:
    with pytest.raises(InventoryError) as excinfo:
        load_inventory(path, environ if environ is not None else {}, **kwargs)
    return str(excinfo.value)


def assert_safe(message: str, pki: PKI | None = None) -> None:
    """One line, and nothing secret in it."""
    assert "\n" not in message and "\r" not in message, message
    assert PASSWORD not in message
    assert "-----BEGIN" not in message
    assert "PRIVATE KEY" not in message
    assert "Traceback" not in message
    if pki is not None:
        key_body = pki.files["pki/client.key"].decode().splitlines()[1]
        assert key_body not in message


# --------------------------------------------------------------------------- good inventories


def test_good_inventory_loads_with_defaults(workdir: Path, pki: PKI) -> None:
    targets = load_inventory(write_yaml(workdir, base_document()), {})

    assert [t.name for t in targets] == ["payments-api", "127.0.0.1:9443"]
    first, second = targets
    assert (first.host, first.port, first.server_name) == ("api.internal", 8443, "api.internal")
    assert (second.host, second.port, second.server_name) == ("127.0.0.1", 9443, "api.internal")
    assert [t.index for t in targets] == [0, 1]
    assert first.tags == ("staging",) and second.tags == ()
    for target in targets:
        assert target.trust_anchors == (pki.ca,)
        assert target.trust_path == workdir / "pki/ca.pem"
        assert target.expiry_warning_days == 30
        assert target.min_tls_version is TLSVersion.TLS1_3
        assert target.client_auth is ClientAuthExpectation.REQUIRED
        assert target.app_protocol is AppProtocol.HTTP
        assert target.http_path == "/"
        assert target.disabled_checks == frozenset()
        identity = target.identity
        assert identity is not None
        assert identity.cert_path == workdir / "pki/client.pem"
        assert identity.key_path == workdir / "pki/client.key"
        assert identity.credential.certificate == pki.client
        assert identity.credential.chain == (pki.ca,)
        assert identity.credential.private_key.private_numbers() == pki.client_key.private_numbers()


def test_per_target_settings_override_defaults(workdir: Path, pki: PKI) -> None:
    document = base_document()
    document["defaults"].update({"min_tls_version": "1.2", "tags": ["prod"], "disabled_checks": ["expiry-soon"]})
    document["targets"][1].update(
        {
            "trust": "pki/ca.der",
            "identity": {"cert": "pki/combined.pem", "key": "pki/combined.pem"},
            "expiry_warning_days": 7,
            "min_tls_version": "TLSv1.3",
            "client_auth": "none",
            "probe": "none",
            "http_path": "/healthz?full=1",
            "disabled_checks": ["tls13-only", "wrong-ca-rejected"],
            "tags": ["edge", "v6"],
        }
    )
    document["targets"].append({"address": "[::1]:8443", "identity": None})
    first, second, third = load_inventory(write_yaml(workdir, document), {}, known_checks=KNOWN_CHECKS)

    assert first.min_tls_version is TLSVersion.TLS1_2
    assert first.tags == ("staging",)  # the target's own list replaces the default
    assert first.disabled_checks == frozenset({"expiry-soon"})
    assert first.identity is not None and first.identity.credential.certificate == pki.client

    assert second.trust_path == workdir / "pki/ca.der"
    assert second.trust_anchors == (pki.ca,)
    assert second.identity.cert_path == workdir / "pki/combined.pem"
    assert second.identity.credential.chain == ()
    assert second.expiry_warning_days == 7
    assert second.min_tls_version is TLSVersion.TLS1_3
    assert second.client_auth is ClientAuthExpectation.NONE
    assert second.app_protocol is AppProtocol.NONE
    assert second.http_path == "/healthz?full=1"
    assert second.disabled_checks == frozenset({"tls13-only", "wrong-ca-rejected"})
    assert second.tags == ("edge", "v6")

    assert (third.host, third.port, third.server_name) == ("::1", 8443, "::1")
    assert third.name == "[::1]:8443" and third.address == "[::1]:8443"
    assert third.identity is None  # explicitly none, despite the default
    assert third.trust_anchors == (pki.ca,)


def test_unquoted_yaml_version_number_is_accepted(workdir: Path) -> None:
    path = workdir / "inventory.yaml"
    path.write_text(
        "defaults:\n  trust: pki/ca.pem\n  min_tls_version: 1.2\n"
        "targets:\n  - address: api.internal:443\n    min_tls_version: 1.0\n"
    )
    (target,) = load_inventory(path, {})
    assert target.min_tls_version is TLSVersion.TLS1_0
    assert target.identity is None


def test_json_inventory_loads(workdir: Path, pki: PKI) -> None:
    path = workdir / "inventory.json"
    path.write_text(json.dumps(base_document(), indent=2))
    targets = load_inventory(path, {})
    assert [t.name for t in targets] == ["payments-api", "127.0.0.1:9443"]
    assert targets[0].identity.credential.certificate == pki.client


def test_paths_resolve_against_the_inventory_directory(
    tmp_path: Path, pki: PKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "deploy" / "audit"
    config.mkdir(parents=True)
    pki.write(config)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    targets = load_inventory(write_yaml(config, base_document()), {})
    assert targets[0].trust_path == config / "pki/ca.pem"
    assert targets[0].identity.key_path == config / "pki/client.key"

    # A relative inventory path works too: the PKI is next to the inventory, not the cwd.
    relative = Path("../deploy/audit/inventory.yaml")
    targets = load_inventory(relative, {})
    assert targets[0].trust_path.resolve() == (config / "pki/ca.pem").resolve()
    assert targets[0].trust_path.is_absolute()
    assert targets[0].trust_anchors == (pki.ca,)


def test_encrypted_key_takes_its_password_from_the_environment(workdir: Path, pki: PKI) -> None:
    document = base_document()
    document["defaults"]["identity"] = {
        "cert": "pki/client.pem",
        "key": "pki/client-encrypted.key",
        "password_env": "CLIENT_KEY_PASSWORD",
    }
    targets = load_inventory(write_yaml(workdir, document), {"CLIENT_KEY_PASSWORD": PASSWORD})
    key = targets[0].identity.credential.private_key
    assert key.private_numbers() == pki.client_key.private_numbers()


def test_each_file_is_loaded_once(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = credential_cache.load_certificates

    def counting(path, **kwargs):
        calls.append(Path(path))
        return real(path, **kwargs)

    key_calls: list[Path] = []
    real_key = credential_cache.load_private_key

    def counting_key(path, password, **kwargs):
        key_calls.append(Path(path))
        return real_key(path, password, **kwargs)

    monkeypatch.setattr(credential_cache, "load_certificates", counting)
    monkeypatch.setattr(credential_cache, "load_private_key", counting_key)
    document = base_document()
    document["targets"] = [{"address": f"10.0.{i // 250}.{i % 250}:443"} for i in range(1000)]
    # The same CA reached through a different spelling of the path is still one file.
    document["targets"][0]["trust"] = "pki/../pki/ca.pem"

    targets = load_inventory(write_yaml(workdir, document), {})
    assert len(targets) == 1000
    assert sorted(p.name for p in calls) == ["ca.pem", "client.pem"]
    assert [p.name for p in key_calls] == ["client.key"]
    assert all(t.identity is targets[0].identity for t in targets)
    assert [t.index for t in targets] == list(range(1000))


# --------------------------------------------------------------------------- bad inventories


def _set(path: str, value):
    """A mutation that sets document[a][b]... = value (ints index lists)."""

    def mutate(document):
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node = document
        for part in parents:
            node = node[part]
        node[last] = value

    return mutate


def _delete(path: str):
    def mutate(document):
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node = document
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


def _chain(*mutations):
    def mutate(document):
        for mutation in mutations:
            mutation(document)

    return mutate


T1 = "target 'payments-api' (#1)"
T2 = "target '127.0.0.1:9443' (#2)"
ENCRYPTED_IDENTITY = {
    "cert": "pki/client.pem",
    "key": "pki/client-encrypted.key",
    "password_env": "CLIENT_KEY_PASSWORD",
}

# (id, mutation, environ, expected fragments: where, field, reason)
BAD_CASES = [
    (
        "unknown-top-level-key",
        _set("targtes", []),
        {},
        ["unknown key 'targtes'", "top level", "did you mean 'targets'"],
    ),
    (
        "unknown-defaults-key",
        _set("defaults.trsut", "x"),
        {},
        ["unknown key 'trsut' in defaults", "expected one of:", "trust"],
    ),
    (
        "target-only-key-in-defaults",
        _set("defaults.address", "x:1"),
        {},
        ["unknown key 'address' in defaults", "belongs on each target"],
    ),
    ("unknown-target-key", _set("targets.0.adress", "x:1"), {}, [T1, "unknown key 'adress'", "did you mean 'address'"]),
    ("port-as-own-key", _set("targets.0.port", 443), {}, [T1, "unknown key 'port'", "address: 'host:port'"]),
    (
        "unknown-identity-key",
        _set("targets.1.identity", {"cert": "pki/client.pem", "key": "pki/client.key", "kye": 1}),
        {},
        [T2, "field 'identity'", "unknown key 'kye'"],
    ),
    (
        "password-in-identity",
        _set("defaults.identity.password", PASSWORD),
        {},
        ["defaults", "field 'identity'", "unknown key 'password'", "password_env"],
    ),
    ("missing-address", _delete("targets.0.address"), {}, [T1, "field 'address'", "missing"]),
    (
        "missing-address-unnamed",
        _chain(_delete("targets.1.address"), _delete("targets.1.server_name")),
        {},
        ["target #2", "field 'address'", "missing"],
    ),
    ("missing-trust-everywhere", _delete("defaults.trust"), {}, [T1, "field 'trust'", "missing"]),
    (
        "identity-cert-without-key",
        _delete("defaults.identity.key"),
        {},
        ["defaults", "field 'identity.key'", "missing", "only cert is set"],
    ),
    (
        "identity-key-without-cert",
        _set("targets.0.identity", {"key": "pki/client.key"}),
        {},
        [T1, "field 'identity.cert'", "missing"],
    ),
    (
        "identity-wrong-type",
        _set("targets.0.identity", ["pki/client.pem"]),
        {},
        [T1, "field 'identity'", "must be a mapping"],
    ),
    (
        "expiry-wrong-type",
        _set("targets.0.expiry_warning_days", "30"),
        {},
        [T1, "field 'expiry_warning_days'", "whole number"],
    ),
    (
        "expiry-boolean",
        _set("defaults.expiry_warning_days", True),
        {},
        ["defaults", "field 'expiry_warning_days'", "boolean"],
    ),
    (
        "expiry-negative",
        _set("targets.1.expiry_warning_days", -1),
        {},
        [T2, "field 'expiry_warning_days'", "0 or more"],
    ),
    ("bad-tls-version", _set("targets.0.min_tls_version", "1.4"), {}, [T1, "field 'min_tls_version'", "'1.4'"]),
    ("bad-client-auth", _set("targets.0.client_auth", "optional"), {}, [T1, "field 'client_auth'", "required, none"]),
    (
        "client-auth-yaml-boolean",
        _set("defaults.client_auth", False),
        {},
        ["defaults", "field 'client_auth'", "boolean"],
    ),
    ("bad-probe", _set("targets.0.probe", "smtp"), {}, [T1, "field 'probe'", "http, grpc, postgres, none"]),
    (
        "http-path-no-slash",
        _set("targets.0.http_path", "healthz"),
        {},
        [T1, "field 'http_path'", "must start with '/'"],
    ),
    ("http-path-space", _set("targets.0.http_path", "/a b"), {}, [T1, "field 'http_path'", "spaces"]),
    (
        "disabled-checks-not-list",
        _set("targets.0.disabled_checks", "tls13-only"),
        {},
        [T1, "field 'disabled_checks'", "must be a list"],
    ),
    (
        "disabled-checks-unknown",
        _set("targets.0.disabled_checks", ["tls13-onyl"]),
        {},
        [T1, "field 'disabled_checks'", "unknown check id 'tls13-onyl'", "did you mean 'tls13-only'"],
    ),
    ("tags-not-list", _set("targets.0.tags", "staging"), {}, [T1, "field 'tags'", "must be a list"]),
    ("tags-not-strings", _set("targets.0.tags", ["ok", 3]), {}, [T1, "field 'tags'", "integer 3"]),
    ("name-wrong-type", _set("targets.0.name", 42), {}, ["target #1", "field 'name'", "non-empty string"]),
    (
        "server-name-wrong-type",
        _set("targets.0.server_name", ["a"]),
        {},
        [T1, "field 'server_name'", "non-empty host name"],
    ),
    (
        "trust-missing-file",
        _set("defaults.trust", "pki/nope.pem"),
        {},
        ["defaults", "field 'trust'", "cannot read pki/nope.pem", "No such file"],
    ),
    ("trust-is-directory", _set("targets.0.trust", "pki"), {}, [T1, "field 'trust'", "cannot read pki"]),
    ("trust-empty", _set("targets.0.trust", "pki/empty.pem"), {}, [T1, "field 'trust'", "pki/empty.pem is empty"]),
    (
        "trust-garbage",
        _set("targets.0.trust", "pki/garbage.pem"),
        {},
        [T1, "field 'trust'", "pki/garbage.pem holds no PEM or DER certificate"],
    ),
    (
        "trust-is-a-key",
        _set("targets.0.trust", "pki/client.key"),
        {},
        [T1, "field 'trust'", "holds a private key, not a certificate"],
    ),
    (
        "trust-wrong-type",
        _set("defaults.trust", ["pki/ca.pem"]),
        {},
        ["defaults", "field 'trust'", "must be a file path"],
    ),
    (
        "cert-missing-file",
        _set("targets.0.identity", {"cert": "pki/client-nope.pem", "key": "pki/client.key"}),
        {},
        [T1, "field 'identity.cert'", "cannot read pki/client-nope.pem"],
    ),
    (
        "cert-is-a-key",
        _set("defaults.identity.cert", "pki/client.key"),
        {},
        ["defaults", "field 'identity.cert'", "not a certificate"],
    ),
    (
        "key-missing-file",
        _set("defaults.identity.key", "pki/missing.key"),
        {},
        ["defaults", "field 'identity.key'", "cannot read pki/missing.key"],
    ),
    (
        "key-is-a-cert",
        _set("defaults.identity.key", "pki/server.pem"),
        {},
        ["defaults", "field 'identity.key'", "holds a certificate, not a private key"],
    ),
    (
        "key-mismatch",
        _set("targets.1.identity", {"cert": "pki/client.pem", "key": "pki/other.key"}),
        {},
        [T2, "field 'identity.key'", "key pki/other.key does not match certificate pki/client.pem"],
    ),
    (
        "key-unsupported-type",
        _set("defaults.identity.key", "pki/x25519.key"),
        {},
        ["defaults", "field 'identity.key'", "key of type X25519", "cannot sign"],
    ),
    (
        "key-inline-pem",
        _set("defaults.identity.key", "PEM"),
        {},
        ["defaults", "field 'identity.key'", "not inline PEM"],
    ),
    (
        "encrypted-key-no-password-env",
        _set("targets.0.identity", {"cert": "pki/client.pem", "key": "pki/client-encrypted.key"}),
        {},
        [T1, "field 'identity.key'", "pki/client-encrypted.key is encrypted; set password_env"],
    ),
    (
        "encrypted-key-env-unset",
        _set("targets.0.identity", ENCRYPTED_IDENTITY),
        {},
        [T1, "field 'identity.password_env'", "environment variable CLIENT_KEY_PASSWORD is not set"],
    ),
    (
        "encrypted-key-wrong-password",
        _set("targets.0.identity", ENCRYPTED_IDENTITY),
        {"CLIENT_KEY_PASSWORD": PASSWORD + "x"},
        [T1, "field 'identity.key'", "wrong password for pki/client-encrypted.key"],
    ),
    (
        "encrypted-key-empty-password",
        _set("targets.0.identity", ENCRYPTED_IDENTITY),
        {"CLIENT_KEY_PASSWORD": ""},
        [T1, "field 'identity.key'", "password given is empty"],
    ),
    (
        "password-in-password-env",
        _set("targets.0.identity", {**ENCRYPTED_IDENTITY, "password_env": PASSWORD}),
        {},
        [T1, "field 'identity.password_env'", "not the password itself"],
    ),
    (
        "password-like-name-unset",
        _set("targets.0.identity", {**ENCRYPTED_IDENTITY, "password_env": "hunter2"}),
        {},
        [T1, "field 'identity.password_env'", "is not set"],
    ),
    ("address-no-port", _set("targets.0.address", "api.internal"), {}, [T1, "field 'address'", "no port"]),
    (
        "address-port-zero",
        _set("targets.0.address", "api.internal:0"),
        {},
        [T1, "field 'address'", "port 0 is not in 1-65535"],
    ),
    (
        "address-port-too-big",
        _set("targets.0.address", "api.internal:65536"),
        {},
        [T1, "field 'address'", "not in 1-65535"],
    ),
    (
        "address-port-not-number",
        _set("targets.0.address", "api.internal:https"),
        {},
        [T1, "field 'address'", "not a number"],
    ),
    ("address-empty-host", _set("targets.0.address", ":8443"), {}, [T1, "field 'address'", "empty host"]),
    ("address-unbracketed-ipv6", _set("targets.0.address", "::1:8443"), {}, [T1, "field 'address'", "needs brackets"]),
    (
        "address-unclosed-bracket",
        _set("targets.0.address", "[::1:8443"),
        {},
        [T1, "field 'address'", "without a closing ']'"],
    ),
    (
        "address-bracketed-ipv4",
        _set("targets.0.address", "[10.0.0.1]:8443"),
        {},
        [T1, "field 'address'", "only for IPv6"],
    ),
    (
        "address-url",
        _set("targets.0.address", "https://api.internal:8443/"),
        {},
        [T1, "field 'address'", "looks like a URL"],
    ),
    ("address-wrong-type", _set("targets.0.address", 8443), {}, [T1, "field 'address'", "expected a string"]),
    (
        "duplicate-name",
        _set("targets.1.name", "payments-api"),
        {},
        ["target 'payments-api' (#2)", "field 'name'", "duplicate name", "#1"],
    ),
    (
        "duplicate-endpoint",
        _chain(_set("targets.1.address", "API.internal:8443"), _set("targets.1.name", "other")),
        {},
        ["target 'other' (#2)", "field 'address'", "duplicate of target 'payments-api' (#1)"],
    ),
    (
        "duplicate-default-name",
        _chain(
            _set("targets.0.address", "127.0.0.1:9443"),
            _delete("targets.0.name"),
            _set("targets.0.server_name", "other.internal"),
        ),
        {},
        [T2, "field 'name'", "set a distinct name"],
    ),
    ("targets-empty", _set("targets", []), {}, ["'targets' is empty"]),
    ("targets-missing", _delete("targets"), {}, ["missing key 'targets'"]),
    ("targets-not-list", _set("targets", {"address": "a:1"}), {}, ["'targets' must be a list"]),
    ("target-not-mapping", _set("targets.1", "127.0.0.1:9443"), {}, ["target #2", "expected a mapping"]),
    ("defaults-not-mapping", _set("defaults", ["x"]), {}, ["'defaults' must be a mapping"]),
]


@pytest.mark.parametrize(
    ("mutation", "environ", "expected"),
    [case[1:] for case in BAD_CASES],
    ids=[case[0] for case in BAD_CASES],
)
def test_bad_inventory_is_one_clear_line(workdir: Path, pki: PKI, mutation, environ, expected) -> None:
    document = copy.deepcopy(base_document())
    mutation(document)
    defaults = document.get("defaults")
    identity = defaults.get("identity") if isinstance(defaults, dict) else None
    if isinstance(identity, dict) and identity.get("key") == "PEM":
        document["defaults"]["identity"]["key"] = pki.files["pki/client.key"].decode()
    path = write_yaml(workdir, document)

    message = load_error(path, environ, known_checks=KNOWN_CHECKS)

    assert message.startswith(f"{path}: "), message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert_safe(message, pki)


def test_error_carries_structured_fields(workdir: Path) -> None:
    document = base_document()
    document["targets"][0]["expiry_warning_days"] = -3
    with pytest.raises(InventoryError) as excinfo:
        load_inventory(write_yaml(workdir, document), {})
    assert excinfo.value.target == "payments-api"
    assert excinfo.value.field == "expiry_warning_days"
    assert str(excinfo.value) == (
        f"{workdir / 'inventory.yaml'}: target 'payments-api' (#1): "
        "field 'expiry_warning_days': must be 0 or more, got -3"
    )


def test_unknown_checks_pass_when_no_registry_is_given(workdir: Path) -> None:
    document = base_document()
    document["targets"][0]["disabled_checks"] = ["some-plugin-check"]
    targets = load_inventory(write_yaml(workdir, document), {})
    assert targets[0].disabled_checks == frozenset({"some-plugin-check"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("defaults:\n  trust: pki/ca.pem\ntargets:\n  - address: [::1]:8443\n", "line 4"),
        ("defaults:\n  trust: pki/ca.pem\n targets: []\n", "line 3"),
        ("targets:\n  - address: 'a:1\n", "line"),
        ("defaults:\n  trust: a\n  trust: b\ntargets: []\n", "duplicate key 'trust'"),
    ],
)
def test_yaml_syntax_error_names_file_and_line(workdir: Path, text: str, expected: str) -> None:
    path = workdir / "inventory.yaml"
    path.write_text(text)
    message = load_error(path)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert_safe(message)


def test_json_syntax_error_names_line(workdir: Path) -> None:
    path = workdir / "inventory.json"
    path.write_text('{\n  "targets": [\n    {"address": "a:1",}\n  ]\n}\n')
    message = load_error(path)
    assert message.startswith(f"{path}: JSON syntax error at line 3"), message


def test_json_duplicate_key_is_an_error(workdir: Path) -> None:
    path = workdir / "inventory.json"
    path.write_text('{"targets": [{"address": "a:1", "address": "b:2"}]}')
    assert "duplicate key 'address'" in load_error(path)


def test_unreadable_and_empty_inventory(workdir: Path) -> None:
    missing = workdir / "nope.yaml"
    assert load_error(missing) == f"cannot read {missing}: No such file or directory"
    empty = workdir / "empty.yaml"
    empty.write_text("# nothing\n")
    assert load_error(empty).startswith(f"{empty}: is empty")
    scalar = workdir / "scalar.yaml"
    scalar.write_text("just text\n")
    assert "expected a mapping" in load_error(scalar)


def test_quoting_hint_for_unquoted_ipv6(workdir: Path) -> None:
    path = workdir / "inventory.yaml"
    path.write_text("defaults:\n  trust: pki/ca.pem\ntargets:\n  - address: [::1]:8443\n")
    message = load_error(path)
    assert "line 4" in message and "quote IPv6 addresses" in message
    # YAML that does parse, to a list: the address field says what went wrong.
    path.write_text("defaults:\n  trust: pki/ca.pem\ntargets:\n  - address: [a, b]\n")
    message = load_error(path)
    assert "target #1: field 'address': expected a string" in message
    assert "quote IPv6 addresses" in message


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("api.internal:8443", ("api.internal", 8443)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("[::1]:65535", ("::1", 65535)),
        ("[2001:db8::5]:443", ("2001:db8::5", 443)),
        ("host_name-1.example.:443", ("host_name-1.example.", 443)),
    ],
)
def test_parse_address_accepts(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "host",
        "host:",
        ":443",
        "host:0",
        "host:65536",
        "host:-1",
        "host:4x3",
        "::1",
        "::1:443",
        "[::1]",
        "[::1]443",
        "[::1:443",
        "::1]:443",
        "[]:443",
        "[host]:443",
        "ho st:443",
        " host:443",
        "a..b:443",
        "http://host:443",
        "host:443/path",
        "host:१२",
    ],
)
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


# --------------------------------------------------------------------------- command line


def test_target_from_command_line(workdir: Path, pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    target = target_from_command_line(
        "api.internal:8443",
        ca=Path("pki/ca.pem"),
        cert=Path("pki/client.pem"),
        key=Path("pki/client-encrypted.key"),
        server_name=None,
        password_env="KEY_PW",
        environ={"KEY_PW": PASSWORD},
    )
    assert (target.name, target.host, target.port) == ("api.internal:8443", "api.internal", 8443)
    assert target.server_name == "api.internal"
    assert target.trust_anchors == (pki.ca,)
    assert target.trust_path == workdir / "pki/ca.pem"
    assert target.identity.credential.certificate == pki.client
    assert target.identity.key_path == workdir / "pki/client-encrypted.key"

    bare = target_from_command_line(
        "[::1]:9443", ca=Path("pki/ca.pem"), cert=None, key=None, server_name="api.internal"
    )
    assert (bare.host, bare.server_name, bare.identity) == ("::1", "api.internal", None)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"address": "api.internal"}, "HOST:PORT: 'api.internal' has no port"),
        ({"ca": Path("pki/nope.pem")}, "--ca: cannot read pki/nope.pem: No such file or directory"),
        ({"cert": Path("client.pem")}, "--cert: cannot read client.pem: No such file or directory"),
        ({"key": None}, "--key: missing: --cert needs --key too"),
        ({"cert": None}, "--cert: missing: --key needs --cert too"),
        ({"key": Path("pki/other.key")}, "--key: key pki/other.key does not match certificate pki/client.pem"),
        (
            {"key": Path("pki/client-encrypted.key")},
            "--key: pki/client-encrypted.key is encrypted; set --key-password-env",
        ),
        (
            {"key": Path("pki/client-encrypted.key"), "password_env": "KEY_PW", "environ": {"KEY_PW": "nope"}},
            "--key: wrong password for pki/client-encrypted.key",
        ),
        ({"password_env": "KEY_PW"}, "--key-password-env: environment variable KEY_PW is not set"),
        ({"server_name": "a b"}, "--server-name: 'a b' is not a host name"),
    ],
)
def test_command_line_errors_name_the_flag(
    workdir: Path, pki: PKI, monkeypatch: pytest.MonkeyPatch, overrides: dict, expected: str
) -> None:
    monkeypatch.chdir(workdir)
    arguments = {
        "ca": Path("pki/ca.pem"),
        "cert": Path("pki/client.pem"),
        "key": Path("pki/client.key"),
        "server_name": None,
        "password_env": None,
        "environ": {},
    }
    address = overrides.pop("address", "api.internal:8443")
    arguments.update(overrides)
    with pytest.raises(InventoryError) as excinfo:
        target_from_command_line(address, **arguments)
    message = str(excinfo.value)
    assert message.startswith(expected), message
    assert_safe(message, pki)


# --------------------------------------------------------------------------- credentials


def test_load_certificates_pem_bundle_and_der(workdir: Path, pki: PKI) -> None:
    assert load_certificates(workdir / "pki/client.pem") == (pki.client, pki.ca)
    assert load_certificates(workdir / "pki/ca.der") == (pki.ca,)


def test_load_certificates_errors(workdir: Path) -> None:
    with pytest.raises(CredentialError, match=r"^cannot read .*nope\.pem: No such file"):
        load_certificates(workdir / "nope.pem")
    with pytest.raises(CredentialError, match=r"^ca\.pem holds no PEM or DER certificate$"):
        load_certificates(workdir / "pki/garbage.pem", display="ca.pem")


def test_load_private_key_cases(workdir: Path, pki: PKI) -> None:
    key = load_private_key(workdir / "pki/client-encrypted.key", PASSWORD.encode())
    assert key.private_numbers() == pki.client_key.private_numbers()
    # A password for an unencrypted key is harmless.
    assert load_private_key(workdir / "pki/client.key", b"unused").private_numbers() == (
        pki.client_key.private_numbers()
    )
    der = workdir / "client.der"
    der.write_bytes(
        pki.client_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert load_private_key(der, None).private_numbers() == pki.client_key.private_numbers()

    with pytest.raises(CredentialError, match="is encrypted; set password_env") as excinfo:
        load_private_key(workdir / "pki/client-encrypted.key", None)
    assert_safe(str(excinfo.value), pki)
    with pytest.raises(CredentialError, match="^wrong password for ") as excinfo:
        load_private_key(workdir / "pki/client-encrypted.key", b"not-" + PASSWORD.encode())
    assert_safe(str(excinfo.value), pki)
    with pytest.raises(CredentialError, match="key of type X25519, which cannot sign"):
        load_private_key(workdir / "pki/x25519.key", None)
    with pytest.raises(CredentialError, match="holds no PEM or DER private key"):
        load_private_key(workdir / "pki/garbage.pem", None)


def test_load_client_credential(workdir: Path, pki: PKI) -> None:
    credential = load_client_credential(workdir / "pki/client.pem", workdir / "pki/client.key", None)
    assert credential.certificate == pki.client
    assert credential.chain == (pki.ca,)
    with pytest.raises(CredentialError, match=r"^key .*other\.key does not match certificate"):
        load_client_credential(workdir / "pki/client.pem", workdir / "pki/other.key", None)
