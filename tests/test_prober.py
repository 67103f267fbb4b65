"""The prober's phases and timeouts, on trio's virtual clock: servers live in memory
(``run_probe(open_stream=...)``), and ``MockClock(autojump_threshold=0)`` jumps to the
next deadline whenever everything waits, so a 5-second timeout costs no real time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio
import trio.testing
from memory_tls import REQUIRED, ServerSide, server_context
from observation_builders import PKI

from mtls_audit.scanner.judge import Outcome, judge
from mtls_audit.scanner.model.observations import (
    AfterHandshake,
    Phase,
    Presented,
    ProbeObservation,
    ProbeSpec,
    TLSVersion,
)
from mtls_audit.scanner.model.target import AppProtocol, ClientCredential
from mtls_audit.scanner.probe import Endpoint, HttpRequest, Timeouts, run_probe

OWN = ClientCredential(PKI.client.certificate, (), PKI.client.private_key)
ENDPOINT = Endpoint("127.0.0.1", 8443, "api.test")
TIMEOUTS = Timeouts(connect=5, handshake=5, post_handshake=1, http=5)
HTTP = HttpRequest("/", "api.test")

Handler = Callable[[trio.abc.Stream], Awaitable[None]]


def probe(handler: Handler, spec: ProbeSpec, credential: ClientCredential | None, http: HttpRequest | None = HTTP):
    """Run one probe against ``handler`` on the virtual clock; (observation, seconds)."""

    async def main() -> tuple[ProbeObservation, float]:
        async with trio.open_nursery() as nursery:

            async def open_stream(host: str, port: int) -> trio.abc.Stream:
                ours, theirs = trio.testing.memory_stream_pair()
                nursery.start_soon(handler, theirs)
                return ours

            started = trio.current_time()
            observation = await run_probe(ENDPOINT, spec, credential, TIMEOUTS, http, open_stream=open_stream)
            nursery.cancel_scope.cancel()
        return observation, trio.current_time() - started

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def tls_server(*, after_handshake: str = "answer") -> Handler:
    """A TLS 1.3 server requiring a certificate. ``after_handshake``: "answer" (tickets,
    then 200 to the request) or "mute" (no ticket, no answer: nothing decides)."""

    async def serve(stream: trio.abc.Stream) -> None:
        server = ServerSide(server_context(REQUIRED))
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            done_before = server.handshake_done
            server.receive(data)
            outgoing = server.outgoing()
            if server.handshake_done and after_handshake == "mute":
                if not done_before:
                    continue  # the tickets go nowhere
                outgoing = b""
            if server.received.endswith(b"\r\n\r\n") and after_handshake == "answer":
                server.send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                outgoing += server.outgoing()
                server.received = b""
            if outgoing:
                await stream.send_all(outgoing)

    return serve


async def hung(stream: trio.abc.Stream) -> None:
    await trio.sleep_forever()


VALID_13 = ProbeSpec(Presented.VALID, TLSVersion.TLS1_3)


def test_a_hung_server_times_out_the_handshake_and_is_unknown():
    observation, seconds = probe(hung, VALID_13, OWN)
    assert observation.connected and not observation.server_hello_seen
    assert observation.timed_out is Phase.HANDSHAKE
    assert seconds == TIMEOUTS.handshake
    assert judge(observation, AppProtocol.HTTP).outcome is Outcome.UNKNOWN


def test_a_connection_that_never_opens_times_out_the_connect_phase():
    async def never(host: str, port: int) -> trio.abc.Stream:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def main() -> ProbeObservation:
        return await run_probe(ENDPOINT, VALID_13, OWN, TIMEOUTS, HTTP, open_stream=never)

    observation = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert observation.timed_out is Phase.CONNECT
    assert not observation.connected
    assert "no TCP connection within 5s" in (observation.connect_error or "")


def test_accepted_identity_is_decided_by_its_ticket_and_http_answer():
    observation, seconds = probe(tls_server(), VALID_13, OWN)
    assert observation.after_handshake is AfterHandshake.TICKET
    assert observation.http is not None and observation.http.status == 200
    assert observation.timed_out is None
    assert seconds < TIMEOUTS.post_handshake  # a ticket ends the wait at once
    assert judge(observation, AppProtocol.HTTP).outcome is Outcome.ACCEPTED


def test_mute_after_the_handshake_waits_then_times_out_http_and_stays_unknown():
    observation, seconds = probe(tls_server(after_handshake="mute"), VALID_13, OWN)
    assert observation.handshake_completed
    assert observation.after_handshake is AfterHandshake.TIMEOUT
    assert observation.timed_out is Phase.HTTP
    assert seconds == TIMEOUTS.post_handshake + TIMEOUTS.http
    assert judge(observation, AppProtocol.HTTP).outcome is Outcome.UNKNOWN


def test_mute_with_probe_none_stops_after_the_wait():
    observation, seconds = probe(tls_server(after_handshake="mute"), VALID_13, OWN, http=None)
    assert observation.after_handshake is AfterHandshake.TIMEOUT and observation.http is None
    assert seconds == TIMEOUTS.post_handshake
    assert judge(observation, AppProtocol.NONE).outcome is Outcome.UNKNOWN


def test_refusal_after_the_tls13_handshake_is_recorded_with_its_phase():
    observation, _ = probe(tls_server(), ProbeSpec(Presented.NO_CERT, TLSVersion.TLS1_3), None)
    assert observation.certificate_request_seen and observation.certificate_sent
    assert observation.alert_received is not None and observation.alert_received.code == 116
    assert observation.alert_received.phase is Phase.POST_HANDSHAKE
    assert observation.closed_by_server is None
    assert judge(observation, AppProtocol.HTTP).outcome is Outcome.BLOCKED


def test_a_close_before_the_server_hello_is_recorded_as_the_server_closing():
    async def slam(stream: trio.abc.Stream) -> None:
        await stream.receive_some(65536)
        await stream.aclose()

    observation, _ = probe(slam, ProbeSpec(Presented.VALID, TLSVersion.TLS1_2), OWN)
    assert observation.closed_by_server is Phase.HANDSHAKE
    assert observation.alert_received is None
    assert observation.alert_sent is None  # OpenSSL's reaction to the EOF is not ours
    assert judge(observation, AppProtocol.HTTP).outcome is Outcome.ERROR
