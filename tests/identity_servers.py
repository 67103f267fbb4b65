"""Real servers that decide *who* gets in, for the "who gets in" checks
(access-rules, client-cert-validity, unknown-identity-rejected, cert-lifetime,
san-match with a SPIFFE server identity).

A PKI on disk with a server CA and a client CA (the inventory's ``issuer``), named
client identities (one as PKCS#12, one revoked in a CRL), and servers that
authorize in different ways:

- nginx and HAProxy authorizing on the client certificate's subject (CN=payment),
  with the client CA's CRL;
- a small Go server (``go_client_auth_server/``) that checks the chain but not the
  dates or the EKU ("lax"), or verifies normally and authorizes on the SPIFFE ID;
- nginx serving a server leaf that carries only a URI SAN (Istio-style).

Servers start on free loopback ports from configs in a temp dir and are stopped by
PID (`real_servers.ServerProcess`).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from real_servers import (
    SERVER_NAME,
    ServerPKI,
    haproxy,
    nginx_serving,
    require_binary,
    write_key,
    write_pem,
)

from mtls_audit.scanner.credentials.factory import CLIENT_AUTH, SERVER_AUTH, Issued, common_name, issue, new_key

GO_SERVER_SOURCE = Path(__file__).parent / "go_client_auth_server"

LEDGER_ID = "spiffe://svc/ledger"
PAYMENT_ID = "spiffe://svc/payment"
WEB_ID = "spiffe://svc/web"

# The copies of `payment` the scanner mints from the issuer, made here too so the
# servers can be shown to behave as designed without the scanner (file stem: defect).
PAYMENT_VARIANTS = (
    "payment-control",
    "payment-expired",
    "payment-not-yet-valid",
    "payment-serverauth-only",
    "payment-cn-only",
    "payment-unknown-spiffe",
)


@dataclass(frozen=True)
class IdentityPKI(ServerPKI):
    """Everything on disk (see `write_identity_pki`); ``web_password`` unlocks web.p12."""

    web_password: str = ""

    def pem(self, name: str) -> Path:
        return self.path(f"{name}.pem")

    def key(self, name: str) -> Path:
        return self.path(f"{name}.key")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _uri(value: str) -> x509.UniformResourceIdentifier:
    return x509.UniformResourceIdentifier(value)


def _spiffe_only_leaf(issuer: Issued, spiffe_id: str) -> Issued:
    """An Istio-style workload leaf: empty subject, one URI SAN (critical, as RFC
    5280 asks when the subject is empty), serverAuth and clientAuth."""
    key = new_key()
    now = _now()
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.private_key.public_key()), critical=False
        )
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectAlternativeName([_uri(spiffe_id)]), critical=True)
        .add_extension(x509.ExtendedKeyUsage([SERVER_AUTH, CLIENT_AUTH]), critical=False)
    )
    return Issued(builder.sign(issuer.private_key, hashes.SHA256()), key)


def _crl(issuer: Issued, revoked: list[x509.Certificate]) -> x509.CertificateRevocationList:
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.certificate.subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(now + datetime.timedelta(days=30))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.private_key.public_key()), critical=False
        )
    )
    for certificate in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(certificate.serial_number)
            .revocation_date(now - datetime.timedelta(hours=1))
            .build()
        )
    return builder.sign(issuer.private_key, hashes.SHA256())


def write_identity_pki(directory: Path) -> IdentityPKI:
    """Write the PKI into ``directory``; names in `IdentityPKI` terms:

    - ``server-ca.pem``: anchors every server certificate (the inventory's ``trust``);
    - ``server.pem``/``server.key`` (+ ``server-haproxy.pem``): CN=mtls.test with
      DNS:mtls.test, IP:127.0.0.1 and URI:spiffe://svc/ledger, 365 days;
    - ``server-spiffe.pem``/``.key``: empty subject, URI:spiffe://svc/ledger only;
    - ``server-long.pem``/``.key``: like ``server.pem`` but valid for 825 days;
    - ``client-ca.pem``/``client-ca.key``: the client CA, the inventory's ``issuer``;
    - ``other-ca.pem``/``other-ca.key``: a CA no server trusts (an issuer that proves nothing);
    - ``payment``, ``web`` (also ``web.p12``, encrypted with ``web_password``),
      ``retired-payment`` (same subject and SAN as payment, revoked in ``crl.pem``);
    - the `PAYMENT_VARIANTS`: payment re-issued by the client CA with one defect
      each, for replaying the scanner's minted probes without the scanner.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = _now()
    server_ca = issue(common_name("identity test server CA"), is_ca=True)
    server_names = [
        x509.DNSName(SERVER_NAME),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        _uri(LEDGER_ID),
    ]
    server = issue(
        common_name(SERVER_NAME), issuer=server_ca, subject_alternative_names=server_names,
        extended_key_usages=[SERVER_AUTH],
    )  # fmt: skip
    long_lived = issue(
        common_name(SERVER_NAME), issuer=server_ca, subject_alternative_names=server_names,
        extended_key_usages=[SERVER_AUTH], not_after=now + datetime.timedelta(days=825),
    )  # fmt: skip
    spiffe_server = _spiffe_only_leaf(server_ca, LEDGER_ID)

    # Valid from long ago, so a copy minted with old dates still chains to a CA in date.
    client_ca = issue(
        common_name("identity test client CA"), is_ca=True,
        not_before=now - datetime.timedelta(days=3650), not_after=now + datetime.timedelta(days=3650),
    )  # fmt: skip
    other_ca = issue(common_name("identity test CA nobody trusts"), is_ca=True)

    def client(subject: str, *names: str, **options) -> Issued:
        return issue(
            common_name(subject), issuer=client_ca, subject_alternative_names=[_uri(n) for n in names],
            extended_key_usages=options.pop("eku", [CLIENT_AUTH]), **options,
        )  # fmt: skip

    payment = client("payment", PAYMENT_ID)
    web = client("web", WEB_ID)
    # Same subject and SAN as payment: only the serial (and the key) tells them apart.
    retired = client("payment", PAYMENT_ID)
    variants = {
        "payment-control": client("payment", PAYMENT_ID, key=payment.private_key),
        "payment-expired": client(
            "payment", PAYMENT_ID,
            not_before=now - datetime.timedelta(days=30), not_after=now - datetime.timedelta(days=1),
        ),
        "payment-not-yet-valid": client(
            "payment", PAYMENT_ID,
            not_before=now + datetime.timedelta(days=1), not_after=now + datetime.timedelta(days=30),
        ),
        "payment-serverauth-only": client("payment", PAYMENT_ID, eku=[SERVER_AUTH]),
        "payment-cn-only": client("payment"),
        "payment-unknown-spiffe": client("payment", "spiffe://svc/mtls-audit-test/unknown"),
    }  # fmt: skip
    assert set(variants) == set(PAYMENT_VARIANTS)

    password = "p12-" + secrets.token_urlsafe(12)
    write_pem(directory / "server-ca.pem", [server_ca.certificate])
    for name, issued in [
        ("server", server),
        ("server-long", long_lived),
        ("server-spiffe", spiffe_server),
        ("client-ca", client_ca),
        ("other-ca", other_ca),
        ("payment", payment),
        ("web", web),
        ("retired-payment", retired),
        *variants.items(),
    ]:
        write_pem(directory / f"{name}.pem", [issued.certificate])
        write_key(directory / f"{name}.key", issued)
    haproxy_pem = directory / "server-haproxy.pem"
    haproxy_pem.write_bytes((directory / "server.pem").read_bytes() + (directory / "server.key").read_bytes())
    haproxy_pem.chmod(0o600)
    p12 = directory / "web.p12"
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"web",
            web.private_key,
            web.certificate,
            [client_ca.certificate],
            serialization.BestAvailableEncryption(password.encode()),
        )
    )
    p12.chmod(0o600)
    (directory / "crl.pem").write_bytes(_crl(client_ca, [retired.certificate]).public_bytes(serialization.Encoding.PEM))
    return IdentityPKI(directory, web_password=password)


