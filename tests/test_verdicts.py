"""mtls_audit.scanner.judge: reading observations as accepted / blocked / unknown / error,
version support, client-auth classification, and the reproducible openssl lines."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from observation_builders import (
    PKI,
    V10,
    V11,
    V12,
    V13,
    accepted_with_ticket,
    blocked_in_handshake,
    blocked_post_handshake,
    client_aborted,
    closed_before_server_hello,
    closed_in_handshake,
    eof_after_handshake,
    identity,
    make_target,
    no_verdict_after_handshake,
    openssl_cannot_offer,
    our_session_broke,
    refused_connection,
    session_broken,
    spec,
    timed_out,
    tls12_accepted,
    version_refused,
)

from mtls_audit.scanner.judge import (
    REJECTION_ALERTS,
    ClientAuth,
    Layer,
    Outcome,
    VersionSupport,
    accepted_versions,
    classify_client_auth,
    judge,
    openssl_command,
    version_support,
)
from mtls_audit.scanner.model.observations import Phase, Presented, TLSVersion
from mtls_audit.scanner.model.target import AppProtocol

HTTP = AppProtocol.HTTP
NONE = AppProtocol.NONE
NO_CERT_13 = spec(Presented.NO_CERT, V13)
NO_CERT_12 = spec(Presented.NO_CERT, V12)
VALID_13 = spec(Presented.VALID, V13)
VALID_12 = spec(Presented.VALID, V12)
ROGUE_12 = spec(Presented.ROGUE_CA, V12)


# -- judge ---------------------------------------------------------------------------


class TestJudgeNoTLS:
    def test_refused_connection_is_an_error(self):
        verdict = judge(refused_connection(NO_CERT_13), HTTP)
        assert verdict.outcome is Outcome.ERROR
        assert verdict.layer is None
        assert "Connection refused" in verdict.reason

    def test_connect_timeout_is_an_error_not_acceptance(self):
        verdict = judge(timed_out(NO_CERT_13, Phase.CONNECT), HTTP)
        assert verdict.outcome is Outcome.ERROR
        assert "no TCP connection" in verdict.reason

    @pytest.mark.parametrize("app", [HTTP, NONE])
    def test_hung_server_is_unknown_never_accepted(self, app):
        verdict = judge(timed_out(NO_CERT_13, Phase.HANDSHAKE), app)
        assert verdict.outcome is Outcome.UNKNOWN
        assert verdict.layer is None
        assert "timeout" in verdict.reason

    def test_stall_after_server_hello_is_unknown(self):
        verdict = judge(timed_out(NO_CERT_12, Phase.HANDSHAKE, server_hello=True), HTTP)
        assert verdict.outcome is Outcome.UNKNOWN
        assert "stalled" in verdict.reason

    def test_version_refused_without_server_hello_is_an_error(self):
        verdict = judge(version_refused(NO_CERT_12), HTTP)
        assert verdict.outcome is Outcome.ERROR
        assert "TLSv1.2" in verdict.reason
        assert "70 protocol_version" in verdict.reason


class TestJudgeTLS:
    def test_alert_in_the_handshake_blocks_at_tls_handshake(self):
        verdict = judge(blocked_in_handshake(NO_CERT_12, 40), HTTP)
        assert verdict.outcome is Outcome.BLOCKED
        assert verdict.layer is Layer.TLS_HANDSHAKE
        assert "40 handshake_failure" in verdict.reason

    def test_close_right_after_our_certificate_blocks_where_our_identity_completes(self):
        """Node.js with rejectUnauthorized on TLS 1.2 closes without an alert right
        after an untrusted certificate; our own identity completes the same handshake."""
        verdict = judge(closed_in_handshake(ROGUE_12), HTTP, reference=tls12_accepted(VALID_12))
        assert verdict.outcome is Outcome.BLOCKED
        assert verdict.layer is Layer.TLS_HANDSHAKE
        assert "without an alert right after our Certificate" in verdict.reason

    def test_close_in_the_handshake_without_a_yardstick_is_unknown(self):
        assert judge(closed_in_handshake(ROGUE_12), HTTP).outcome is Outcome.UNKNOWN
        refused = blocked_in_handshake(VALID_12, 42)
        assert judge(closed_in_handshake(ROGUE_12), HTTP, reference=refused).outcome is Outcome.UNKNOWN

    def test_close_before_our_certificate_is_unknown(self):
        o = closed_in_handshake(ROGUE_12, certificate_sent=False)
        verdict = judge(o, HTTP, reference=tls12_accepted(VALID_12))
        assert verdict.outcome is Outcome.UNKNOWN
        assert "before we sent a Certificate" in verdict.reason

    def test_close_before_the_server_hello_is_an_error_not_a_block(self):
        verdict = judge(closed_before_server_hello(NO_CERT_12), HTTP, reference=tls12_accepted(VALID_12))
        assert verdict.outcome is Outcome.ERROR
        assert "before the ServerHello" in verdict.reason

    @pytest.mark.parametrize("code", [10, 20, 47, 50, 51, 80])
    def test_protocol_error_alert_in_the_handshake_is_an_error(self, code):
        assert code not in REJECTION_ALERTS
        verdict = judge(blocked_in_handshake(NO_CERT_12, code), HTTP)
        assert verdict.outcome is Outcome.ERROR
        assert "not a refusal" in verdict.reason

    @pytest.mark.parametrize("code", sorted(REJECTION_ALERTS))
    def test_rejection_alerts_block(self, code):
        assert judge(blocked_in_handshake(NO_CERT_12, code), HTTP).outcome is Outcome.BLOCKED
        assert judge(blocked_post_handshake(NO_CERT_13, code), HTTP).outcome is Outcome.BLOCKED

    def test_our_own_client_aborting_is_an_error_not_a_block(self):
        o = client_aborted(NO_CERT_12)
        assert o.alert_sent is not None and o.alert_received is None
        verdict = judge(o, HTTP)
        assert verdict.outcome is Outcome.ERROR
        assert "our client aborted" in verdict.reason

    def test_post_handshake_alert_blocks_at_tls_post_handshake(self):
        verdict = judge(blocked_post_handshake(NO_CERT_13, 116), HTTP)
        assert verdict.outcome is Outcome.BLOCKED
        assert verdict.layer is Layer.TLS_POST_HANDSHAKE
        assert "116 certificate_required" in verdict.reason
        # 2.02 ms alert - 1.66 ms handshake
        assert "0.4 ms" in verdict.reason

    def test_post_handshake_alert_without_handshake_time(self):
        o = replace(blocked_post_handshake(NO_CERT_13, 48), handshake_ms=None)
        verdict = judge(o, NONE)
        assert verdict.outcome is Outcome.BLOCKED
        assert verdict.layer is Layer.TLS_POST_HANDSHAKE
        assert "48 unknown_ca" in verdict.reason

    @pytest.mark.parametrize("code", [20, 50, 10, 80])
    def test_broken_session_after_the_handshake_is_an_error_not_a_block(self, code):
        """A KeyUpdate our client mishandled, answered with bad_record_mac: the failure
        is ours, and it must never read as "blocked"."""
        verdict = judge(session_broken(NO_CERT_13, code), HTTP)
        assert verdict.outcome is Outcome.ERROR
        assert verdict.layer is None
        assert "not a refusal" in verdict.reason

    def test_our_alert_after_the_handshake_is_an_error(self):
        verdict = judge(our_session_broke(NO_CERT_13), HTTP)
        assert verdict.outcome is Outcome.ERROR
        assert "our side of the session broke" in verdict.reason
        assert "decode_error" in verdict.reason

    def test_server_alert_after_ours_answers_our_failure(self):
        o = replace(our_session_broke(NO_CERT_13), alert_received=blocked_post_handshake(NO_CERT_13).alert_received)
        assert judge(o, HTTP).outcome is Outcome.ERROR

    def test_a_local_failure_is_an_error_whatever_else_was_seen(self):
        o = replace(blocked_post_handshake(NO_CERT_13), local_error="could not send 310 bytes within 5s")
        verdict = judge(o, HTTP)
        assert verdict.outcome is Outcome.ERROR
        assert "our side failed" in verdict.reason

    def test_eof_right_after_handshake_blocks(self):
        verdict = judge(eof_after_handshake(NO_CERT_13), HTTP)
        assert verdict.outcome is Outcome.BLOCKED
        assert verdict.layer is Layer.TLS_POST_HANDSHAKE

    def test_ticket_without_http_is_accepted_at_tls(self):
        verdict = judge(accepted_with_ticket(NO_CERT_13, http_status=None), NONE)
        assert verdict.outcome is Outcome.ACCEPTED
        assert verdict.layer is Layer.TLS
        assert "session ticket" in verdict.reason

    def test_tls12_completed_handshake_without_http_is_accepted_at_tls(self):
        verdict = judge(tls12_accepted(NO_CERT_12, http_status=None), NONE)
        assert verdict.outcome is Outcome.ACCEPTED
        assert verdict.layer is Layer.TLS
        assert "TLS 1.2" in verdict.reason

    def test_tls13_without_ticket_and_probe_none_is_unknown(self):
        verdict = judge(no_verdict_after_handshake(NO_CERT_13), NONE)
        assert verdict.outcome is Outcome.UNKNOWN
        assert verdict.layer is None
        assert "probe: none" in verdict.reason

    def test_tls13_without_ticket_or_http_is_unknown_with_http_protocol(self):
        verdict = judge(no_verdict_after_handshake(NO_CERT_13), HTTP)
        assert verdict.outcome is Outcome.UNKNOWN

    def test_tls13_no_ticket_then_closed_during_http_blocks(self):
        o = no_verdict_after_handshake(NO_CERT_13, http_error="connection closed without an HTTP response")
        verdict = judge(o, HTTP)
        assert verdict.outcome is Outcome.BLOCKED
        assert verdict.layer is Layer.TLS_POST_HANDSHAKE

    def test_tls13_no_ticket_then_http_timeout_is_unknown(self):
        o = replace(
            no_verdict_after_handshake(NO_CERT_13, http_error="no HTTP response within 5s"), timed_out=Phase.HTTP
        )
        verdict = judge(o, HTTP)
        assert verdict.outcome is Outcome.UNKNOWN
        assert "no HTTP response" in verdict.reason


class TestJudgeHTTP:
    def test_ticket_and_200_is_accepted_at_http(self):
        verdict = judge(accepted_with_ticket(NO_CERT_13, 200), HTTP)
        assert verdict.outcome is Outcome.ACCEPTED
        assert verdict.layer is Layer.HTTP
        assert "200 OK" in verdict.reason

    @pytest.mark.parametrize("status", [400, 401, 403, 495, 496])
    def test_refusing_status_after_ticket_blocks_at_http(self, status):
        verdict = judge(accepted_with_ticket(NO_CERT_13, status), HTTP)
        assert verdict.outcome is Outcome.BLOCKED
        assert verdict.layer is Layer.HTTP
        assert str(status) in verdict.reason

    def test_nginx_400_on_tls12_also_blocks_at_http(self):
        verdict = judge(tls12_accepted(NO_CERT_12, 400), HTTP)
        assert verdict.outcome is Outcome.BLOCKED
        assert verdict.layer is Layer.HTTP

    @pytest.mark.parametrize("status", [404, 302, 204])
    def test_not_found_and_redirect_are_accepted(self, status):
        verdict = judge(accepted_with_ticket(NO_CERT_13, status), HTTP)
        assert verdict.outcome is Outcome.ACCEPTED
        assert verdict.layer is Layer.HTTP

    @pytest.mark.parametrize("status", [500, 502, 418])
    def test_other_statuses_are_unknown(self, status):
        verdict = judge(accepted_with_ticket(NO_CERT_13, status), HTTP)
        assert verdict.outcome is Outcome.UNKNOWN
        assert str(status) in verdict.reason

    def test_http_status_decides_even_without_a_ticket(self):
        o = replace(no_verdict_after_handshake(NO_CERT_13), http=accepted_with_ticket(NO_CERT_13, 200).http)
        verdict = judge(o, HTTP)
        assert verdict.outcome is Outcome.ACCEPTED
        assert verdict.layer is Layer.HTTP

    def test_post_handshake_alert_wins_over_http(self):
        o = replace(blocked_post_handshake(NO_CERT_13), http=accepted_with_ticket(NO_CERT_13, 200).http)
        assert judge(o, HTTP).outcome is Outcome.BLOCKED


# -- version support ---------------------------------------------------------------


class TestVersionSupport:
    def test_server_hello_with_pinned_version_is_accepted(self):
        support, why = version_support(accepted_with_ticket(VALID_13))
        assert support is VersionSupport.ACCEPTED
        assert "TLSv1.3" in why

    def test_version_counts_even_when_the_certificate_is_refused(self):
        support, _ = version_support(blocked_in_handshake(NO_CERT_12))
        assert support is VersionSupport.ACCEPTED

    def test_protocol_version_alert_is_refused(self):
        support, why = version_support(version_refused(VALID_12))
        assert support is VersionSupport.REFUSED
        assert "protocol_version" in why

    def test_hung_server_is_unknown(self):
        support, why = version_support(timed_out(VALID_12, Phase.HANDSHAKE))
        assert support is VersionSupport.UNKNOWN
        assert "handshake" in why

    def test_refused_connection_is_unknown(self):
        support, why = version_support(refused_connection(VALID_12))
        assert support is VersionSupport.UNKNOWN
        assert "Connection refused" in why

    def test_close_before_the_server_hello_is_unknown_not_refused(self):
        """A listener that went away resets the old-version probes before any TLS
        byte: that must not read as "refuses TLS 1.2"."""
        support, why = version_support(closed_before_server_hello(VALID_12))
        assert support is VersionSupport.UNKNOWN
        assert "ambiguous" in why

    def test_local_openssl_unable_to_offer_is_unknown(self):
        support, why = version_support(openssl_cannot_offer(spec(Presented.VALID, V10)))
        assert support is VersionSupport.UNKNOWN
        assert "cannot offer" in why

    def test_accepted_versions_counts_only_version_probes_oldest_first(self):
        observations = [
            accepted_with_ticket(VALID_13),
            version_refused(spec(Presented.VALID, V10)),
            tls12_accepted(VALID_12),
            timed_out(spec(Presented.VALID, V11)),
            # an impostor "accepted" on TLS 1.1 does not make 1.1 a version in play
            blocked_in_handshake(spec(Presented.ROGUE_CA, V11)),
        ]
        assert accepted_versions(observations) == [V12, V13]

    def test_accepted_versions_includes_no_cert_probes(self):
        assert accepted_versions([blocked_post_handshake(NO_CERT_13)]) == [V13]


# -- client auth classification ----------------------------------------------------


class TestClassifyClientAuth:
    def test_required_when_requested_and_blocked(self):
        auth = classify_client_auth(V13, accepted_with_ticket(VALID_13), [blocked_post_handshake(NO_CERT_13)], HTTP)
        assert auth.classification is ClientAuth.REQUIRED
        assert auth.blocked_at is Layer.TLS_POST_HANDSHAKE
        assert auth.entry().blocked_at == "tls-post-handshake"

    def test_required_on_tls12_blocked_in_handshake(self):
        auth = classify_client_auth(V12, tls12_accepted(VALID_12), [blocked_in_handshake(NO_CERT_12, 40)], HTTP)
        assert auth.classification is ClientAuth.REQUIRED
        assert auth.blocked_at is Layer.TLS_HANDSHAKE

    def test_required_by_http_layer(self):
        auth = classify_client_auth(V13, accepted_with_ticket(VALID_13), [accepted_with_ticket(NO_CERT_13, 400)], HTTP)
        assert auth.classification is ClientAuth.REQUIRED
        assert auth.blocked_at is Layer.HTTP

    def test_optional_when_requested_but_let_in(self):
        auth = classify_client_auth(V13, accepted_with_ticket(VALID_13), [accepted_with_ticket(NO_CERT_13)], HTTP)
        assert auth.classification is ClientAuth.OPTIONAL
        assert auth.blocked_at is None
        assert "CertificateRequest seen" in auth.detail

    def test_not_requested_when_never_asked_and_let_in(self):
        valid = accepted_with_ticket(VALID_13, certificate_request=False)
        no_cert = accepted_with_ticket(NO_CERT_13, certificate_request=False)
        auth = classify_client_auth(V13, valid, [no_cert], HTTP)
        assert auth.classification is ClientAuth.NOT_REQUESTED
        assert auth.certificate_request_seen is False
        assert "no CertificateRequest" in auth.detail

    def test_blocked_without_certificate_request_is_unknown(self):
        valid = accepted_with_ticket(VALID_13, certificate_request=False)
        no_cert = blocked_post_handshake(NO_CERT_13, 49, certificate_request=False)
        auth = classify_client_auth(V13, valid, [no_cert], HTTP)
        assert auth.classification is ClientAuth.UNKNOWN

    def test_undecided_no_cert_probe_is_unknown(self):
        auth = classify_client_auth(V13, accepted_with_ticket(VALID_13), [no_verdict_after_handshake(NO_CERT_13)], NONE)
        assert auth.classification is ClientAuth.UNKNOWN
        assert "unknown" in auth.detail

    def test_no_cert_probe_missing_is_unknown(self):
        auth = classify_client_auth(V13, accepted_with_ticket(VALID_13), [], HTTP)
        assert auth.classification is ClientAuth.UNKNOWN
        assert auth.certificate_request_seen is True
        assert "not run" in auth.detail

    def test_one_attempt_that_gets_in_makes_the_version_optional(self):
        """Behind a load balancer whose backends disagree: one attempt blocked, one in."""
        attempts = [blocked_post_handshake(NO_CERT_13), accepted_with_ticket(spec(Presented.NO_CERT, V13, 2))]
        auth = classify_client_auth(V13, accepted_with_ticket(VALID_13), attempts, HTTP)
        assert auth.classification is ClientAuth.OPTIONAL
        assert auth.blocked_at is None
        assert auth.no_cert.inconsistency == "inconsistent: 1 of 2 attempts got in"
        assert "inconsistent: 1 of 2 attempts got in" in auth.detail
        assert "HTTP answered 200 OK" in auth.detail

    def test_required_needs_every_attempt_blocked(self):
        attempts = [blocked_post_handshake(NO_CERT_13), no_verdict_after_handshake(spec(Presented.NO_CERT, V13, 2))]
        auth = classify_client_auth(V13, accepted_with_ticket(VALID_13), attempts, NONE)
        assert auth.classification is ClientAuth.UNKNOWN
        both = [blocked_post_handshake(NO_CERT_13), blocked_post_handshake(spec(Presented.NO_CERT, V13, 2))]
        assert (
            classify_client_auth(V13, accepted_with_ticket(VALID_13), both, HTTP).classification is ClientAuth.REQUIRED
        )


# -- openssl_command ---------------------------------------------------------------


def _parts(command: str) -> tuple[list[str], list[str]]:
    """(the stdin producer, the openssl argv) of ``producer | openssl ...``."""
    tokens = shlex.split(command)
    bar = tokens.index("|")
    return tokens[:bar], tokens[bar + 1 :]


def _value_after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


class TestOpensslCommand:
    def test_dns_server_name_is_sent_as_sni(self):
        _, argv = _parts(openssl_command(make_target(), Presented.NO_CERT, V13))
        assert argv[:2] == ["openssl", "s_client"]
        assert _value_after(argv, "-connect") == "127.0.0.1:8443"
        assert _value_after(argv, "-servername") == "api.test"
        assert "-noservername" not in argv

    def test_ip_server_name_sends_no_sni(self):
        target = make_target(server_name="127.0.0.1")
        _, argv = _parts(openssl_command(target, Presented.NO_CERT, V13))
        assert "-noservername" in argv
        assert "-servername" not in argv

    @pytest.mark.parametrize(
        ("version", "flag"), [(V10, "-tls1"), (V11, "-tls1_1"), (V12, "-tls1_2"), (V13, "-tls1_3")]
    )
    def test_version_flag(self, version, flag):
        _, argv = _parts(openssl_command(make_target(), Presented.NO_CERT, version))
        assert flag in argv
        others = {"-tls1", "-tls1_1", "-tls1_2", "-tls1_3"} - {flag}
        assert not others & set(argv)

    def test_valid_uses_identity_paths_and_never_key_contents(self, tmp_path: Path):
        cert_path = tmp_path / "client cert.pem"
        key_path = tmp_path / "client.key"
        key_pem = PKI.client.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        key_path.write_text(key_pem)
        target = make_target(identity_=identity(cert_path=cert_path, key_path=key_path))
        command = openssl_command(target, Presented.VALID, V13)
        _, argv = _parts(command)
        assert _value_after(argv, "-cert") == str(cert_path)
        assert _value_after(argv, "-key") == str(key_path)
        assert "PRIVATE KEY" not in command
        key_body = "".join(key_pem.strip().splitlines()[1:-1])
        assert key_body[:40] not in command.replace("\n", "")

    def test_valid_with_identity_chain_sends_the_chain(self):
        target = make_target(identity_=identity(chain=(PKI.intermediate.certificate,)))
        _, argv = _parts(openssl_command(target, Presented.VALID, V13))
        assert _value_after(argv, "-cert_chain") == str(target.identity.cert_path)

    def test_no_cert_presents_nothing(self):
        _, argv = _parts(openssl_command(make_target(), Presented.NO_CERT, V13))
        assert "-cert" not in argv and "-key" not in argv

    def test_valid_without_identity_presents_nothing(self):
        _, argv = _parts(openssl_command(make_target(identity_=None), Presented.VALID, V13))
        assert "-cert" not in argv and "-key" not in argv

    @pytest.mark.parametrize("presented", [Presented.ROGUE_CA, Presented.SELF_SIGNED])
    def test_impostors_name_placeholder_files(self, presented):
        target = make_target()
        _, argv = _parts(openssl_command(target, presented, V13))
        cert, key = _value_after(argv, "-cert"), _value_after(argv, "-key")
        assert cert.endswith(".pem") and key.endswith(".key")
        assert "/" not in cert and "/" not in key  # placeholders, not real files
        assert str(target.identity.cert_path) not in argv
        assert str(target.identity.key_path) not in argv

    def test_http_request_is_piped_when_app_protocol_is_http(self):
        target = make_target(http_path="/health")
        producer, argv = _parts(openssl_command(target, Presented.NO_CERT, V13))
        assert producer[0] == "printf"
        assert producer[1].startswith("GET /health HTTP/1.1\\r\\n")
        assert "Host: api.test\\r\\n" in producer[1]
        assert producer[1].endswith("\\r\\n\\r\\n")
        assert argv[-1] == "-ign_eof"

    def test_no_http_request_when_app_protocol_is_none(self):
        command = openssl_command(make_target(app_protocol=AppProtocol.NONE), Presented.NO_CERT, V13)
        producer, argv = _parts(command)
        assert producer[0] == "sleep"
        assert "GET" not in command
        assert "-ign_eof" not in argv

    def test_ipv6_address_is_bracketed(self):
        target = make_target(host="::1", server_name="::1")
        _, argv = _parts(openssl_command(target, Presented.NO_CERT, V13))
        assert _value_after(argv, "-connect") == "[::1]:8443"
        assert "-noservername" in argv

    @pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
    def test_piped_request_bytes_match_a_plain_path(self):
        command = openssl_command(make_target(http_path="/health"), Presented.NO_CERT, V13)
        producer = command.split(" | ", 1)[0]
        sent = subprocess.run(["sh", "-c", producer], capture_output=True, check=True).stdout
        assert sent.startswith(b"GET /health HTTP/1.1\r\n")
        assert b"\r\nHost: api.test\r\n" in sent
        assert sent.endswith(b"\r\n\r\n")

    @pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
    def test_piped_request_keeps_a_percent_encoded_path(self):
        command = openssl_command(make_target(http_path="/files/a%20b%2Fc"), Presented.NO_CERT, V13)
        producer = command.split(" | ", 1)[0]
        sent = subprocess.run(["sh", "-c", producer], capture_output=True).stdout
        assert sent.startswith(b"GET /files/a%20b%2Fc HTTP/1.1\r\n")


def test_every_version_has_a_flag():
    # A new TLSVersion member without an s_client flag would crash every report.
    for version in TLSVersion:
        assert openssl_command(make_target(), Presented.NO_CERT, version)
