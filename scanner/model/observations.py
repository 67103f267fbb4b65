"""What one TLS connection attempt showed: plain, immutable data.

Observations are the boundary between I/O and judgement. The prober fills them in,
checks read them, and the JSON report stores them, so a report can be re-judged or
re-rendered later without touching the network.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any


class TLSVersion(enum.StrEnum):
    """Protocol versions the prober can pin, oldest first."""

    TLS1_0 = "TLSv1"
    TLS1_1 = "TLSv1.1"
    TLS1_2 = "TLSv1.2"
    TLS1_3 = "TLSv1.3"

    @property
    def short(self) -> str:
        """The name used in probe ids and the CLI: ``tls1.2``."""
        return {"TLSv1": "tls1.0", "TLSv1.1": "tls1.1", "TLSv1.2": "tls1.2", "TLSv1.3": "tls1.3"}[self.value]

    @property
    def rank(self) -> int:
        return list(TLSVersion).index(self)

    @classmethod
    def parse(cls, text: str) -> TLSVersion:
        """Accept ``1.2``, ``tls1.2``, ``TLSv1.2`` (any case)."""
        wanted = text.strip().lower().replace("tlsv", "").replace("tls", "")
        for version in cls:
            if version.short == "tls" + wanted or (wanted == "1" and version is cls.TLS1_0):
                return version
        raise ValueError(f"unknown TLS version {text!r} (expected one of 1.0, 1.1, 1.2, 1.3)")


class Presented(enum.StrEnum):
    """Which client identity a probe presents."""

    VALID = "valid"  # the inventory's real client certificate
    NO_CERT = "no-cert"
    ROGUE_CA = "rogue-ca"  # same subject/SAN/EKU, issued by a CA minted for this run
    SELF_SIGNED = "self-signed"  # same subject/SAN, signed by its own key
    IDENTITY = "identity"  # a named identity from the inventory, for an access rule
    # Minted by the inventory's issuer: a copy of the target's identity without any
    # defect (the control: does the server trust the issuer at all?), then copies with
    # exactly one defect each.
    MINTED = "minted"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    SERVER_AUTH_ONLY = "server-auth-only"  # EKU serverAuth, no clientAuth
    CN_ONLY = "cn-only"  # no subjectAltName; the identity only in the subject CN
    UNKNOWN_SPIFFE_ID = "unknown-spiffe-id"  # same trust domain, a path no rule names

    @property
    def minted(self) -> bool:
        return self in MINTED_VARIANTS or self is Presented.MINTED


# The issuer-minted copies with one defect each, in the order reports list them.
MINTED_VARIANTS = (
    Presented.EXPIRED,
    Presented.NOT_YET_VALID,
    Presented.SERVER_AUTH_ONLY,
    Presented.CN_ONLY,
    Presented.UNKNOWN_SPIFFE_ID,
)


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """One connection the engine wants made. Impostor probes are repeated
    (``attempt`` 1, 2, ...): behind a load balancer one connection sees one backend.

    An access-rule probe presents a named ``identity`` and makes ``request``
    ("POST /transfer"; None: the target's own probe request)."""

    presented: Presented
    version: TLSVersion
    attempt: int = 1
    identity: str | None = None
    request: str | None = None

    @property
    def label(self) -> str:
        """What was presented and asked, without version or attempt: ``no-cert``,
        ``identity:web[POST /transfer]``."""
        if self.presented is not Presented.IDENTITY:
            return self.presented.value
        return f"identity:{self.identity}" + (f"[{self.request}]" if self.request else "")

    @property
    def id(self) -> str:
        base = f"{self.label}@{self.version.short}"
        return base if self.attempt == 1 else f"{base}#{self.attempt}"

    @property
    def first(self) -> ProbeSpec:
        """The same probe's first attempt (attempts share a repro command)."""
        return ProbeSpec(self.presented, self.version, 1, self.identity, self.request)

    @classmethod
    def parse(cls, probe_id: str) -> ProbeSpec:
        """``no-cert@tls1.3#2`` -> ProbeSpec(NO_CERT, TLS1_3, 2);
        ``identity:web[POST /transfer]@tls1.2``."""
        head, _, attempt = probe_id.rpartition("@")
        version, _, number = attempt.partition("#")
        identity = request = None
        presented = head
        if head.startswith("identity:"):
            presented = Presented.IDENTITY.value
            identity = head.removeprefix("identity:")
            if identity.endswith("]") and "[" in identity:
                identity, _, request = identity[:-1].partition("[")
        return cls(Presented(presented), TLSVersion.parse(version), int(number) if number else 1, identity, request)


# Alert descriptions from the TLS Alert Registry (RFC 8446 section 6, IANA).
ALERT_NAMES: dict[int, str] = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    21: "decryption_failed",
    22: "record_overflow",
    30: "decompression_failure",
    40: "handshake_failure",
    41: "no_certificate",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    60: "export_restriction",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    100: "no_renegotiation",
    109: "missing_extension",
    110: "unsupported_extension",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
}