# -- servers ---------------------------------------------------------------------------

# Authorization on the subject: /transfer only for CN=payment (any method).
_SUBJECT_MAP = 'map $ssl_client_s_dn $allowed { "~(^|,)CN=payment(,|$)" 1; default 0; }'
_TRANSFER_LOCATION = 'location /transfer { if ($allowed = 0) { return 403; } return 200 "ok\\n"; }'


def nginx_subject_authz(pki: IdentityPKI, workdir: Path, port: int, *, protocols: str = "TLSv1.3") -> list[str]:
    """nginx, TLS 1.3 only (or ``protocols``), ``ssl_verify_client on`` with the client
    CA and its CRL; ``/transfer`` answers 403 unless the subject has CN=payment,
    everything else 200."""
    return nginx_serving(
        workdir,
        port,
        certificate=pki.pem("server"),
        key=pki.key("server"),
        client_ca=pki.pem("client-ca"),
        verify="on",
        protocols=protocols,
        http_directives=_SUBJECT_MAP,
        server_directives=f"ssl_crl {pki.path('crl.pem')};\n        {_TRANSFER_LOCATION}",
    )


def nginx_plain(pki: IdentityPKI, workdir: Path, port: int, *, server_cert: str) -> list[str]:
    """nginx, TLS 1.3 only, ``ssl_verify_client on`` with the client CA (no CRL, no
    authorization), serving ``server_cert`` (``server-spiffe``, ``server-long``...)."""
    return nginx_serving(
        workdir, port, certificate=pki.pem(server_cert), key=pki.key(server_cert), client_ca=pki.pem("client-ca")
    )


