"""TLS contexts built once per credential and version, shared by every probe.

A shared context must not share what belongs to one connection: the info callback
fires for every connection made from the context, so each connection's
CertificateRequest, alerts and tickets must reach that connection's events only,
however the handshakes interleave. Servers live in memory (``memory_tls``); the
prober runs on trio's virtual clock, as in ``test_prober``."""

from __future__ import annotations

import trio
import trio.testing
from memory_tls import REQUIRED, ServerSide, server_context
from observation_builders import PKI
from OpenSSL import SSL, crypto

from mtls_audit.scanner.model.observations import (
    AfterHandshake,
    Phase,
    Presented,
    ProbeObservation,
    ProbeSpec,
    TLSVersion,
)
from mtls_audit.scanner.model.target import ClientCredential
from mtls_audit.scanner.probe import Endpoint, HttpRequest, Timeouts, run_probe
from mtls_audit.scanner.tls.client import (
    AlertReceived,
    CertificateRequested,
    CertificateSent,
    Event,
    HandshakeCompleted,
    SessionTicketReceived,
    TLSClientConnection,
)
from mtls_audit.scanner.tls.contexts import ContextCache

OWN = ClientCredential(PKI.client.certificate, (), PKI.client.private_key)
EXPIRED = ClientCredential(PKI.expired_client.certificate, (), PKI.expired_client.private_key)
ENDPOINT = Endpoint("127.0.0.1", 8443, "api.test")
TIMEOUTS = Timeouts(connect=5, handshake=5, post_handshake=1, http=5)
HTTP = HttpRequest("/", "api.test")
NO_CLIENT_AUTH = SSL.VERIFY_NONE  # never sends a CertificateRequest


def untrusting_server_context() -> SSL.Context:
    """Requires a client certificate but trusts only the intermediate, which did not
    issue ours: our certificate is refused with unknown_ca (48)."""
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.use_certificate(PKI.server.certificate)
    context.use_privatekey(PKI.server.private_key)
    context.add_extra_chain_cert(PKI.intermediate.certificate)
    store = context.get_cert_store()
    assert store is not None
    store.add_cert(crypto.X509.from_cryptography(PKI.intermediate.certificate))
    context.set_verify(REQUIRED)
    return context


# -- the cache --------------------------------------------------------------------------


def test_one_context_per_credential_and_version():
    cache = ContextCache()
    own_13 = cache.context(TLSVersion.TLS1_3, OWN)
    assert cache.context(TLSVersion.TLS1_3, OWN) is own_13
    assert cache.context(TLSVersion.TLS1_2, OWN) is not own_13
    assert cache.context(TLSVersion.TLS1_3, EXPIRED) is not own_13
    assert cache.context(TLSVersion.TLS1_3, None) is not own_13
    assert cache.context(TLSVersion.TLS1_3, None) is cache.context(TLSVersion.TLS1_3, None)
    assert cache.built == 4 and len(cache) == 3


def test_the_fingerprint_is_the_certificates_sha256():
    from cryptography.hazmat.primitives import hashes

    cache = ContextCache()
    assert cache.certificate_sha256(OWN) == PKI.client.certificate.fingerprint(hashes.SHA256()).hex()
    assert cache.certificate_sha256(EXPIRED) != cache.certificate_sha256(OWN)
    assert cache.certificate_sha256(None) is None


def test_an_equal_credential_loaded_again_gets_its_own_context_never_a_wrong_one():
    copy = ClientCredential(OWN.certificate, OWN.chain, OWN.private_key)
    cache = ContextCache()
    assert cache.context(TLSVersion.TLS1_3, copy) is not cache.context(TLSVersion.TLS1_3, OWN)


