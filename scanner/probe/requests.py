"""What a probe asks after the handshake, by the target's ``probe`` setting: an HTTP
request, a gRPC call, or a PostgreSQL startup. The engine picks one per probe; the
prober makes it (``exchanges``)."""

from __future__ import annotations

from dataclasses import dataclass

from mtls_audit.scanner.model.target import AppProtocol, PostgresNegotiation, Target
from mtls_audit.scanner.probe.grpc import GrpcCall
from mtls_audit.scanner.probe.http import HttpRequest


@dataclass(frozen=True, slots=True)
class PostgresStartup:
    """The StartupMessage a probe sends; it never sends a password."""

    user: str
    database: str
    negotiation: PostgresNegotiation = PostgresNegotiation.POSTGRES


AppRequest = HttpRequest | GrpcCall | PostgresStartup


def request_for(target: Target, request: str | None = None) -> AppRequest | None:
    """The target's own request, or an access rule's (``POST /transfer``,
    ``grpc bank.Payments/Transfer``). None for ``probe: none``."""
    match target.app_protocol:
        case AppProtocol.HTTP:
            return HttpRequest.for_target(target, request)
        case AppProtocol.GRPC:
            authority = f"{target.host_header}:{target.port}"
            if request is None:
                return GrpcCall.health_check(authority, target.grpc_service)
            return GrpcCall.for_method(authority, request.partition(" ")[2])
        case AppProtocol.POSTGRES:
            return PostgresStartup(target.postgres_user, target.postgres_database, target.postgres_negotiation)
    return None


def alpn_for(request: AppRequest | None) -> tuple[bytes, ...]:
    """The protocols to offer by ALPN: gRPC lives on HTTP/2 only (grpcio closes on a
    client that does not offer h2), and PostgreSQL's direct TLS requires
    ``postgresql``. HTTP/1.1 probes offer nothing, as `openssl s_client` does.

    gRPC offers http/1.1 after h2: a gRPC server picks h2 all the same, and an HTTP
    server without h2 (Apache's mod_ssl answers with a protocol the client did not
    offer, which OpenSSL rejects as a bad extension) then says plainly that it
    speaks HTTP/1.1 only, so the error names the real cause."""
    if isinstance(request, GrpcCall):
        return (b"h2", b"http/1.1")
    if isinstance(request, PostgresStartup) and request.negotiation is PostgresNegotiation.DIRECT:
        return (b"postgresql",)
    return ()
