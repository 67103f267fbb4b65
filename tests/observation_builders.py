"""Realistic ProbeObservations, a tiny PKI and a target factory for the check tests.

Every builder mirrors what ``scanner.prober`` records for a real server (the JSON
of real probes is quoted in each docstring), so the tests judge the same shapes of
evidence a scan produces. Nothing here calls the code under test.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtls_audit.checks.base import Evidence
from mtls_audit.scanner.credentials.factory import CLIENT_AUTH, SERVER_AUTH, Issued, common_name, issue
from mtls_audit.scanner.model.observations import (
    AfterHandshake,
    Alert,
    HttpExchange,
    Phase,
    Presented,
    ProbeObservation,
    ProbeSpec,
    TLSVersion,
)
from mtls_audit.scanner.model.target import AppProtocol, ClientCredential, ClientIdentity, Target

# The scan clock every test uses; the PKI below is dated relative to it.
NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
DAY = datetime.timedelta(days=1)

HOST = "127.0.0.1"
PORT = 8443
SERVER_NAME = "api.test"
CIPHER_13 = "TLS_AES_256_GCM_SHA384"
CIPHER_12 = "ECDHE-ECDSA-AES256-GCM-SHA384"
CLIENT_CA_NAMES = ("CN=mtls-audit test root CA",)


# -- PKI ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SmallPKI:
    root: Issued
    intermediate: Issued
    server: Issued  # SAN DNS:api.test, IP:127.0.0.1
    cn_only: Issued  # CN=api.test, no subjectAltName at all
    expired: Issued  # SAN DNS:api.test, expired yesterday
    expiring: Issued  # SAN DNS:api.test, expires in 5 days
    not_yet_valid: Issued  # SAN DNS:api.test, valid from tomorrow
    client: Issued  # the scanner's own identity, issued by the root
    expired_client: Issued


def _server_leaf(
    intermediate: Issued,
    *,
    names: list[x509.GeneralName] | None,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> Issued:
    return issue(
        common_name(SERVER_NAME),
        issuer=intermediate,
        subject_alternative_names=names or (),
        extended_key_usages=[SERVER_AUTH],
        not_before=not_before,
        not_after=not_after,
    )


def _make_pki() -> SmallPKI:
    # CAs valid for years around NOW, like a real PKI: a certificate's own dates are
    # then the only thing that makes it expired or expiring.
    root = issue(
        common_name("mtls-audit test root CA"),
        is_ca=True,
        not_before=NOW - 3650 * DAY,
        not_after=NOW + 3650 * DAY,
    )
    intermediate = issue(
        common_name("mtls-audit test server intermediate CA"),
        issuer=root,
        is_ca=True,
        not_before=NOW - 1800 * DAY,
        not_after=NOW + 1800 * DAY,
    )
    san = [x509.DNSName(SERVER_NAME), x509.IPAddress(ipaddress.ip_address(HOST))]
    dns_only = [x509.DNSName(SERVER_NAME)]
    server = _server_leaf(intermediate, names=san, not_before=NOW - 30 * DAY, not_after=NOW + 335 * DAY)
    cn_only = _server_leaf(intermediate, names=None, not_before=NOW - 30 * DAY, not_after=NOW + 335 * DAY)
    expired = _server_leaf(intermediate, names=dns_only, not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    expiring = _server_leaf(intermediate, names=dns_only, not_before=NOW - 360 * DAY, not_after=NOW + 5 * DAY)
    not_yet_valid = _server_leaf(intermediate, names=dns_only, not_before=NOW + DAY, not_after=NOW + 366 * DAY)
    client_names = [x509.UniformResourceIdentifier("spiffe://example.test/scanner")]
    client = issue(
        common_name("scanner-client"),
        issuer=root,
        subject_alternative_names=client_names,
        extended_key_usages=[CLIENT_AUTH],
        not_before=NOW - 10 * DAY,
        not_after=NOW + 355 * DAY,
    )
    expired_client = issue(
        common_name("scanner-client"),
        issuer=root,
        subject_alternative_names=client_names,
        extended_key_usages=[CLIENT_AUTH],
        not_before=NOW - 400 * DAY,
        not_after=NOW - 2 * DAY,
    )
    return SmallPKI(root, intermediate, server, cn_only, expired, expiring, not_yet_valid, client, expired_client)


PKI = _make_pki()


def der(*certificates: Issued | x509.Certificate) -> tuple[bytes, ...]:
    """A peer chain as ProbeObservation.peer_chain_der holds it (leaf first)."""
    out = []
    for c in certificates:
        certificate = c.certificate if isinstance(c, Issued) else c
        out.append(certificate.public_bytes(Encoding.DER))
    return tuple(out)


FULL_CHAIN = der(PKI.server, PKI.intermediate)
LEAF_ONLY = der(PKI.server)


# -- targets ------------------------------------------------------------------------

CLIENT_CERT_PATH = Path("/etc/mtls-audit/identities/scanner-client.pem")
CLIENT_KEY_PATH = Path("/etc/mtls-audit/identities/scanner-client.key")


def identity(
    issued: Issued | None = None,
    *,
    chain: tuple[x509.Certificate, ...] = (),
    cert_path: Path = CLIENT_CERT_PATH,
    key_path: Path = CLIENT_KEY_PATH,
) -> ClientIdentity:
    issued = issued or PKI.client
    credential = ClientCredential(certificate=issued.certificate, chain=chain, private_key=issued.private_key)
    return ClientIdentity(credential=credential, cert_path=cert_path, key_path=key_path)


_DEFAULT = object()


def make_target(*, identity_: ClientIdentity | None | object = _DEFAULT, **overrides) -> Target:
    """A target like the inventory builds: api.test on 127.0.0.1:8443, trusting the
    test root, with the scanner's identity; any field can be overridden."""
    fields = dict(
        name="api",
        host=HOST,
        port=PORT,
        server_name=SERVER_NAME,
        trust_anchors=(PKI.root.certificate,),
        trust_path=Path("/etc/mtls-audit/ca.pem"),
        identity=identity() if identity_ is _DEFAULT else identity_,
        app_protocol=AppProtocol.HTTP,
    )
    fields.update(overrides)
    return Target(**fields)


