"""The demo lab's endpoints: one known misconfiguration each, with the verdicts a
correct scanner must give. The demo and the end-to-end tests both hold the scanner
to these."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from mtls_audit.scanner.lab.pki import LAB_DOMAIN, LabPKI
from mtls_audit.scanner.lab.servers import ClientAuthMode, LabServerConfig
from mtls_audit.scanner.model.observations import TLSVersion

CHECK_IDS = (
    "client-cert-required",
    "wrong-ca-rejected",
    "tls13-only",
    "chain-complete",
    "san-match",
    "expiry-soon",
    "access-rules",
    "client-cert-validity",
    "unknown-identity-rejected",
    "cert-lifetime",
)
# The inventory has an issuer, so every endpoint gets the minted copies; only the
# authz endpoints declare access rules.
ALL_PASS = dict.fromkeys(CHECK_IDS, "pass") | {"access-rules": "skip", "unknown-identity-rejected": "skip"}

LAB_CLIENT_ID = f"spiffe://{LAB_DOMAIN}/lab-client"
# Access rules of the authz endpoints: the lab client may transfer, web may not.
TRANSFER_RULES = [
    {"identity": "lab-client", "request": "POST /transfer", "expect": "allow"},
    {"identity": "web", "request": "POST /transfer", "expect": "deny"},
]


@dataclass(frozen=True)
class LabEndpoint:
    name: str
    description: str
    server: LabServerConfig
    expected: dict[str, str]  # check id -> status
    inventory: dict[str, Any] = field(default_factory=dict)  # extra keys for its inventory entry

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
    ledger_id = f"spiffe://{LAB_DOMAIN}/ledger"
    ledger = pki.server_leaf(f"authz-spiffe.{LAB_DOMAIN}", spiffe_id=ledger_id)
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
            _expect(client_cert_required="fail", wrong_ca_rejected="fail", client_cert_validity="fail"),
        ),
        LabEndpoint(
            "any-ca",
            "requires a client certificate but accepts one from any CA",
            server("any-ca", ClientAuthMode.ANY_CA),
            _expect(wrong_ca_rejected="fail", client_cert_validity="fail"),
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
        LabEndpoint(
            "authz-spiffe",
            "verifies the certificate, then lets in only the SPIFFE ID lab-client (403 for others)",
            server("authz-spiffe", ClientAuthMode.AUTHZ_SPIFFE, leaf=ledger, allowed_identity=LAB_CLIENT_ID),
            _expect(access_rules="pass", unknown_identity_rejected="pass"),
            {"server_identity": ledger_id, "access": TRANSFER_RULES},
        ),
        LabEndpoint(
            "authz-cn",
            "verifies the certificate, then authorizes on the subject CN, not the SAN",
            server("authz-cn", ClientAuthMode.AUTHZ_CN, allowed_identity="lab-client"),
            _expect(access_rules="pass", unknown_identity_rejected="fail"),
            {"access": TRANSFER_RULES},
        ),
        LabEndpoint(
            "no-expiry-check",
            "requires a certificate from the CA but ignores its dates and its EKU",
            server("no-expiry-check", ClientAuthMode.NO_EXPIRY_CHECK),
            _expect(client_cert_validity="fail"),
        ),
    ]
