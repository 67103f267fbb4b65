"""Reading gRPC, PostgreSQL and post-handshake-auth probes: the verdict, the client-auth
classification, the explain line and the repro command, from observations shaped as
the prober records them for the real servers (tests/test_protocol_real_servers.py
proves the same against Apache, grpcio and PostgreSQL)."""

from __future__ import annotations

import shlex
from dataclasses import replace

import pytest
from observation_builders import V12, V13, accepted_with_ticket, make_target, spec, tls12_accepted

from mtls_audit.scanner.cli.explain import explain_lines
from mtls_audit.scanner.judge import Layer, Outcome, access_verdict, judge
from mtls_audit.scanner.judge.client_auth import ClientAuth, classify_client_auth
from mtls_audit.scanner.judge.commands import repro_command
from mtls_audit.scanner.model.observations import (
    AfterHandshake,
    Alert,
    GrpcExchange,
    HttpExchange,
    Phase,
    PostgresExchange,
    Presented,
    ProbeObservation,
    ProbeSpec,
)
from mtls_audit.scanner.model.target import AppProtocol, PostgresNegotiation

NO_CERT_13 = spec(Presented.NO_CERT, V13)
VALID_13 = spec(Presented.VALID, V13)
HEALTH = "grpc.health.v1.Health/Check"


def grpc_answer(s: ProbeSpec, **exchange) -> ProbeObservation:
    """TLS 1.3 with h2, a ticket, then the gRPC call's answer."""
    return replace(accepted_with_ticket(s, None), alpn="h2", grpc=GrpcExchange(HEALTH, **exchange))


def postgres_answer(s: ProbeSpec, **exchange) -> ProbeObservation:
    """PostgreSQL sends no TLS 1.3 ticket: the wait times out, then the startup."""
    o = accepted_with_ticket(s, None)
    return replace(
        o,
        after_handshake=AfterHandshake.TIMEOUT,
        session_ticket_received=False,
        postgres=PostgresExchange("postgres", "postgres", **exchange),
    )


# -- gRPC ---------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "name"), [(16, "UNAUTHENTICATED"), (7, "PERMISSION_DENIED")])
def test_a_refusing_grpc_status_is_blocked_at_grpc(code, name):
    o = grpc_answer(NO_CERT_13, http_status=200, grpc_status=code, grpc_message="no peer certificate")
    verdict = judge(o, AppProtocol.GRPC)
    assert (verdict.outcome, verdict.layer) == (Outcome.BLOCKED, Layer.GRPC)
    assert f"gRPC status {code} {name} (no peer certificate)" in verdict.reason


@pytest.mark.parametrize(("code", "name"), [(0, "OK"), (12, "UNIMPLEMENTED"), (5, "NOT_FOUND"), (13, "INTERNAL")])
def test_any_other_grpc_status_reached_the_service(code, name):
    verdict = judge(grpc_answer(NO_CERT_13, http_status=200, grpc_status=code), AppProtocol.GRPC)
    assert (verdict.outcome, verdict.layer) == (Outcome.ACCEPTED, Layer.GRPC)
    assert f"status {code} {name}" in verdict.reason


def test_grpc_without_h2_is_an_error_even_when_the_server_closes():
    # grpcio closes on every client that did not get h2: that close refuses no one.
    o = replace(
        accepted_with_ticket(NO_CERT_13, None),
        after_handshake=AfterHandshake.EOF,
        session_ticket_received=False,
        alpn=None,
    )
    verdict = judge(o, AppProtocol.GRPC)
    assert verdict.outcome is Outcome.ERROR
    assert "needs HTTP/2" in verdict.reason and "chose no protocol" in verdict.reason
    # The same close on an HTTP target is a refusal: only gRPC needs h2.
    assert judge(o, AppProtocol.HTTP).outcome is Outcome.BLOCKED


def test_grpc_on_an_http_server_is_an_error_not_a_pass():
    o = replace(grpc_answer(NO_CERT_13, error="the server did not speak HTTP/2"), alpn="http/1.1")
    verdict = judge(o, AppProtocol.GRPC)
    assert verdict.outcome is Outcome.ERROR
    assert "'http/1.1'" in verdict.reason