def evidence(target: Target, *observations: ProbeObservation, now: datetime.datetime = NOW) -> Evidence:
    return Evidence(target=target, observations=tuple(observations), now=now)


# -- observations -------------------------------------------------------------------


def spec(presented: Presented, version: TLSVersion, attempt: int = 1) -> ProbeSpec:
    return ProbeSpec(presented, version, attempt)


V13 = TLSVersion.TLS1_3
V12 = TLSVersion.TLS1_2
V11 = TLSVersion.TLS1_1
V10 = TLSVersion.TLS1_0


def _fingerprint(presented: Presented) -> str | None:
    if presented is Presented.NO_CERT:
        return None
    return hashlib.sha256(presented.value.encode()).hexdigest()


def _base(s: ProbeSpec, **facts) -> ProbeObservation:
    facts.setdefault("address", f"{HOST}:{PORT}")
    facts.setdefault("sni", SERVER_NAME)
    facts.setdefault("client_certificate_sha256", _fingerprint(s.presented))
    return ProbeObservation(spec=s, **facts)


def _http(status: int | None, reason: str = "", *, error: str | None = None, path: str = "/") -> HttpExchange:
    return HttpExchange(
        request_line=f"GET {path} HTTP/1.1",
        status=status,
        reason=reason,
        at_ms=4.8 if status is not None else None,
        error=error,
    )


_REASONS = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    495: "SSL Certificate Error",
    496: "SSL Certificate Required",
    500: "Internal Server Error",
}


def refused_connection(s: ProbeSpec) -> ProbeObservation:
    """refused port: connected False, connect_error "Connection refused"."""
    return _base(s, connected=False, connect_error="Connection refused", total_ms=0.4)


def timed_out(
    s: ProbeSpec, phase: Phase = Phase.HANDSHAKE, *, server_hello: bool = False, chain: tuple[bytes, ...] = FULL_CHAIN
) -> ProbeObservation:
    """A phase ran out of time.

    CONNECT: no TCP connection. HANDSHAKE: the hung server (connected, nothing
    back; ``server_hello=True`` for a server that stalls after its ServerHello).
    HTTP: TLS 1.3 handshake and ticket, then no HTTP response.
    """
    if phase is Phase.CONNECT:
        return _base(
            s, connected=False, connect_error="no TCP connection within 5s", timed_out=Phase.CONNECT, total_ms=5000.0
        )
    if phase is Phase.HANDSHAKE:
        facts = dict(connected=True, connect_ms=0.3, timed_out=Phase.HANDSHAKE, total_ms=5000.4)
        if server_hello:
            facts.update(
                server_hello_seen=True,
                negotiated_version=s.version.value,
                certificate_request_seen=True,
                client_ca_names=CLIENT_CA_NAMES,
                peer_chain_der=chain,
            )
        return _base(s, **facts)
    if phase is Phase.HTTP:
        return replace(
            accepted_with_ticket(s, http_status=None, chain=chain),
            http=_http(None, error="no HTTP response within 5s"),
            timed_out=Phase.HTTP,
        )
    raise ValueError(f"the prober never times out in phase {phase}")


def version_refused(s: ProbeSpec, code: int = 70) -> ProbeObservation:
    """TLS 1.3-only server probed with TLS 1.2: connected, no ServerHello,
    alert 70 protocol_version in the handshake."""
    return _base(
        s,
        connected=True,
        connect_ms=0.3,
        alert_received=Alert(code, Phase.HANDSHAKE, 0.9),
        tls_error="tlsv1 alert protocol version",
        total_ms=1.1,
    )


