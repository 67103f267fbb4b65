"""``probe: postgres`` and ``probe: grpc`` against purpose-built servers
(`protocol_hostile_servers`): PostgreSQL 17's direct TLS, which no packaged server
here speaks, and servers that misbehave in the SSLRequest, after the handshake, or in
HTTP/2.

The rule every case holds the scanner to: a target that refuses, hangs or sends
garbage is an error (or an explicitly unknown verdict), never a pass and never a
false "blocked"; the scan goes on, exits 3, and prints no traceback. Scans through the
command line (`cli_scans`) where the verdict is the checks'; one probe at a time
(``run_probe`` and ``judge``) where it is the probe's.

The cases at the end found three scanner bugs, fixed with them: application data
read in the post-handshake wait was dropped (an HTTP/2 server's SETTINGS), an
unscannable PostgreSQL target gave no reason, and a scrap of garbage then a close
read as a refusal.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
from cli_scans import Scan, scan, write_inventory
from identity_servers import IdentityPKI
from protocol_hostile_servers import running
from protocol_servers import write_protocol_pki
from real_servers import SERVER_NAME

from mtls_audit.checks.registry import BUILTIN_ORDER
from mtls_audit.reports.json_report import load_report
from mtls_audit.scanner.credentials.files import load_client_credential
from mtls_audit.scanner.credentials.impostors import ImpostorFactory
from mtls_audit.scanner.judge import Layer, Outcome, ProbeVerdict, judge
from mtls_audit.scanner.model.observations import Presented, ProbeObservation, ProbeSpec, TLSVersion
from mtls_audit.scanner.model.target import AppProtocol, ClientCredential, PostgresNegotiation, Target
from mtls_audit.scanner.probe import Endpoint, Timeouts, request_for, run_probe

# Every wait is on loopback: a second is plenty, and keeps the hanging servers cheap.
FAST = ("--connect-timeout", "2", "--handshake-timeout", "1", "--post-handshake-wait", "0.2", "--http-timeout", "1")
TIMEOUTS = Timeouts(connect=2, handshake=1, post_handshake=0.2, http=0.5)

NAME = "hostile"  # the one target of every inventory here
MTLS = ("client-cert-required", "wrong-ca-rejected")
NO_RULES = {"access-rules": "skip", "unknown-identity-rejected": "skip"}
ALL_ERRORS = dict.fromkeys(BUILTIN_ORDER, "error")
POSTGRES_DIRECT = {"postgres_negotiation": "direct"}


def expect(**changes: str) -> dict[str, str]:
    """Every check passes, but for ``changes`` (check ids with underscores)."""
    verdicts = dict.fromkeys(BUILTIN_ORDER, "pass") | NO_RULES
    return verdicts | {check.replace("_", "-"): status for check, status in changes.items()}


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> IdentityPKI:
    return write_protocol_pki(tmp_path_factory.mktemp("protocol-hostile-pki"))


@pytest.fixture(scope="module")
def scanned(pki: IdentityPKI, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Scan]:
    """``scanned(kind, probe, **settings)``: the server ``kind`` scanned once through the
    command line, as target `NAME` with ``settings``; the result kept for the module."""
    done: dict[tuple, Scan] = {}

    def run(kind: str, probe: str = "postgres", **settings: str) -> Scan:
        key = (kind, probe, tuple(sorted(settings.items())))
        if key not in done:
            with running(kind, pki) as port:
                target = {"name": NAME, "address": f"127.0.0.1:{port}", "server_name": SERVER_NAME, "probe": probe}
                if probe == "postgres":
                    target["postgres_user"] = "payment"
                inventory = write_inventory(pki, f"{kind}-{len(done)}", [target | settings])
                done[key] = scan(pki, inventory, tmp_path_factory.mktemp("scan") / "report.json", *FAST)
        return done[key]

    return run


def statuses(result: Scan) -> dict[str, str]:
    return result.verdicts(NAME)


def summaries(result: Scan) -> str:
    return "\n".join(f"{f['check']}: {f['status']}: {f['summary']}" for f in result.target(NAME)["findings"])


def probes(result: Scan) -> list[ProbeObservation]:
    """The observations as the report saved them."""
    [target] = load_report(result.path).targets
    return list(target.probes)


def judged(result: Scan, app_protocol: AppProtocol) -> list[tuple[ProbeObservation, ProbeVerdict]]:
    """Each saved probe with its verdict, judged against our own identity's probe on
    the same version, as the checks do."""
    observations = probes(result)
    valid = {o.spec.version: o for o in observations if o.spec.presented is Presented.VALID}
    return [(o, judge(o, app_protocol, valid.get(o.spec.version))) for o in observations]


def assert_exit_code(result: Scan) -> None:
    got = statuses(result).values()
    expected = 1 if "fail" in got else 3 if "error" in got else 0
    assert result.completed.returncode == expected, (result.completed.stdout, result.completed.stderr)


# -- A: PostgreSQL 17 direct TLS ---------------------------------------------------------


def test_direct_tls_postgres_is_judged_by_its_startup_answer(scanned):
    """TLS at once with ALPN "postgresql", CertificateRequest, no ticket: the client
    without a certificate completes TLS and is refused in the protocol (FATAL 28000);
    ours is asked for SCRAM-SHA-256, so its certificate was accepted."""
    result = scanned("direct-postgres", **POSTGRES_DIRECT)
    assert statuses(result) == expect(), summaries(result)
    assert result.completed.returncode == 0, result.completed.stdout

    finding = result.finding(NAME, "client-cert-required")
    assert finding["summary"] == "a client without a certificate is blocked on TLSv1.3 (at application)"
    [tls13] = finding["evidence"]["per_version"]
    assert (tls13["version"], tls13["classification"], tls13["blocked_at"]) == ("TLSv1.3", "required", "application")
    reasons = {attempt["reason"] for attempt in tls13["attempts"]}
    assert reasons == {
        "TLS let the client in, PostgreSQL refused it: FATAL 28000 connection requires a valid client certificate"
    }
    commands = [command["command"] for command in finding["commands"]]
    assert commands and all(c.startswith("psql -w -c 'SELECT 1' ") for c in commands), commands
    assert all("sslnegotiation=direct" in c and "sslmode=verify-full" in c for c in commands), commands

    wrong_ca = result.finding(NAME, "wrong-ca-rejected")
    assert {p["blocked_at"] for p in wrong_ca["evidence"]["probes"]} == {"tls-post-handshake"}
    assert {p["alert"]["code"] for p in wrong_ca["evidence"]["probes"]} == {48}

    observations = probes(result)
    on_tls13 = [o for o in observations if o.negotiated_version == "TLSv1.3" and o.handshake_completed]
    assert on_tls13 and all(o.alpn == "postgresql" for o in on_tls13)
    assert all(o.postgres is None or o.postgres.negotiation == "direct" for o in observations)
    [valid] = [o for o in observations if o.spec.presented is Presented.VALID and o.spec.version is TLSVersion.TLS1_3]
    assert valid.postgres is not None and valid.postgres.authentication == "AuthenticationSASL (SCRAM-SHA-256)"


def test_direct_only_server_scanned_with_an_ssl_request_is_an_error(scanned):
    """The same server, scanned the PostgreSQL 15 way (SSLRequest first): its TLS
    stack takes the SSLRequest for a broken record and hangs up. No check may pass."""
    result = scanned("direct-postgres")
    assert statuses(result) == ALL_ERRORS, summaries(result)
    assert result.completed.returncode == 3
    for observation, verdict in judged(result, AppProtocol.POSTGRES):
        assert verdict.outcome is Outcome.ERROR, (observation.spec.id, verdict)
        assert verdict.reason.startswith("no TLS: no answer to the PostgreSQL SSLRequest"), verdict.reason
        assert not observation.server_hello_seen


# -- B: the SSLRequest, and what comes after TLS -----------------------------------------

# Servers that never get to TLS: the reason each probe gives.
BEFORE_TLS = {
    "answers-n": "no TLS: the server does not accept SSL (answered N to SSLRequest)",
    # CVE-2021-23222: bytes after the S came in the clear; TLS must not start on them.
    "s-with-plaintext": "no TLS: the server sent unencrypted bytes after answering S to SSLRequest (b'SR\\x00",
    "ssl-request-silence": "no TLS: no answer to the PostgreSQL SSLRequest within 1s",
    "s-then-close": "connection closed before the ServerHello, without an alert: ambiguous",
}


@pytest.mark.parametrize("kind", list(BEFORE_TLS))
def test_ssl_request_misbehaviour_is_an_error_on_every_check(kind: str, scanned):
    result = scanned(kind)
    assert statuses(result) == ALL_ERRORS, summaries(result)
    assert result.completed.returncode == 3
    for observation, verdict in judged(result, AppProtocol.POSTGRES):
        assert verdict.outcome is Outcome.ERROR, (observation.spec.id, verdict)
        assert verdict.reason.startswith(BEFORE_TLS[kind]), verdict.reason
        assert not observation.server_hello_seen and not observation.certificate_sent


@pytest.mark.parametrize(
    ("kind", "settings", "reason"),
    [
        ("answers-n", {}, "answered N to SSLRequest"),
        ("s-with-plaintext", {}, "unencrypted bytes after answering S to SSLRequest"),
        ("direct-postgres", {}, "no answer to the PostgreSQL SSLRequest"),
    ],
)
def test_an_unscannable_postgres_target_says_why(kind: str, settings: dict, reason: str, scanned):
    """Bad input (N, plaintext after S, a direct-TLS-only server) must be an error
    with its reason, where the user reads it: the target's error and every finding."""
    result = scanned(kind, **settings)
    assert reason in result.target(NAME)["error"]
    assert all(reason in finding["summary"] for finding in result.target(NAME)["findings"]), summaries(result)


