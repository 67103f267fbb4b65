"""The demo lab's endpoints: one known misconfiguration each, with the verdicts a
correct scanner must give. The demo and the end-to-end tests both hold the scanner
to these."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from mtls_audit.scanner.lab.pki import LAB_DOMAIN, LabPKI
from mtls_audit.scanner.lab.servers import ClientAuthMode, LabServerConfig
from mtls_audit.scanner.model.observations import TLSVersion

CHECK_IDS = ("client-cert-required", "wrong-ca-rejected", "tls13-only", "chain-complete", "san-match", "expiry-soon")
ALL_PASS = dict.fromkeys(CHECK_IDS, "pass")


@dataclass(frozen=True)
class LabEndpoint:
    name: str
    description: str
    server: LabServerConfig
    expected: dict[str, str]  # check id -> status

    @property
    def server_name(self) -> str:
        return f"{self.name}.{LAB_DOMAIN}"


def _expect(**changes: str) -> dict[str, str]:
    return ALL_PASS | {key.replace("_", "-"): value for key, value in changes.items()}


def demo_endpoints(pki: LabPKI) -> list[LabEndpoint]:
    def server(name: str, mode: ClientAuthMode, **options) -> LabServerConfig:
        leaf = options.pop("leaf", None) or pki.server_leaf(f"{name}.{LAB_DOMAIN}")
        chain = options.pop("chain", None) or pki.server_chain(leaf)
        return LabServerConfig(
            name=name,
            chain=chain,
            private_key=leaf.private_key,
            client_auth=mode,
            client_ca=pki.root.certificate,
            **options,
        )

    expiring = pki.server_leaf(f"expiring.{LAB_DOMAIN}", valid_for=datetime.timedelta(days=5))
    wrong_san = pki.server_leaf(f"wrong-san.{LAB_DOMAIN}", dns_names=("some-other-service.example",))
    leaf_only = pki.server_leaf(f"leaf-only.{LAB_DOMAIN}")
    return [
        LabEndpoint(
            "strict",
            "mTLS required, TLS 1.3 only, full chain: the configuration to aim for",
            server("strict", ClientAuthMode.REQUIRED),
            _expect(),
        ),
        LabEndpoint(
            "optional",
            "asks for a client certificate but lets clients without one in",
            server("optional", ClientAuthMode.OPTIONAL),
            _expect(client_cert_required="fail"),
        ),
        LabEndpoint(
            "no-client-auth",
            "never asks for a client certificate",
            server("no-client-auth", ClientAuthMode.NONE),
            _expect(client_cert_required="fail", wrong_ca_rejected="fail"),
        ),
        LabEndpoint(
            "any-ca",
            "requires a client certificate but accepts one from any CA",
            server("any-ca", ClientAuthMode.ANY_CA),
            _expect(wrong_ca_rejected="fail"),
        ),
        LabEndpoint(
            "tls12-allowed",
            "mTLS required, but TLS 1.2 is still enabled",
            server("tls12-allowed", ClientAuthMode.REQUIRED, min_version=TLSVersion.TLS1_2),
            _expect(tls13_only="fail"),
        ),
        LabEndpoint(
            "leaf-only",
            "sends its leaf certificate without the intermediate",
            server("leaf-only", ClientAuthMode.REQUIRED, leaf=leaf_only, chain=(leaf_only.certificate,)),
            _expect(chain_complete="fail"),
        ),
        LabEndpoint(
            "wrong-san",
            "server certificate names a different host",
            server("wrong-san", ClientAuthMode.REQUIRED, leaf=wrong_san),
            _expect(san_match="fail"),
        ),
        LabEndpoint(
            "expiring",
            "server certificate expires in 5 days",
            server("expiring", ClientAuthMode.REQUIRED, leaf=expiring),
            _expect(expiry_soon="warn"),
        ),
        LabEndpoint(
            "http-layer",
            "like nginx `ssl_verify_client on`: TLS lets everyone in, HTTP answers 400",
            server("http-layer", ClientAuthMode.HTTP_LAYER),
            _expect(),
        ),
    ]
