"""The lab's throwaway PKI: a root, an intermediate that issues server certificates,
and two client identities issued by the root (``lab-client``, and ``web`` as a
PKCS#12 bundle). The root doubles as the inventory's ``issuer``: a test CA the lab
servers trust, from which the scanner mints its defective copies."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from mtls_audit.scanner.credentials.factory import CLIENT_AUTH, SERVER_AUTH, Issued, common_name, issue

LAB_DOMAIN = "mtls-lab.test"  # RFC 6761: .test never resolves outside


@dataclass(frozen=True)
class LabPKI:
    root: Issued
    server_intermediate: Issued
    client: Issued
    web: Issued

    def server_leaf(
        self,
        name: str,
        *,
        dns_names: tuple[str, ...] | None = None,
        valid_for: datetime.timedelta = datetime.timedelta(days=365),
        spiffe_id: str | None = None,
    ) -> Issued:
        """A server certificate from the intermediate; SAN defaults to ``name`` and
        127.0.0.1, plus ``spiffe_id`` as a URI SAN if given."""
        now = datetime.datetime.now(datetime.UTC)
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in (dns_names if dns_names is not None else (name,))]
        if dns_names is None:
            names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        if spiffe_id is not None:
            names.append(x509.UniformResourceIdentifier(spiffe_id))
        return issue(
            common_name(name),
            issuer=self.server_intermediate,
            subject_alternative_names=names,
            extended_key_usages=[SERVER_AUTH],
            not_after=now + valid_for,
        )

    def server_chain(self, leaf: Issued) -> tuple[x509.Certificate, ...]:
        return (leaf.certificate, self.server_intermediate.certificate)

    def write(self, directory: Path, p12_password: bytes = b"lab") -> dict[str, Path]:
        """Write the files an inventory needs: the CA bundle, the client identities
        and the issuer (the root's certificate and key).

        Every key is a throwaway made for this lab; key files are written with 0600."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = {
            "ca": directory / "ca.pem",
            "client_cert": directory / "client.pem",
            "client_key": directory / "client.key",
            "issuer_key": directory / "issuer.key",
            "web_p12": directory / "web.p12",
        }
        paths["ca"].write_bytes(self.root.certificate.public_bytes(serialization.Encoding.PEM))
        paths["client_cert"].write_bytes(self.client.certificate.public_bytes(serialization.Encoding.PEM))
        _write_secret(paths["client_key"], _pem_key(self.client))
        _write_secret(paths["issuer_key"], _pem_key(self.root))
        bundle = pkcs12.serialize_key_and_certificates(
            b"web",
            self.web.private_key,
            self.web.certificate,
            None,
            serialization.BestAvailableEncryption(p12_password),
        )
        _write_secret(paths["web_p12"], bundle)
        return paths


def _pem_key(issued: Issued) -> bytes:
    return issued.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_secret(path: Path, data: bytes) -> None:
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_bytes(data)


def create_lab_pki() -> LabPKI:
    root = issue(common_name("mtls-audit lab root CA"), is_ca=True)
    intermediate = issue(common_name("mtls-audit lab server intermediate CA"), issuer=root, is_ca=True)
    client = issue(
        common_name("lab-client"),
        issuer=root,
        subject_alternative_names=[x509.UniformResourceIdentifier(f"spiffe://{LAB_DOMAIN}/lab-client")],
        extended_key_usages=[CLIENT_AUTH],
    )
    web = issue(
        common_name("web"),
        issuer=root,
        subject_alternative_names=[x509.UniformResourceIdentifier(f"spiffe://{LAB_DOMAIN}/web")],
        extended_key_usages=[CLIENT_AUTH],
    )
    return LabPKI(root=root, server_intermediate=intermediate, client=client, web=web)