def openssl_cannot_offer(s: ProbeSpec) -> ProbeObservation:
    """Our own OpenSSL refuses to offer the pinned version (no ServerHello, our
    alert only, "no protocols available")."""
    return _base(
        s,
        connected=True,
        connect_ms=0.3,
        alert_sent=Alert(80, Phase.HANDSHAKE, 0.1),
        tls_error="no protocols available",
        total_ms=0.5,
    )


def blocked_in_handshake(
    s: ProbeSpec, code: int = 40, *, certificate_request: bool = True, chain: tuple[bytes, ...] = FULL_CHAIN
) -> ProbeObservation:
    """TLS 1.2 server requiring a cert, no cert: ServerHello, CertificateRequest,
    handshake NOT completed, alert 40 handshake_failure in the handshake."""
    return _base(
        s,
        connected=True,
        connect_ms=0.3,
        server_hello_seen=True,
        negotiated_version=s.version.value,
        certificate_request_seen=certificate_request,
        client_ca_names=CLIENT_CA_NAMES if certificate_request else (),
        certificate_sent=certificate_request,
        alert_received=Alert(code, Phase.HANDSHAKE, 1.9),
        tls_error="sslv3 alert handshake failure" if code == 40 else f"alert {code}",
        peer_chain_der=chain,
        total_ms=2.2,
    )


def client_aborted(s: ProbeSpec, code: int = 47) -> ProbeObservation:
    """Our own client gave up mid-handshake: it sent an alert, received none."""
    return _base(
        s,
        connected=True,
        connect_ms=0.3,
        server_hello_seen=True,
        negotiated_version=s.version.value,
        alert_sent=Alert(code, Phase.HANDSHAKE, 1.2),
        tls_error="illegal parameter",
        total_ms=1.4,
    )


def closed_in_handshake(
    s: ProbeSpec, *, certificate_sent: bool = True, chain: tuple[bytes, ...] = FULL_CHAIN
) -> ProbeObservation:
    """Node.js `https` with rejectUnauthorized on TLS 1.2, untrusted certificate:
    ServerHello, CertificateRequest, our Certificate flight, then the server closes
    the TCP connection without an alert (OpenSSL: "unexpected eof while reading")."""
    return _base(
        s,
        connected=True,
        connect_ms=0.3,
        server_hello_seen=True,
        negotiated_version=s.version.value,
        certificate_request_seen=True,
        client_ca_names=CLIENT_CA_NAMES,
        certificate_sent=certificate_sent,
        tls_error="unexpected eof while reading",
        closed_by_server=Phase.HANDSHAKE,
        peer_chain_der=chain,
        total_ms=2.0,
    )


def closed_before_server_hello(s: ProbeSpec) -> ProbeObservation:
    """A listener that has gone away (or a proxy with no backend): TCP connects, then
    the connection is reset before any TLS byte comes back."""
    return _base(
        s,
        connected=True,
        connect_ms=0.3,
        tls_error="unexpected eof while reading",
        closed_by_server=Phase.HANDSHAKE,
        total_ms=0.8,
    )


def _completed(s: ProbeSpec, chain: tuple[bytes, ...], certificate_request: bool, **facts) -> ProbeObservation:
    v13 = s.version is TLSVersion.TLS1_3
    facts.setdefault("handshake_ms", 1.66)
    facts.setdefault("total_ms", 6.5)
    return _base(
        s,
        connected=True,
        connect_ms=0.3,
        server_hello_seen=True,
        handshake_completed=True,
        negotiated_version=s.version.value,
        cipher=CIPHER_13 if v13 else CIPHER_12,
        certificate_request_seen=certificate_request,
        client_ca_names=CLIENT_CA_NAMES if certificate_request else (),
        peer_chain_der=chain,
        **facts,
    )


def blocked_post_handshake(
    s: ProbeSpec, code: int = 116, *, chain: tuple[bytes, ...] = FULL_CHAIN, certificate_request: bool = True
) -> ProbeObservation:
    """strict TLS 1.3 server, no cert: handshake completed, CertificateRequest,
    alert 116 post-handshake at 2.02 ms (handshake at 1.66 ms), after_handshake
    "alert"; the prober stops there, so no HTTP exchange."""
    return _completed(
        s,
        chain,
        certificate_request,
        alert_received=Alert(code, Phase.POST_HANDSHAKE, 2.02),
        after_handshake=AfterHandshake.ALERT,
        tls_error={116: "tlsv13 alert certificate required", 48: "tlsv1 alert unknown ca"}.get(code),
        total_ms=2.3,
    )