def test_a_rejection_alert_still_counts_without_h2():
    # The server judged our certificate before any protocol mattered.
    o = replace(
        accepted_with_ticket(NO_CERT_13, None),
        after_handshake=AfterHandshake.ALERT,
        session_ticket_received=False,
        alert_received=Alert(116, Phase.POST_HANDSHAKE, 9.0),
        alpn=None,
    )
    assert judge(o, AppProtocol.GRPC).outcome is Outcome.BLOCKED


def test_http_403_without_grpc_status_is_blocked():
    verdict = judge(grpc_answer(NO_CERT_13, http_status=403, error="no grpc-status"), AppProtocol.GRPC)
    assert (verdict.outcome, verdict.layer) == (Outcome.BLOCKED, Layer.GRPC)


def test_no_grpc_answer_after_a_ticket_is_accepted_at_tls_only():
    verdict = judge(grpc_answer(NO_CERT_13, error="GOAWAY INTERNAL_ERROR"), AppProtocol.GRPC)
    assert (verdict.outcome, verdict.layer) == (Outcome.ACCEPTED, Layer.TLS)
    assert "GOAWAY" in verdict.reason


def test_an_access_rule_needs_a_grpc_answer():
    rule = ProbeSpec(Presented.IDENTITY, V13, identity="web", request="grpc bank.Payments/Transfer")
    denied = grpc_answer(rule, http_status=200, grpc_status=7)
    assert access_verdict(denied, AppProtocol.GRPC).outcome is Outcome.BLOCKED
    unanswered = grpc_answer(rule, error="timed out")
    verdict = access_verdict(unanswered, AppProtocol.GRPC)
    assert verdict.outcome is Outcome.UNKNOWN and "no gRPC answer" in verdict.reason


# -- PostgreSQL ---------------------------------------------------------------------


@pytest.mark.parametrize("sqlstate", ["28000", "28P01"])
def test_a_postgres_auth_error_is_blocked_at_application(sqlstate):
    o = postgres_answer(
        NO_CERT_13, sqlstate=sqlstate, severity="FATAL", message="connection requires a valid client certificate"
    )
    verdict = judge(o, AppProtocol.POSTGRES)
    assert (verdict.outcome, verdict.layer) == (Outcome.BLOCKED, Layer.APPLICATION)
    assert f"FATAL {sqlstate} connection requires a valid client certificate" in verdict.reason


@pytest.mark.parametrize("request_", ["AuthenticationSASL (SCRAM-SHA-256)", "AuthenticationOk"])
def test_a_postgres_authentication_request_means_the_certificate_was_accepted(request_):
    verdict = judge(postgres_answer(VALID_13, authentication=request_), AppProtocol.POSTGRES)
    assert (verdict.outcome, verdict.layer) == (Outcome.ACCEPTED, Layer.APPLICATION)
    assert request_.split()[0] in verdict.reason


def test_another_postgres_error_decides_nothing():
    o = postgres_answer(NO_CERT_13, sqlstate="53300", severity="FATAL", message="too many connections")
    assert judge(o, AppProtocol.POSTGRES).outcome is Outcome.UNKNOWN


def test_no_ssl_from_postgres_is_an_error():
    o = ProbeObservation(
        spec=NO_CERT_13,
        address="127.0.0.1:5432",
        sni=None,
        client_certificate_sha256=None,
        connected=True,
        postgres=PostgresExchange("postgres", "postgres", error="the server does not accept SSL (answered N)"),
    )
    verdict = judge(o, AppProtocol.POSTGRES)
    assert verdict.outcome is Outcome.ERROR and "answered N" in verdict.reason


def test_a_reset_after_the_startup_message_is_a_refusal_on_tls13():
    # PostgreSQL refusing an untrusted certificate: a client that writes at once may
    # see a reset instead of the alert. No ticket came, so TLS had not accepted it.
    o = replace(
        postgres_answer(NO_CERT_13, error="connection closed without an answer to the StartupMessage"),
        closed_by_server=Phase.HTTP,
    )
    verdict = judge(o, AppProtocol.POSTGRES)
    assert (verdict.outcome, verdict.layer) == (Outcome.BLOCKED, Layer.TLS_POST_HANDSHAKE)