def test_the_cache_is_bounded_least_recently_used_out():
    cache = ContextCache(max_credentials=2)
    own = cache.context(TLSVersion.TLS1_3, OWN)
    expired = cache.context(TLSVersion.TLS1_3, EXPIRED)
    assert cache.context(TLSVersion.TLS1_3, OWN) is own  # OWN is now the most recent
    cache.context(TLSVersion.TLS1_3, None)  # evicts EXPIRED
    assert len(cache) == 2
    assert cache.context(TLSVersion.TLS1_3, OWN) is own
    assert cache.context(TLSVersion.TLS1_3, EXPIRED) is not expired  # built again


# -- one context, many connections ------------------------------------------------------


def interleaved(pairs: list[tuple[TLSClientConnection, ServerSide]], rounds: int = 8) -> list[list[Event]]:
    """Drive several handshakes one step each in turn, so their callbacks interleave."""
    events = [client.start() for client, _ in pairs]
    for _ in range(rounds):
        for index, (client, server) in enumerate(pairs):
            server.receive(client.bytes_to_send())
            incoming = server.outgoing()
            if incoming:
                events[index] += client.receive_data(incoming)
    return events


def kinds(events: list[Event]) -> list[type]:
    return [type(event) for event in events]


def test_a_refusal_and_an_acceptance_on_one_context_keep_their_own_facts_tls13():
    """No certificate, one context: a server that requires one refuses (116, after
    the handshake); one that never asks lets the client in. Neither sees the other's
    CertificateRequest or alert."""
    context = ContextCache().context(TLSVersion.TLS1_3, None)
    refused = TLSClientConnection(context, "api.test")
    accepted = TLSClientConnection(context, "api.test")
    refused_events, accepted_events = interleaved(
        [(refused, ServerSide(server_context(REQUIRED))), (accepted, ServerSide(server_context(NO_CLIENT_AUTH)))]
    )
    assert CertificateRequested in kinds(refused_events)
    assert [e for e in refused_events if isinstance(e, AlertReceived)] == [AlertReceived(116, fatal=True)]
    assert refused.finished
    assert CertificateRequested not in kinds(accepted_events)
    assert CertificateSent not in kinds(accepted_events)
    assert AlertReceived not in kinds(accepted_events)
    assert SessionTicketReceived in kinds(accepted_events) and not accepted.finished


def test_a_refusal_inside_the_handshake_stays_with_its_connection_tls12():
    context = ContextCache().context(TLSVersion.TLS1_2, OWN)
    refused = TLSClientConnection(context, "api.test")
    accepted = TLSClientConnection(context, "api.test")
    refused_events, accepted_events = interleaved(
        [(refused, ServerSide(untrusting_server_context())), (accepted, ServerSide(server_context(REQUIRED)))]
    )
    assert AlertReceived(48, fatal=True) in refused_events
    assert HandshakeCompleted not in kinds(refused_events)
    assert CertificateRequested in kinds(accepted_events) and HandshakeCompleted in kinds(accepted_events)
    assert AlertReceived not in kinds(accepted_events)
    assert not accepted.finished


def test_every_connection_from_a_shared_context_is_a_full_handshake():
    """A resumed TLS 1.3 session has no CertificateRequest: a context that resumed
    would hide the server's verdict from every probe after the first."""
    context = ContextCache().context(TLSVersion.TLS1_3, OWN)
    server = server_context(REQUIRED)
    for _ in range(3):
        [events] = interleaved([(TLSClientConnection(context, "api.test"), ServerSide(server))])
        assert CertificateRequested in kinds(events) and CertificateSent in kinds(events)
        assert SessionTicketReceived in kinds(events)


def test_a_context_from_elsewhere_still_reports_its_events():
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_3_VERSION)
    context.set_verify(SSL.VERIFY_NONE)
    for _ in range(2):
        [events] = interleaved([(TLSClientConnection(context, "api.test"), ServerSide(server_context(REQUIRED)))])
        assert CertificateRequested in kinds(events)
        assert AlertReceived(116, fatal=True) in events


# -- through the prober ----------------------------------------------------------------


