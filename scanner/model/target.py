"""A target as the inventory describes it: immutable, validated, ready to probe."""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from mtls_audit.scanner.model.observations import TLSVersion

# A private key that can sign a TLS handshake: what pyOpenSSL's ``use_privatekey`` takes
# (cryptography's newer types, e.g. ML-DSA, it rejects).
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey


@dataclass(frozen=True, slots=True)
class ClientCredential:
    """A certificate (with the chain to send after it) and its key, in memory."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    private_key: SigningKey = field(repr=False)


class ClientAuthExpectation(enum.StrEnum):
    """What the policy wants from a target's client authentication."""

    REQUIRED = "required"  # mTLS: the default
    NONE = "none"  # a TLS-only service; the mTLS checks are skipped


class AppProtocol(enum.StrEnum):
    """What the prober speaks after the handshake to ask "did you let me in?": servers
    that enforce client certificates above TLS say no there (nginx with a 400, gRPC
    with UNAUTHENTICATED, PostgreSQL with SQLSTATE 28000)."""

    HTTP = "http"
    GRPC = "grpc"  # ALPN h2, then a unary call (grpc.health.v1.Health/Check)
    POSTGRES = "postgres"  # SSLRequest, TLS, then a StartupMessage
    NONE = "none"


GRPC_HEALTH_CHECK = "grpc.health.v1.Health/Check"


class PostgresNegotiation(enum.StrEnum):
    """How a PostgreSQL client starts TLS (libpq's ``sslnegotiation``)."""

    POSTGRES = "postgres"  # an SSLRequest in the clear, then TLS
    DIRECT = "direct"  # TLS at once, ALPN "postgresql" (PostgreSQL 17 and later)


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """A client identity: loaded and checked, plus where it came from (paths go into
    the reproducible ``openssl s_client`` commands; the key never does).

    ``name`` is its key in the inventory's ``identities`` (None when written inline);
    a PKCS#12 bundle has the same path as cert and key, and ``password_env`` names the
    variable a repro command reads its password from."""

    credential: ClientCredential
    cert_path: Path
    key_path: Path
    name: str | None = None
    pkcs12: bool = False
    password_env: str | None = None


class Expect(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class AccessRule:
    """``{identity: web, request: "POST /transfer", expect: deny}`` from the inventory."""

    identity: ClientIdentity
    expect: Expect
    method: str = "GET"
    path: str | None = None  # None: the target's own probe request (GET http_path)

    @property
    def name(self) -> str:
        return self.identity.name or "inline identity"

    @property
    def request(self) -> str | None:
        """``POST /transfer`` or ``grpc bank.Payments/Transfer``, or None for the
        target's own probe request."""
        return None if self.path is None else f"{self.method} {self.path}"

    def request_made(self, default_request: str) -> str:
        """The request as made: the rule's, or the target's own (``Target.request``)."""
        return self.request or default_request


@dataclass(frozen=True, slots=True)
class Issuer:
    """A test CA the servers trust: the scanner mints defective client certificates
    with it, in memory. Its key is never written and never printed."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # sent after the issuer, as a workload would
    private_key: SigningKey = field(repr=False)
    cert_path: Path


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    host: str
    port: int
    server_name: str  # the name the server cert must match; SNI unless an IP literal
    index: int = 0  # position in the inventory: reports keep inventory order
    line: int | None = None  # where the inventory file declares it (1-based), for SARIF
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
    access: tuple[AccessRule, ...] = ()
    issuer: Issuer | None = None
    server_identity: str | None = None  # a SPIFFE ID the server leaf must carry
    # False when only a SPIFFE ID identifies the server (no server_name was given):
    # Istio-style leaves carry no DNS name to match.
    match_server_name: bool = True
    max_cert_lifetime_days: int = 398
    grpc_service: str = ""  # the service name the health check asks about ("": the server)
    postgres_user: str = "postgres"
    postgres_database: str = "postgres"
    postgres_negotiation: PostgresNegotiation = PostgresNegotiation.POSTGRES

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def request(self) -> str:
        """The request the probes make after the handshake, as reports name it."""
        match self.app_protocol:
            case AppProtocol.HTTP:
                return f"GET {self.http_path}"
            case AppProtocol.GRPC:
                return f"grpc {GRPC_HEALTH_CHECK}"
            case AppProtocol.POSTGRES:
                return f"startup user={self.postgres_user} database={self.postgres_database}"
        return "TLS handshake only"

    @property
    def sni(self) -> str | None:
        return sni_for(self.server_name)

    @property
    def host_header(self) -> str:
        # RFC 7230 section 5.4: an IPv6 literal goes in brackets.
        return f"[{self.server_name}]" if ":" in self.server_name else self.server_name


def sni_for(name: str) -> str | None:
    """The SNI to send for a server name: none for IP literals (RFC 6066 section 3)."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name
    return None