class Phase(enum.StrEnum):
    """When something happened, relative to the TLS handshake."""

    CONNECT = "connect"
    HANDSHAKE = "handshake"
    POST_HANDSHAKE = "post-handshake"  # TLS 1.3 rejects client certs here
    HTTP = "http"  # the application exchange: HTTP, gRPC or the PostgreSQL startup


@dataclass(frozen=True, slots=True)
class Alert:
    code: int
    phase: Phase
    at_ms: float  # since the TCP connection was established

    @property
    def name(self) -> str:
        return ALERT_NAMES.get(self.code, f"alert_{self.code}")

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "phase": self.phase.value, "at_ms": self.at_ms}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Alert | None:
        return None if data is None else cls(data["code"], Phase(data["phase"]), data["at_ms"])


class AfterHandshake(enum.StrEnum):
    """The first thing the server did after the client finished its handshake.

    In TLS 1.3 the client finishes before the server has judged its certificate, so
    only this tells acceptance (a session ticket) from rejection (an alert or EOF).
    """

    TICKET = "ticket"
    ALERT = "alert"
    EOF = "eof"
    DATA = "data"
    TIMEOUT = "timeout"  # nothing within the wait: undecided, never "accepted"
    NOT_WAITED = "not-waited"  # TLS 1.2 (the handshake itself decides) or no handshake


@dataclass(frozen=True, slots=True)
class HttpExchange:
    """The optional HTTP request made after the handshake."""

    request_line: str
    status: int | None = None
    reason: str = ""
    at_ms: float | None = None
    error: str | None = None  # why no status was read

    @property
    def answer(self) -> str:
        """``HTTP 403 Forbidden``, or why there was none."""
        if self.status is None:
            return f"HTTP: {self.error}"
        return f"HTTP {self.status} {self.reason}".rstrip()

    def to_dict(self) -> dict[str, Any]:
        """The request line, and of the rest what was seen (null and "" left out)."""
        data: dict[str, Any] = {"request_line": self.request_line}
        if self.status is not None:
            data["status"] = self.status
        if self.reason:
            data["reason"] = self.reason
        if self.at_ms is not None:
            data["at_ms"] = self.at_ms
        if self.error is not None:
            data["error"] = self.error
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> HttpExchange | None:
        if data is None:
            return None
        return cls(
            data["request_line"], data.get("status"), data.get("reason", ""), data.get("at_ms"), data.get("error")
        )


def grpc_status_name(code: int) -> str:
    """``UNAUTHENTICATED`` for 16."""
    return _GRPC_STATUS_NAMES[code] if 0 <= code < len(_GRPC_STATUS_NAMES) else f"status {code}"


_GRPC_STATUS_NAMES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)