def eof_after_handshake(s: ProbeSpec, *, chain: tuple[bytes, ...] = FULL_CHAIN) -> ProbeObservation:
    """TLS 1.3 handshake completed, then the server closed the connection."""
    return _completed(
        s, chain, True, after_handshake=AfterHandshake.EOF, closed_by_server=Phase.POST_HANDSHAKE, total_ms=2.1
    )


def session_broken(s: ProbeSpec, code: int = 20, *, chain: tuple[bytes, ...] = FULL_CHAIN) -> ProbeObservation:
    """TLS 1.3 handshake completed, then the server reports a broken session (alert 20
    bad_record_mac, 50 decode_error...): what a client that mishandles post-handshake
    records (KeyUpdate) sees. Not a refusal."""
    return _completed(
        s,
        chain,
        True,
        alert_received=Alert(code, Phase.POST_HANDSHAKE, 2.02),
        after_handshake=AfterHandshake.ALERT,
        tls_error="sslv3 alert bad record mac" if code == 20 else f"alert {code}",
        total_ms=2.3,
    )


def our_session_broke(s: ProbeSpec, code: int = 50, *, chain: tuple[bytes, ...] = FULL_CHAIN) -> ProbeObservation:
    """TLS 1.3 handshake completed, then our own client failed on what came next and
    sent alert 50 decode_error; the server answered nothing or closed."""
    return _completed(
        s,
        chain,
        True,
        alert_sent=Alert(code, Phase.POST_HANDSHAKE, 1.9),
        after_handshake=AfterHandshake.TIMEOUT,
        tls_error="decode error",
        total_ms=2.0,
    )


def accepted_with_ticket(
    s: ProbeSpec,
    http_status: int | None = 200,
    *,
    reason: str | None = None,
    chain: tuple[bytes, ...] = FULL_CHAIN,
    certificate_request: bool = True,
    path: str = "/",
) -> ProbeObservation:
    """valid client on TLS 1.3: handshake completed, session ticket, HTTP status.

    Also the "optional" server with no cert (ticket, 200), and nginx-style HTTP
    enforcement (ticket, 400). ``http_status=None``: probe none, no HTTP exchange."""
    http = None
    if http_status is not None:
        http = _http(http_status, _REASONS.get(http_status, "") if reason is None else reason, path=path)
    return _completed(
        s,
        chain,
        certificate_request,
        after_handshake=AfterHandshake.TICKET,
        session_ticket_received=True,
        http=http,
    )


def no_verdict_after_handshake(
    s: ProbeSpec, *, http_error: str | None = None, chain: tuple[bytes, ...] = FULL_CHAIN
) -> ProbeObservation:
    """TLS 1.3 handshake completed, and within the post-handshake wait the server
    sent no ticket, alert or EOF. ``http_error`` adds an HTTP exchange that read no
    status (e.g. "connection closed without an HTTP response")."""
    http = _http(None, error=http_error) if http_error else None
    closed = Phase.HTTP if http_error == "connection closed without an HTTP response" else None
    return _completed(s, chain, True, after_handshake=AfterHandshake.TIMEOUT, http=http, closed_by_server=closed)


def tls12_accepted(
    s: ProbeSpec,
    http_status: int | None = 200,
    *,
    chain: tuple[bytes, ...] = FULL_CHAIN,
    certificate_request: bool = True,
) -> ProbeObservation:
    """TLS 1.2 handshake completed. The prober does not wait after a TLS 1.2
    handshake; the HTTP response is the first thing after it (DATA)."""
    if http_status is None:
        return _completed(s, chain, certificate_request, after_handshake=AfterHandshake.NOT_WAITED)
    return _completed(
        s,
        chain,
        certificate_request,
        after_handshake=AfterHandshake.DATA,
        http=_http(http_status, _REASONS.get(http_status, "")),
    )


# -- whole servers ------------------------------------------------------------------


def strict_tls13_server(*, chain: tuple[bytes, ...] = FULL_CHAIN) -> list[ProbeObservation]:
    """A correctly configured TLS 1.3-only mTLS server, probed as the engine does:
    the valid identity on every version, impostors on TLS 1.3."""
    valid = Presented.VALID
    return [
        version_refused(spec(valid, V10)),
        version_refused(spec(valid, V11)),
        version_refused(spec(valid, V12)),
        accepted_with_ticket(spec(valid, V13), chain=chain),
        blocked_post_handshake(spec(Presented.NO_CERT, V13), 116, chain=chain),
        blocked_post_handshake(spec(Presented.ROGUE_CA, V13), 48, chain=chain),
        blocked_post_handshake(spec(Presented.SELF_SIGNED, V13), 48, chain=chain),
    ]


def unreachable_server() -> list[ProbeObservation]:
    return [refused_connection(spec(Presented.VALID, v)) for v in TLSVersion]
