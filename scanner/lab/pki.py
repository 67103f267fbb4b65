"""The lab's throwaway PKI: a root, an intermediate that issues server certificates,
and a client identity issued by the root."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtls_audit.scanner.credentials.factory import CLIENT_AUTH, SERVER_AUTH, Issued, common_name, issue

LAB_DOMAIN = "mtls-lab.test"  # RFC 6761: .test never resolves outside


@dataclass(frozen=True)
class LabPKI:
    root: Issued
    server_intermediate: Issued
    client: Issued

    def server_leaf(
        self,
        name: str,
        *,
        dns_names: tuple[str, ...] | None = None,
        valid_for: datetime.timedelta = datetime.timedelta(days=365),
    ) -> Issued:
        """A server certificate from the intermediate; SAN defaults to ``name`` and 127.0.0.1."""
        now = datetime.datetime.now(datetime.UTC)
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in (dns_names if dns_names is not None else (name,))]
        if dns_names is None:
            names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        return issue(
            common_name(name),
            issuer=self.server_intermediate,
            subject_alternative_names=names,
            extended_key_usages=[SERVER_AUTH],
            not_after=now + valid_for,
        )

    def server_chain(self, leaf: Issued) -> tuple[x509.Certificate, ...]:
        return (leaf.certificate, self.server_intermediate.certificate)

    def write(self, directory: Path) -> dict[str, Path]:
        """Write the files an inventory needs: the CA bundle and the client identity.

        The client key is a throwaway made for this lab; it is written with 0600."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = {
            "ca": directory / "ca.pem",
            "client_cert": directory / "client.pem",
            "client_key": directory / "client.key",
        }
        paths["ca"].write_bytes(self.root.certificate.public_bytes(serialization.Encoding.PEM))
        paths["client_cert"].write_bytes(self.client.certificate.public_bytes(serialization.Encoding.PEM))
        key_bytes = self.client.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        paths["client_key"].touch(mode=0o600)
        paths["client_key"].chmod(0o600)
        paths["client_key"].write_bytes(key_bytes)
        return paths


def create_lab_pki() -> LabPKI:
    root = issue(common_name("mtls-audit lab root CA"), is_ca=True)
    intermediate = issue(common_name("mtls-audit lab server intermediate CA"), issuer=root, is_ca=True)
    client = issue(
        common_name("lab-client"),
        issuer=root,
        subject_alternative_names=[x509.UniformResourceIdentifier(f"spiffe://{LAB_DOMAIN}/lab-client")],
        extended_key_usages=[CLIENT_AUTH],
    )
    return LabPKI(root=root, server_intermediate=intermediate, client=client)