@dataclass(frozen=True, slots=True)
class GrpcExchange:
    """The gRPC call made after the handshake (``probe: grpc``): a unary call over
    HTTP/2, and what came back."""

    method: str  # "grpc.health.v1.Health/Check"
    http_status: int | None = None  # the :status pseudo-header
    grpc_status: int | None = None
    grpc_message: str = ""
    at_ms: float | None = None
    error: str | None = None  # why no gRPC status was read

    @property
    def answer(self) -> str:
        """``HTTP/2 200, grpc-status 16 UNAUTHENTICATED (no peer certificate)``, or the error."""
        if self.grpc_status is None:
            return f"gRPC: {self.error}" if self.http_status is None else f"HTTP/2 {self.http_status}: {self.error}"
        message = f" ({self.grpc_message})" if self.grpc_message else ""
        return (
            f"HTTP/2 {self.http_status}, grpc-status {self.grpc_status} {grpc_status_name(self.grpc_status)}{message}"
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"method": self.method}
        for key in ("http_status", "grpc_status", "at_ms", "error"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.grpc_message:
            data["grpc_message"] = self.grpc_message
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> GrpcExchange | None:
        if data is None:
            return None
        return cls(
            data["method"],
            data.get("http_status"),
            data.get("grpc_status"),
            data.get("grpc_message", ""),
            data.get("at_ms"),
            data.get("error"),
        )


@dataclass(frozen=True, slots=True)
class PostgresExchange:
    """The PostgreSQL startup after the handshake (``probe: postgres``): the first
    answer to our StartupMessage. We never send a password: an authentication
    request means the certificate got us past the TLS and ``cert`` layers."""

    user: str
    database: str
    negotiation: str = "postgres"  # "postgres": SSLRequest first; "direct": TLS at once
    sqlstate: str | None = None
    severity: str | None = None
    message: str | None = None
    authentication: str | None = None  # "AuthenticationSASL", "AuthenticationOk", ...
    at_ms: float | None = None
    error: str | None = None  # not PostgreSQL, no SSL, or no answer

    @property
    def request_line(self) -> str:
        return f"startup user={self.user} database={self.database}"

    @property
    def answer(self) -> str:
        """``PostgreSQL FATAL 28000 connection requires ...``, ``PostgreSQL
        AuthenticationSASL (SCRAM-SHA-256)``, or the error."""
        if self.authentication is not None:
            return f"PostgreSQL {self.authentication}"
        if self.sqlstate is not None:
            return f"PostgreSQL {self.severity or 'ERROR'} {self.sqlstate} {self.message or ''}".rstrip()
        return f"PostgreSQL: {self.error}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"user": self.user, "database": self.database, "negotiation": self.negotiation}
        for key in ("sqlstate", "severity", "message", "authentication", "at_ms", "error"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PostgresExchange | None:
        if data is None:
            return None
        return cls(
            data["user"],
            data["database"],
            data.get("negotiation", "postgres"),
            data.get("sqlstate"),
            data.get("severity"),
            data.get("message"),
            data.get("authentication"),
            data.get("at_ms"),
            data.get("error"),
        )


@dataclass(frozen=True, slots=True)
class ProbeObservation:
    """Every fact about one connection attempt, as seen by the client."""

    spec: ProbeSpec
    address: str  # host:port as connected
    sni: str | None
    client_certificate_sha256: str | None  # what we presented, by fingerprint only
    connected: bool = False
    connect_error: str | None = None
    server_hello_seen: bool = False
    handshake_completed: bool = False
    negotiated_version: str | None = None
    cipher: str | None = None
    certificate_request_seen: bool = False  # in the handshake
    # TLS 1.3 post-handshake authentication, or a TLS 1.2 renegotiation: the server
    # asked after the handshake, and ``certificate_request_trigger`` is the request
    # we had made when it did (None: it asked before we made one).
    certificate_requested_after_handshake: bool = False
    certificate_request_trigger: str | None = None
    client_ca_names: tuple[str, ...] = ()
    certificate_sent: bool = False  # our Certificate message (possibly empty) went out
    alert_received: Alert | None = None
    alert_sent: Alert | None = None
    tls_error: str | None = None  # the first error OpenSSL reported
    # When the server closed the TCP connection without an alert first, if it did: a
    # close before the ServerHello is ambiguous, one right after our Certificate a refusal.
    closed_by_server: Phase | None = None
    local_error: str | None = None  # a failure on our side of the connection: never a refusal
    after_handshake: AfterHandshake = AfterHandshake.NOT_WAITED
    session_ticket_received: bool = False
    # The server sent application data after the handshake (before or after our
    # request): it talked to us, so a close that follows refuses no one.
    application_data_received: bool = False
    http: HttpExchange | None = None
    grpc: GrpcExchange | None = None
    postgres: PostgresExchange | None = None
    alpn: str | None = None  # the protocol the server chose by ALPN
    timed_out: Phase | None = None
    # The chain itself is kept once per target; the report names it by fingerprint.
    peer_chain_der: tuple[bytes, ...] = field(default=(), repr=False, compare=False)
    peer_chain_sha256: tuple[str, ...] = ()
    connect_ms: float | None = None
    handshake_ms: float | None = None
    total_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every fact, said once: a fact at its default (false, null, empty,
        ``not-waited``) is left out, and so are the spec's fields when the probe id
        spells them (``no-cert@tls1.3#2``). ``from_dict`` restores both. ``address``
        and ``sni`` are always there: a target leaves out the ones it shares."""
        data: dict[str, Any] = {"probe": self.spec.id}
        try:
            spelled = ProbeSpec.parse(self.spec.id) == self.spec
        except ValueError:
            spelled = False
        if not spelled:  # an identity or request the id cannot carry unambiguously
            data |= {
                "presented": self.spec.presented.value,
                "pinned_version": self.spec.version.value,
                "attempt": self.spec.attempt,
                "identity": self.spec.identity,
                "request": self.spec.request,
            }
        data |= {"address": self.address, "sni": self.sni}
        facts = {
            "client_certificate_sha256": self.client_certificate_sha256,
            "connected": self.connected,
            "connect_error": self.connect_error,
            "server_hello_seen": self.server_hello_seen,
            "handshake_completed": self.handshake_completed,
            "negotiated_version": self.negotiated_version,
            "cipher": self.cipher,
            "certificate_request_seen": self.certificate_request_seen,
            "certificate_requested_after_handshake": self.certificate_requested_after_handshake,
            "certificate_request_trigger": self.certificate_request_trigger,
            "client_ca_names": list(self.client_ca_names),
            "certificate_sent": self.certificate_sent,
            "alert_received": self.alert_received.to_dict() if self.alert_received else None,
            "alert_sent": self.alert_sent.to_dict() if self.alert_sent else None,
            "tls_error": self.tls_error,
            "closed_by_server": self.closed_by_server.value if self.closed_by_server else None,
            "local_error": self.local_error,
            "after_handshake": None
            if self.after_handshake is AfterHandshake.NOT_WAITED
            else self.after_handshake.value,
            "session_ticket_received": self.session_ticket_received,
            "application_data_received": self.application_data_received,
            "http": self.http.to_dict() if self.http else None,
            "grpc": self.grpc.to_dict() if self.grpc else None,
            "postgres": self.postgres.to_dict() if self.postgres else None,
            "alpn": self.alpn,
            "timed_out": self.timed_out.value if self.timed_out else None,
            "peer_chain_sha256": list(self.chain_fingerprints),
            "connect_ms": self.connect_ms,
            "handshake_ms": self.handshake_ms,
            "total_ms": self.total_ms,
        }
        # `is`, not `==`: a time of 0.0 equals False, and is a fact.
        data |= {key: value for key, value in facts.items() if value is not None and value is not False and value != []}
        return data

    @property
    def certificate_requested(self) -> bool:
        """The server asked for a client certificate, in the handshake or after it."""
        return self.certificate_request_seen or self.certificate_requested_after_handshake

    @property
    def application_answer(self) -> str | None:
        """What HTTP, gRPC or PostgreSQL answered after the handshake (or why nothing
        did); None when no request was made."""
        exchange = self.http or self.grpc or self.postgres
        return exchange.answer if exchange is not None else None

    @property
    def chain_fingerprints(self) -> tuple[str, ...]:
        if self.peer_chain_sha256 or not self.peer_chain_der:
            return self.peer_chain_sha256
        return tuple(hashlib.sha256(der).hexdigest() for der in self.peer_chain_der)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeObservation:
        """A probe as a saved report holds it (the chain by fingerprint only): a 1.0
        or 1.1 report spells out every field, 1.2 leaves out the defaults."""

        def phase(value: Any) -> Phase | None:
            return Phase(value) if value else None

        if "presented" in data:
            spec = ProbeSpec(
                Presented(data["presented"]),
                TLSVersion(data["pinned_version"]),
                data.get("attempt", 1),
                data.get("identity"),
                data.get("request"),
            )
        else:
            spec = ProbeSpec.parse(data["probe"])
        return cls(
            spec=spec,
            address=data["address"],
            sni=data.get("sni"),
            client_certificate_sha256=data.get("client_certificate_sha256"),
            connected=data.get("connected", False),
            connect_error=data.get("connect_error"),
            server_hello_seen=data.get("server_hello_seen", False),
            handshake_completed=data.get("handshake_completed", False),
            negotiated_version=data.get("negotiated_version"),
            cipher=data.get("cipher"),
            certificate_request_seen=data.get("certificate_request_seen", False),
            certificate_requested_after_handshake=data.get("certificate_requested_after_handshake", False),
            certificate_request_trigger=data.get("certificate_request_trigger"),
            client_ca_names=tuple(data.get("client_ca_names") or ()),
            certificate_sent=data.get("certificate_sent", False),
            alert_received=Alert.from_dict(data.get("alert_received")),
            alert_sent=Alert.from_dict(data.get("alert_sent")),
            tls_error=data.get("tls_error"),
            closed_by_server=phase(data.get("closed_by_server")),
            local_error=data.get("local_error"),
            after_handshake=AfterHandshake(data.get("after_handshake", AfterHandshake.NOT_WAITED.value)),
            session_ticket_received=data.get("session_ticket_received", False),
            application_data_received=data.get("application_data_received", False),
            http=HttpExchange.from_dict(data.get("http")),
            grpc=GrpcExchange.from_dict(data.get("grpc")),
            postgres=PostgresExchange.from_dict(data.get("postgres")),
            alpn=data.get("alpn"),
            timed_out=phase(data.get("timed_out")),
            peer_chain_sha256=tuple(data.get("peer_chain_sha256") or ()),
            connect_ms=data.get("connect_ms"),
            handshake_ms=data.get("handshake_ms"),
            total_ms=data.get("total_ms"),
        )
