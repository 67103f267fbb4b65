"""What the protocol fixtures (`apache_servers`, `grpc_servers`, `postgres_servers`)
share: the PKI (`write_protocol_pki`: the identity PKI plus a ``payment`` from a CA
no server trusts), the dataclass every fixture returns (`ProtocolServer`), and a
directory the unprivileged server user can reach when the tests run as root."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from identity_servers import PAYMENT_ID, IdentityPKI, write_identity_pki
from real_servers import SERVER_NAME, write_key, write_pem

from mtls_audit.scanner.credentials.factory import CLIENT_AUTH, Issued, common_name, issue

# The unprivileged account servers drop to when the tests run as root (CI does).
UNPRIVILEGED_USER = "nobody"


def write_protocol_pki(directory: Path) -> IdentityPKI:
    """`identity_servers.write_identity_pki` plus ``untrusted-payment.pem``/``.key``:
    the same subject (CN=payment) and SPIFFE ID as ``payment``, issued by
    ``other-ca`` (a CA no server trusts), so only the issuer tells them apart."""
    pki = write_identity_pki(directory)
    other_key = serialization.load_pem_private_key(pki.key("other-ca").read_bytes(), password=None)
    assert isinstance(other_key, ec.EllipticCurvePrivateKey)
    other_ca = Issued(x509.load_pem_x509_certificate(pki.pem("other-ca").read_bytes()), other_key)
    untrusted = issue(
        common_name("payment"),
        issuer=other_ca,
        subject_alternative_names=[x509.UniformResourceIdentifier(PAYMENT_ID)],
        extended_key_usages=[CLIENT_AUTH],
    )
    write_pem(pki.pem("untrusted-payment"), [untrusted.certificate])
    write_key(pki.key("untrusted-payment"), untrusted)
    return pki


@dataclass(frozen=True)
class ProtocolServer:
    """A running server and the files a client needs: ``server_ca`` anchors the
    server certificate (issued to ``server_name``, also valid for IP 127.0.0.1);
    ``client_cert``/``client_key`` are the valid identity (CN=payment, from the
    client CA), ``untrusted_cert``/``untrusted_key`` the same subject from a CA the
    server does not trust. Other identities: ``pki.pem(name)``/``pki.key(name)``
    (``web`` is valid but not CN=payment). ``log`` is the server's own log."""

    host: str
    port: int
    pid: int
    pki: IdentityPKI
    log: Path
    server_name: str = SERVER_NAME

    @property
    def server_ca(self) -> Path:
        return self.pki.path("server-ca.pem")

    @property
    def client_cert(self) -> Path:
        return self.pki.pem("payment")

    @property
    def client_key(self) -> Path:
        return self.pki.key("payment")

    @property
    def untrusted_cert(self) -> Path:
        return self.pki.pem("untrusted-payment")

    @property
    def untrusted_key(self) -> Path:
        return self.pki.key("untrusted-payment")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def running_as_root() -> bool:
    return os.geteuid() == 0


@contextmanager
def directory_for_unprivileged(prefix: str, *, owned: bool = False) -> Iterator[Path]:
    """A fresh directory the unprivileged server user can reach. pytest's tmp_path
    sits under a 0700 root-owned directory, so under root this is a new directory in
    the system temp dir: world-readable (``owned=False``) or owned by that user
    (``owned=True``, mode 0700). Removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        if running_as_root():
            if owned:
                account = pwd.getpwnam(UNPRIVILEGED_USER)
                os.chown(directory, account.pw_uid, account.pw_gid)
            else:
                directory.chmod(0o755)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