# After TLS, to everyone: our own identity is not let in, so no impostor verdict counts.
AFTER_TLS = {
    "garbage-after-tls": "PostgreSQL: not PostgreSQL: message length 1414811695 is out of range (the server sent b'HTTP/1.1 400 Bad')",
    "silence-after-tls": "PostgreSQL: no answer to the StartupMessage within 1s",
}


@pytest.mark.parametrize("kind", list(AFTER_TLS))
def test_misbehaviour_after_tls_refuses_our_identity_too(kind: str, scanned):
    result = scanned(kind)
    assert statuses(result) == expect(
        client_cert_required="error", wrong_ca_rejected="error", client_cert_validity="error"
    ), summaries(result)
    assert result.completed.returncode == 3
    for check in MTLS:
        summary = result.finding(NAME, check)["summary"]
        assert summary.startswith("our own identity was not let in on TLSv1.3 (unknown: "), summary
        assert AFTER_TLS[kind] in summary, summary
    for observation, verdict in judged(result, AppProtocol.POSTGRES):
        if observation.spec.presented in (Presented.VALID, Presented.NO_CERT, Presented.MINTED):
            if observation.handshake_completed:
                assert verdict.outcome is Outcome.UNKNOWN, (observation.spec.id, verdict)
                assert verdict.reason.endswith(AFTER_TLS[kind]), verdict.reason