def test_postgres_garbage_on_tls12_is_accepted_at_tls_only():
    o = replace(
        tls12_accepted(spec(Presented.NO_CERT, V12), None),
        postgres=PostgresExchange("postgres", "postgres", error="not PostgreSQL: 'H' is not a backend message type"),
    )
    verdict = judge(o, AppProtocol.POSTGRES)
    assert verdict.layer is Layer.TLS and "not PostgreSQL" in verdict.reason


# -- post-handshake authentication --------------------------------------------------


def pha_refused(s: ProbeSpec, code: int = 116) -> ProbeObservation:
    """Apache, TLS 1.3, SSLVerifyClient require in <Location /secure>: tickets, our
    request, a CertificateRequest, our (empty) Certificate, then the alert."""
    o = accepted_with_ticket(s, None, certificate_request=False)
    return replace(
        o,
        certificate_requested_after_handshake=True,
        certificate_request_trigger="GET /secure HTTP/1.1",
        certificate_sent=True,
        alert_received=Alert(code, Phase.POST_HANDSHAKE, (o.handshake_ms or 0) + 2.5),
        http=HttpExchange("GET /secure HTTP/1.1", error="connection closed without an HTTP response"),
    )


def test_an_alert_after_a_post_handshake_request_is_blocked_and_says_so():
    verdict = judge(pha_refused(NO_CERT_13), AppProtocol.HTTP)
    assert (verdict.outcome, verdict.layer) == (Outcome.BLOCKED, Layer.TLS_POST_HANDSHAKE)
    assert "alert 116 certificate_required" in verdict.reason
    assert "asked for a certificate only after the handshake on GET /secure HTTP/1.1" in verdict.reason


@pytest.mark.parametrize("version", [V13, V12])
def test_after_a_post_handshake_request_the_ticket_proves_nothing(version):
    # Asked after the handshake, answered with a close and no alert: the ticket (or the
    # TLS 1.2 Finished) came before the server judged the certificate.
    base = pha_refused(spec(Presented.NO_CERT, version))
    o = replace(base, alert_received=None, negotiated_version=version.value, closed_by_server=Phase.HTTP)
    verdict = judge(o, AppProtocol.HTTP)
    assert (verdict.outcome, verdict.layer) == (Outcome.BLOCKED, Layer.TLS_POST_HANDSHAKE)
    silent = replace(o, closed_by_server=None, http=HttpExchange("GET /secure HTTP/1.1", error="no HTTP response"))
    assert judge(silent, AppProtocol.HTTP).outcome is Outcome.UNKNOWN


def test_classification_required_after_handshake():
    valid = replace(
        accepted_with_ticket(VALID_13, 200, certificate_request=False, path="/secure"),
        certificate_requested_after_handshake=True,
        certificate_request_trigger="GET /secure HTTP/1.1",
    )
    auth = classify_client_auth(V13, valid, [pha_refused(NO_CERT_13)], AppProtocol.HTTP)
    assert auth.classification is ClientAuth.REQUIRED_AFTER_HANDSHAKE
    assert auth.detail.startswith("CertificateRequest after the handshake (on GET /secure HTTP/1.1)")
    assert auth.entry().classification == "required-after-handshake"


def test_asked_after_the_handshake_and_let_in_is_optional():
    let_in = replace(
        accepted_with_ticket(NO_CERT_13, 200, certificate_request=False), certificate_requested_after_handshake=True
    )
    auth = classify_client_auth(V13, None, [let_in], AppProtocol.HTTP)
    assert auth.classification is ClientAuth.OPTIONAL


def test_explain_tells_the_post_handshake_story_in_order():
    [line] = explain_lines(make_target(http_path="/secure"), [pha_refused(NO_CERT_13)])
    story = [
        "handshake done",
        "session ticket",
        "sent GET /secure HTTP/1.1",
        "CertificateRequest after the handshake",
        "empty Certificate sent",
        "alert 116 certificate_required",
    ]
    positions = [line.index(part) for part in story]
    assert positions == sorted(positions), line
    assert line.endswith("=> blocked at tls-post-handshake")


