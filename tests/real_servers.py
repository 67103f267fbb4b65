"""Real TLS servers nobody on this team wrote (nginx, HAProxy, `openssl s_server`),
each started from its own config in a temp dir on a free loopback port, and
stopped by PID.

Where a binary is missing the test skips with the reason; with
MTLS_AUDIT_REQUIRE_SERVERS=1 (as `.ci/run` sets) a missing binary fails instead,
so CI can never go green by skipping the very tests that matter.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mtls_audit.scanner.credentials.factory import CLIENT_AUTH, SERVER_AUTH, Issued, common_name, issue, new_key

SERVER_NAME = "mtls.test"


def require_binary(name: str) -> str:
    path = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None
    )
    if path is None:
        message = f"{name} is not installed (Debian: apt-get install {name})"
        if os.environ.get("MTLS_AUDIT_REQUIRE_SERVERS") == "1":
            pytest.fail(f"MTLS_AUDIT_REQUIRE_SERVERS=1 but {message}")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pem(certificates: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def _key(issued: Issued) -> bytes:
    return issued.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class ServerPKI:
    """Root, intermediate, server certificates, client identity and a rogue CA, on disk."""

    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name


def write_test_pki(directory: Path) -> ServerPKI:
    directory.mkdir(parents=True, exist_ok=True)
    root = issue(common_name("test root CA"), is_ca=True)
    intermediate = issue(common_name("test intermediate CA"), issuer=root, is_ca=True)
    names = [x509.DNSName(SERVER_NAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = issue(
        common_name(SERVER_NAME),
        issuer=intermediate,
        subject_alternative_names=names,
        extended_key_usages=[SERVER_AUTH],
    )
    no_san = issue(common_name(SERVER_NAME), issuer=intermediate, extended_key_usages=[SERVER_AUTH])
    client = issue(
        common_name("test-client"),
        issuer=root,
        subject_alternative_names=[x509.UniformResourceIdentifier("spiffe://mtls.test/client")],
        extended_key_usages=[CLIENT_AUTH],
    )
    rogue_ca = issue(common_name("rogue CA"), is_ca=True)
    rogue_client = issue(common_name("test-client"), issuer=rogue_ca, extended_key_usages=[CLIENT_AUTH])
    self_signed = issue(common_name("test-client"), extended_key_usages=[CLIENT_AUTH])
    files = {
        "ca.pem": _pem([root.certificate]),
        "intermediate.pem": _pem([intermediate.certificate]),
        "server-leaf.pem": _pem([server.certificate]),
        "server-fullchain.pem": _pem([server.certificate, intermediate.certificate]),
        "server.key": _key(server),
        "server-haproxy.pem": _pem([server.certificate, intermediate.certificate]) + _key(server),
        "server-leaf-haproxy.pem": _pem([server.certificate]) + _key(server),
        "nosan-fullchain.pem": _pem([no_san.certificate, intermediate.certificate]),
        "nosan.key": _key(no_san),
        "client.pem": _pem([client.certificate]),
        "client.key": _key(client),
        # For replaying the scanner's impostor probes with openssl s_client.
        "rogue-client.pem": _pem([rogue_client.certificate, rogue_ca.certificate]),
        "rogue-client.key": _key(rogue_client),
        "self-signed-client.pem": _pem([self_signed.certificate]),
        "self-signed-client.key": _key(self_signed),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
        if name.endswith((".key", "haproxy.pem")):
            (directory / name).chmod(0o600)
    return ServerPKI(directory)


class ServerProcess:
    """A server in the foreground of its own process: started, waited for, stopped by PID."""

    def __init__(self, argv: list[str], port: int, workdir: Path) -> None:
        self.port = port
        self.log = workdir / "server.log"
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT
        )
        self.pid = self.process.pid
        self._wait_for_port()

    def _wait_for_port(self, seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                pytest.fail(f"server exited with {self.process.returncode}: {self.log.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"server did not listen on {self.port} within {seconds}s: {self.log.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait()
        self._log_file.close()


# -- configurations -----------------------------------------------------------------


def nginx(
    pki: ServerPKI, workdir: Path, port: int, *, verify: str, protocols: str = "TLSv1.3", cert: str = "fullchain"
) -> list[str]:
    certificate, key = {
        "fullchain": ("server-fullchain.pem", "server.key"),
        "leaf": ("server-leaf.pem", "server.key"),
        "nosan": ("nosan-fullchain.pem", "nosan.key"),
    }[cert]
    return nginx_serving(
        workdir,
        port,
        certificate=pki.path(certificate),
        key=pki.path(key),
        client_ca=None if verify == "off" else pki.path("ca.pem"),
        verify=verify,
        protocols=protocols,
    )


def haproxy(
    pki: ServerPKI,
    workdir: Path,
    port: int,
    *,
    verify: str,
    extra: str = "",
    min_version: str | None = "TLSv1.3",
    client_ca: Path | None = None,
    http_rules: str = "",
) -> list[str]:
    """``client_ca`` replaces the PKI's ca.pem as the ca-file; ``http_rules`` are
    frontend lines (e.g. ``http-request deny if ...``) before the final 200."""
    binary = require_binary("haproxy")
    ca = f"ca-file {client_ca or pki.path('ca.pem')}"
    version = f"ssl-min-ver {min_version}" if min_version else ""
    (workdir / "haproxy.cfg").write_text(
        f"""
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend mtls
    bind 127.0.0.1:{port} ssl crt {pki.path("server-haproxy.pem")} {ca} verify {verify} {extra} {version}
    {http_rules}
    http-request return status 200 content-type text/plain string "ok"