# After TLS, only to a client without a certificate; ours gets the SCRAM challenge.
FOR_NO_CERT = {
    "garbage-for-no-cert": AFTER_TLS["garbage-after-tls"],
    "silence-for-no-cert": AFTER_TLS["silence-after-tls"],
}


@pytest.mark.parametrize("kind", list(FOR_NO_CERT))
def test_misbehaviour_towards_no_cert_is_undecided_not_blocked(kind: str, scanned):
    """The legitimate identity gets in; the client without a certificate gets garbage
    or silence. That is no refusal: client-cert-required is undecided. The impostors
    are refused by TLS itself (alert 48), which does decide wrong-ca-rejected."""
    result = scanned(kind)
    assert statuses(result) == expect(client_cert_required="error"), summaries(result)
    assert result.completed.returncode == 3
    summary = result.finding(NAME, "client-cert-required")["summary"]
    assert summary == f"undecided: TLSv1.3: no session ticket, alert or EOF after the handshake; {FOR_NO_CERT[kind]}"
    wrong_ca = result.finding(NAME, "wrong-ca-rejected")["evidence"]["probes"]
    assert {(p["blocked_at"], p["alert"]["code"]) for p in wrong_ca} == {("tls-post-handshake", 48)}
    no_cert = [v for o, v in judged(result, AppProtocol.POSTGRES) if o.spec.presented is Presented.NO_CERT]
    assert len(no_cert) == 2 and all(v.outcome is Outcome.UNKNOWN and v.layer is None for v in no_cert), no_cert


