"""A target as the inventory describes it: immutable, validated, ready to probe."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from mtls_audit.scanner.model.observations import TLSVersion
from mtls_audit.scanner.tls.client import ClientCredential


class ClientAuthExpectation(enum.StrEnum):
    """What the policy wants from a target's client authentication."""

    REQUIRED = "required"  # mTLS: the default
    NONE = "none"  # a TLS-only service; the mTLS checks are skipped


class AppProtocol(enum.StrEnum):
    """What the prober speaks after the handshake to see HTTP-layer enforcement."""

    HTTP = "http"
    NONE = "none"


@dataclass(frozen=True)
class ClientIdentity:
    """The legitimate client identity: loaded and checked, plus where it came from
    (paths go into the reproducible ``openssl s_client`` commands; the key never does)."""

    credential: ClientCredential
    cert_path: Path
    key_path: Path


@dataclass(frozen=True)
class Target:
    name: str
    host: str
    port: int
    server_name: str  # the name the server cert must match; SNI unless an IP literal
    index: int = 0  # position in the inventory: reports keep inventory order
    trust_anchors: tuple[x509.Certificate, ...] = ()
    trust_path: Path | None = None
    identity: ClientIdentity | None = None
    tags: tuple[str, ...] = ()
    expiry_warning_days: int = 30
    min_tls_version: TLSVersion = TLSVersion.TLS1_3
    client_auth: ClientAuthExpectation = ClientAuthExpectation.REQUIRED
    app_protocol: AppProtocol = AppProtocol.HTTP
    http_path: str = "/"
    disabled_checks: frozenset[str] = field(default_factory=frozenset)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