def test_explain_shows_grpc_and_postgres_answers():
    grpc_target = make_target(app_protocol=AppProtocol.GRPC)
    [line] = explain_lines(grpc_target, [grpc_answer(NO_CERT_13, http_status=200, grpc_status=16, at_ms=4.0)])
    assert "ALPN h2" in line and "grpc-status 16 UNAUTHENTICATED at 4.0 ms" in line
    assert line.endswith("=> blocked at grpc")
    pg_target = make_target(app_protocol=AppProtocol.POSTGRES)
    o = postgres_answer(VALID_13, authentication="AuthenticationSASL (SCRAM-SHA-256)", at_ms=1005.0)
    [line] = explain_lines(pg_target, [o])
    assert "PostgreSQL AuthenticationSASL (SCRAM-SHA-256) at 1005.0 ms" in line
    assert line.endswith("=> accepted (application layer)")


# -- repro commands -----------------------------------------------------------------


def test_grpc_on_tls13_repeats_with_grpcurl():
    target = make_target(app_protocol=AppProtocol.GRPC, grpc_service="bank.Payments")
    words = shlex.split(repro_command(target, VALID_13).command)
    assert words[:2] == ["grpcurl", "-insecure"]
    assert words[words.index("-cert") + 1] == str(target.identity.cert_path)
    assert words[words.index("-servername") + 1] == "api.test"
    assert words[words.index("-d") + 1] == '{"service": "bank.Payments"}'
    assert words[-2:] == ["127.0.0.1:8443", "grpc.health.v1.Health/Check"]
    rule = ProbeSpec(Presented.IDENTITY, V13, identity="web", request="grpc bank.Payments/Transfer")
    words = shlex.split(repro_command(target, rule, target.identity).command)
    assert words[-1] == "bank.Payments/Transfer" and "-proto" not in words


def test_grpc_on_tls12_repeats_with_s_client_offering_h2():
    target = make_target(app_protocol=AppProtocol.GRPC)
    command = repro_command(target, spec(Presented.NO_CERT, V12)).command
    words = shlex.split(command.partition("|")[2])
    assert words[:2] == ["openssl", "s_client"] and "-tls1_2" in words
    assert words[words.index("-alpn") + 1] == "h2"


def test_postgres_repeats_with_psql_pinned_to_the_version():
    target = make_target(app_protocol=AppProtocol.POSTGRES, postgres_user="payment")
    words = shlex.split(repro_command(target, spec(Presented.ROGUE_CA, V12)).command)
    assert words[:4] == ["psql", "-w", "-c", "SELECT 1"]
    settings = dict(item.split("=", 1) for item in words[4].split())
    assert settings["host"] == "api.test" and settings["hostaddr"] == "127.0.0.1"
    assert settings["user"] == "payment" and settings["sslmode"] == "verify-full"
    assert settings["sslrootcert"] == "/etc/mtls-audit/ca.pem"
    assert settings["sslcert"] == "rogue-client.pem"
    assert settings["ssl_min_protocol_version"] == settings["ssl_max_protocol_version"] == "TLSv1.2"
    assert "sslnegotiation" not in settings
    direct = make_target(app_protocol=AppProtocol.POSTGRES, postgres_negotiation=PostgresNegotiation.DIRECT)
    no_cert = shlex.split(repro_command(direct, NO_CERT_13).command)[4]
    assert "sslnegotiation=direct" in no_cert and "sslcert" not in no_cert


# -- the report keeps every new fact ------------------------------------------------


def test_new_facts_round_trip_through_the_report():
    observations = [
        pha_refused(NO_CERT_13),
        grpc_answer(VALID_13, http_status=200, grpc_status=12, grpc_message="unknown service", at_ms=3.0),
        postgres_answer(VALID_13, sqlstate="28000", severity="FATAL", message="no", at_ms=1001.0),
        replace(
            postgres_answer(VALID_13, error="no"), postgres=PostgresExchange("u", "d", "direct", error="no answer")
        ),
    ]
    for o in observations:
        saved = replace(o, peer_chain_der=(), peer_chain_sha256=o.chain_fingerprints)  # a report keeps fingerprints
        assert ProbeObservation.from_dict(o.to_dict()) == saved
    assert observations[0].to_dict()["certificate_request_trigger"] == "GET /secure HTTP/1.1"
    assert observations[1].to_dict()["grpc"] == {
        "method": HEALTH,
        "http_status": 200,
        "grpc_status": 12,
        "grpc_message": "unknown service",
        "at_ms": 3.0,
    }