def haproxy_subject_authz(pki: IdentityPKI, workdir: Path, port: int) -> list[str]:
    """HAProxy, TLS 1.3 only, ``verify required`` with the client CA and its CRL;
    ``/transfer`` denied (403) unless the subject CN is payment, everything else 200."""
    return haproxy(
        pki,
        workdir,
        port,
        verify="required",
        client_ca=pki.pem("client-ca"),
        extra=f"crl-file {pki.path('crl.pem')}",
        http_rules="http-request deny if { path_beg /transfer } !{ ssl_c_s_dn(CN) -m str payment }",
    )


def build_go_server(directory: Path) -> Path:
    """``go build`` the Go server into ``directory`` (caches there too; no network)."""
    go = require_binary("go")
    directory.mkdir(parents=True, exist_ok=True)
    binary = directory / "go-client-auth-server"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(directory),
        "GOCACHE": str(directory / "gocache"),
        "GOPATH": str(directory / "gopath"),
        "GOFLAGS": "",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "GO111MODULE": "on",
    }
    completed = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=GO_SERVER_SOURCE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if completed.returncode != 0:
        pytest.fail(f"go build failed: {completed.stdout}{completed.stderr}")
    return binary


def go_server(
    binary: Path, pki: IdentityPKI, port: int, *, strict: bool = False, allow: str | None = None
) -> list[str]:
    """The Go server: lax by default (chain checked, dates and EKU ignored); ``strict``
    verifies normally; ``allow`` answers 403 unless the leaf's only URI SAN is it."""
    argv = [
        str(binary), "-listen", f"127.0.0.1:{port}",
        "-cert", str(pki.pem("server")), "-key", str(pki.key("server")), "-ca", str(pki.pem("client-ca")),
    ]  # fmt: skip
    if strict:
        argv.append("-strict")
    if allow:
        argv += ["-allow", allow]
    return argv


# -- a client that is not the scanner --------------------------------------------------


def request_as(
    pki: IdentityPKI,
    port: int,
    identity: str,
    request: str = "GET /",
    *,
    server_name: str | None = SERVER_NAME,
) -> str:
    """What a server answers a client presenting ``identity`` (a stem in ``pki``):
    ``"HTTP 200"``, ``"HTTP 403"``... or ``"refused: <TLS error>"`` when the TLS layer
    said no (in the handshake, or with an alert right after it on TLS 1.3).

    Python's ``ssl`` module, not the scanner: it shows the servers behave as built
    whatever the scanner concludes. The server is verified against server-ca.pem
    (and its name, when ``server_name`` is given)."""
    context = ssl.create_default_context(cafile=str(pki.path("server-ca.pem")))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = server_name is not None
    context.load_cert_chain(str(pki.pem(identity)), str(pki.key(identity)))
    method, path = request.split(" ", 1)
    host = server_name or "127.0.0.1"
    message = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=server_name) as tls:
                tls.sendall(message.encode())
                answer = b""
                while b"\r\n" not in answer:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
    except ssl.SSLError as error:
        return f"refused: {error.reason or error}"
    except (ConnectionResetError, BrokenPipeError) as error:
        return f"refused: {type(error).__name__}"
    status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
    if not status_line.startswith("HTTP/"):
        return f"refused: no HTTP answer ({status_line!r})"
    return "HTTP " + status_line.split(" ")[1]