# -- one probe at a time ------------------------------------------------------------------


@pytest.fixture(scope="module")
def credentials(pki: IdentityPKI) -> dict[Presented, ClientCredential | None]:
    own = load_client_credential(pki.pem("payment"), pki.key("payment"), None)
    return {
        Presented.VALID: own,
        Presented.NO_CERT: None,
        Presented.ROGUE_CA: ImpostorFactory().for_identity(own.certificate).rogue_ca,
    }


@pytest.fixture
def probe_server(pki, credentials) -> Callable[..., dict[Presented, tuple[ProbeObservation, ProbeVerdict]]]:
    """``probe_server(kind, app_protocol)``: the server ``kind`` probed on TLS 1.3 by our
    identity, no certificate and a rogue-CA copy; each observation with its verdict
    (judged against our identity's, as the checks do)."""

    def run(kind: str, app_protocol: AppProtocol = AppProtocol.GRPC, **target_settings):
        with running(kind, pki) as port:
            target = Target(
                "probe",
                "127.0.0.1",
                port,
                SERVER_NAME,
                app_protocol=app_protocol,
                postgres_user="payment",
                **target_settings,
            )
            request = request_for(target)
            endpoint = Endpoint(target.host, target.port, target.sni)
            observations = {
                presented: trio.run(
                    run_probe, endpoint, ProbeSpec(presented, TLSVersion.TLS1_3), credential, TIMEOUTS, request
                )
                for presented, credential in credentials.items()
            }
        valid = observations[Presented.VALID]
        return {p: (o, judge(o, app_protocol, valid)) for p, o in observations.items()}

    return run


def test_direct_tls_probe_offers_only_postgresql_by_alpn(probe_server):
    """The same verdicts as through the command line, one probe each."""
    seen = probe_server("direct-postgres", AppProtocol.POSTGRES, postgres_negotiation=PostgresNegotiation.DIRECT)
    valid, valid_verdict = seen[Presented.VALID]
    assert valid.alpn == "postgresql" and valid_verdict.outcome is Outcome.ACCEPTED
    assert valid_verdict.layer is Layer.APPLICATION
    no_cert, verdict = seen[Presented.NO_CERT]
    assert (verdict.outcome, verdict.layer) == (Outcome.BLOCKED, Layer.APPLICATION)
    assert no_cert.postgres is not None and no_cert.postgres.sqlstate == "28000"


# -- C: gRPC -----------------------------------------------------------------------------

# Every client that passes TLS (ours and one without a certificate) gets the same
# misbehaviour; the gRPC error each probe must report.
GRPC_MISBEHAVIOUR = {
    "grpc-http1-text": "the server did not speak HTTP/2 (b'HTTP/1.1 505 HTTP Version Not Su')",
    "grpc-settings-then-goaway": "GOAWAY NO_ERROR",
    "grpc-settings-then-hang": "no gRPC response within 0.5s",
    "grpc-200-without-status": "no grpc-status in the response (HTTP status 200)",
}


@pytest.mark.parametrize("kind", list(GRPC_MISBEHAVIOUR))
def test_grpc_misbehaviour_is_unknown_never_blocked(kind: str, probe_server):
    seen = probe_server(kind)
    for presented in (Presented.VALID, Presented.NO_CERT):
        observation, verdict = seen[presented]
        assert observation.handshake_completed and observation.alpn == "h2", observation
        assert observation.grpc is not None and observation.grpc.error == GRPC_MISBEHAVIOUR[kind]
        assert (verdict.outcome, verdict.layer) == (Outcome.UNKNOWN, None), (presented, verdict)
        assert verdict.reason.endswith(f"gRPC: {GRPC_MISBEHAVIOUR[kind]}"), verdict.reason
    # The server's TLS refuses an untrusted certificate itself: that is a real refusal.
    rogue, verdict = seen[Presented.ROGUE_CA]
    assert (verdict.outcome, verdict.layer) == (Outcome.BLOCKED, Layer.TLS_POST_HANDSHAKE)
    assert rogue.alert_received is not None and rogue.alert_received.code == 48