def serving(context: SSL.Context):
    """A TLS server in memory: answers 200 to a request once its handshake is done."""

    async def serve(stream: trio.abc.Stream) -> None:
        server = ServerSide(context)
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            server.receive(data)
            outgoing = server.outgoing()
            if server.received.endswith(b"\r\n\r\n"):
                server.send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                outgoing += server.outgoing()
                server.received = b""
            if outgoing:
                try:
                    await stream.send_all(outgoing)
                except trio.BrokenResourceError:
                    return

    return serve


def probe_concurrently(
    cache: ContextCache, probes: list[tuple[ProbeSpec, ClientCredential | None, SSL.Context]]
) -> list[ProbeObservation]:
    """Run the probes at once, each against its own in-memory server."""
    results: list[ProbeObservation | None] = [None] * len(probes)

    async def main() -> None:
        async with trio.open_nursery() as servers:
            async with trio.open_nursery() as probing:
                for index, (spec, credential, server) in enumerate(probes):

                    async def open_stream(host: str, port: int, server: SSL.Context = server) -> trio.abc.Stream:
                        ours, theirs = trio.testing.memory_stream_pair()
                        servers.start_soon(serving(server), theirs)
                        return ours

                    async def one(index: int, spec: ProbeSpec, credential: ClientCredential | None, opener) -> None:
                        results[index] = await run_probe(
                            ENDPOINT, spec, credential, TIMEOUTS, HTTP, open_stream=opener, contexts=cache
                        )

                    probing.start_soon(one, index, spec, credential, open_stream)
            servers.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert all(result is not None for result in results)
    return [result for result in results if result is not None]


def test_concurrent_probes_share_one_context_and_keep_their_own_observations():
    cache = ContextCache()
    no_cert_13 = ProbeSpec(Presented.NO_CERT, TLSVersion.TLS1_3)
    refused, accepted = probe_concurrently(
        cache, [(no_cert_13, None, server_context(REQUIRED)), (no_cert_13, None, server_context(NO_CLIENT_AUTH))]
    )
    assert cache.built == 1  # one context served both probes
    assert refused.certificate_request_seen and refused.certificate_sent
    assert refused.alert_received is not None and refused.alert_received.code == 116
    assert refused.alert_received.phase is Phase.POST_HANDSHAKE
    assert refused.after_handshake is AfterHandshake.ALERT and refused.http is None
    assert not accepted.certificate_request_seen and not accepted.certificate_sent
    assert accepted.alert_received is None and accepted.client_ca_names == ()
    assert accepted.after_handshake is AfterHandshake.TICKET
    assert accepted.http is not None and accepted.http.status == 200


def test_probes_reuse_contexts_per_credential_and_version_only():
    cache = ContextCache()
    server = server_context(REQUIRED)
    valid_13 = ProbeSpec(Presented.VALID, TLSVersion.TLS1_3)
    observations = probe_concurrently(
        cache,
        [
            (valid_13, OWN, server),
            (ProbeSpec(Presented.VALID, TLSVersion.TLS1_3, 2), OWN, server),
            (ProbeSpec(Presented.VALID, TLSVersion.TLS1_2), OWN, server),
            (ProbeSpec(Presented.ROGUE_CA, TLSVersion.TLS1_3), EXPIRED, server),
        ],
    )
    assert cache.built == 3  # OWN at 1.3 once, OWN at 1.2, EXPIRED at 1.3
    own_13, own_13_again, own_12, expired_13 = observations
    for observation in (own_13, own_13_again, own_12):
        assert observation.client_certificate_sha256 == cache.certificate_sha256(OWN)
        assert observation.certificate_request_seen and observation.alert_received is None
        assert observation.http is not None and observation.http.status == 200
    assert own_12.negotiated_version == "TLSv1.2" and own_13.negotiated_version == "TLSv1.3"
    assert expired_13.client_certificate_sha256 == cache.certificate_sha256(EXPIRED)
    assert expired_13.alert_received is not None and expired_13.alert_received.code == 45  # certificate_expired