"""
    )
    return [binary, "-db", "-f", str(workdir / "haproxy.cfg")]


def s_server(pki: ServerPKI, workdir: Path, port: int, *flags: str) -> list[str]:
    binary = require_binary("openssl")
    return [
        binary, "s_server", "-accept", f"127.0.0.1:{port}", "-www",
        "-cert", str(pki.path("server-leaf.pem")), "-key", str(pki.path("server.key")),
        "-cert_chain", str(pki.path("intermediate.pem")), "-CAfile", str(pki.path("ca.pem")),
        *flags,
    ]  # fmt: skip


# -- arbitrary chains ---------------------------------------------------------------


def issue_ca_certificate(
    subject: str,
    *,
    issuer: Issued,
    ca: bool = True,
    path_length: int | None = None,
    key_cert_sign: bool = True,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Issued:
    """An intermediate with the extensions `issue` never writes: basicConstraints
    CA:FALSE (``ca=False``), a pathLenConstraint, or a keyUsage without keyCertSign.
    Otherwise like a CA from `issue` (SKI, AKI, critical keyUsage with cRLSign)."""
    now = datetime.datetime.now(datetime.UTC)
    key = new_key()
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    builder = (
        x509.CertificateBuilder()
        .subject_name(common_name(subject))
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(days=30))
        .not_valid_after(not_after or now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.private_key.public_key()), critical=False
        )
        .add_extension(usage, critical=True)
    )
    return Issued(builder.sign(issuer.private_key, hashes.SHA256()), key)


def write_pem(path: Path, certificates: list[x509.Certificate]) -> Path:
    """Certificates as one PEM file, in the order given (leaf first for a server)."""
    path.write_bytes(_pem(certificates))
    return path


def write_key(path: Path, issued: Issued) -> Path:
    path.write_bytes(_key(issued))
    path.chmod(0o600)
    return path


def nginx_serving(
    workdir: Path,
    port: int,
    *,
    certificate: Path,
    key: Path,
    client_ca: Path | None,
    verify: str = "on",
    protocols: str = "TLSv1.3",
    http_directives: str = "",
    server_directives: str = "",
) -> list[str]:
    """nginx serving any certificate file (leaf first, then whatever chain it holds)
    and key; with ``client_ca`` it asks for client certificates (``verify``).
    ``http_directives`` go into the http block (e.g. a ``map``), ``server_directives``
    into the server block before ``location /`` (e.g. ``ssl_crl``, more locations)."""
    binary = require_binary("nginx")
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    client_auth = (
        "" if client_ca is None else f"ssl_client_certificate {client_ca};\n        ssl_verify_client {verify};"
    )
    (workdir / "nginx.conf").write_text(
        f"""
daemon off;
master_process off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {workdir}/access.log;
    client_body_temp_path {workdir}/tmp/body;
    proxy_temp_path {workdir}/tmp/proxy;
    fastcgi_temp_path {workdir}/tmp/fastcgi;
    uwsgi_temp_path {workdir}/tmp/uwsgi;
    scgi_temp_path {workdir}/tmp/scgi;
    {http_directives}
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {SERVER_NAME};
        ssl_certificate {certificate};
        ssl_certificate_key {key};
        ssl_protocols {protocols};
        {client_auth}
        {server_directives}
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""
    )
    return [binary, "-e", str(workdir / "startup.log"), "-p", str(workdir), "-c", str(workdir / "nginx.conf")]