def test_grpc_server_closing_on_everyone_is_an_error_not_a_pass(scanned):
    """ALPN h2, then a close right after the TLS 1.3 handshake, for every client: the
    client without a certificate is "blocked" just as our own identity is, which
    proves nothing. The mTLS checks say so, and the scan exits 3."""
    result = scanned("grpc-mute-close", "grpc")
    assert statuses(result) == expect(
        client_cert_required="error", wrong_ca_rejected="error", client_cert_validity="error"
    ), summaries(result)
    assert result.completed.returncode == 3
    for check in MTLS:
        assert result.finding(NAME, check)["summary"] == (
            "our own identity was not let in on TLSv1.3 (blocked: connection closed right after the handshake, no data)"
        )
    assert "Traceback" not in result.completed.stderr


@pytest.mark.parametrize("kind", ["grpc-unauthenticated", "grpc-unauthenticated-eager"])
def test_grpc_refusal_in_the_application_is_read(kind: str, probe_server):
    """The control: a server that does answer, UNAUTHENTICATED without a certificate,
    with its SETTINGS sent once the client spoke, or at once after the handshake."""
    seen = probe_server(kind)
    _, valid = seen[Presented.VALID]
    assert (valid.outcome, valid.layer, valid.reason) == (
        Outcome.ACCEPTED,
        Layer.GRPC,
        "the call reached the service: gRPC status 0 OK",
    )
    _, no_cert = seen[Presented.NO_CERT]
    assert (no_cert.outcome, no_cert.layer) == (Outcome.BLOCKED, Layer.GRPC)
    assert no_cert.reason == "TLS let the client in, gRPC refused it: gRPC status 16 UNAUTHENTICATED"


# -- scanner bugs found here, fixed with them ---------------------------------------------


def test_grpc_server_preface_sent_at_once_is_not_lost(probe_server):
    """A compliant HTTP/2 server sends its SETTINGS at once, answers the client's
    preface with a WINDOW_UPDATE before its SETTINGS ACK, and refuses a client without
    a certificate with UNAUTHENTICATED. The SETTINGS end the post-handshake wait and
    are thrown away, so the WINDOW_UPDATE looks like a first frame that is no SETTINGS: "did not speak HTTP/2", read as
    accepted at the TLS layer, and client-cert-required fails on a server that enforces."""
    seen = probe_server("grpc-unauthenticated-eager-split")
    _, no_cert = seen[Presented.NO_CERT]
    assert (no_cert.outcome, no_cert.layer) == (Outcome.BLOCKED, Layer.GRPC), no_cert


def test_http1_text_sent_at_once_is_reported_as_such(probe_server):
    """The error must name what the server sent, not "closed without an HTTP/2 response"."""
    observation, _ = probe_server("grpc-http1-text-at-once")[Presented.VALID]
    assert observation.grpc is not None
    assert observation.grpc.error is not None and "did not speak HTTP/2 (b'HTTP/1.1 505" in observation.grpc.error


@pytest.mark.parametrize(
    ("kind", "app_protocol"),
    [("scrap-for-no-cert", AppProtocol.POSTGRES), ("grpc-scrap-for-no-cert", AppProtocol.GRPC)],
)
def test_a_scrap_of_garbage_then_a_close_is_not_a_refusal(kind: str, app_protocol: AppProtocol, probe_server):
    """A client without a certificate gets a few bytes that are no message, then a
    close (ours is served properly). Longer garbage is undecided; this must not be
    "blocked ... no response" (which passes client-cert-required) just for being short."""
    seen = probe_server(kind, app_protocol)
    _, valid = seen[Presented.VALID]
    assert valid.outcome is Outcome.ACCEPTED
    _, no_cert = seen[Presented.NO_CERT]
    assert no_cert.outcome is not Outcome.BLOCKED, no_cert
