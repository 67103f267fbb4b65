"""The six built-in checks, judged on hand-built observations of realistic servers."""

from __future__ import annotations

from dataclasses import replace

import pytest
from observation_builders import (
    DAY,
    FULL_CHAIN,
    LEAF_ONLY,
    NOW,
    PKI,
    V10,
    V11,
    V12,
    V13,
    accepted_with_ticket,
    blocked_in_handshake,
    blocked_post_handshake,
    closed_in_handshake,
    der,
    eof_after_handshake,
    evidence,
    identity,
    make_target,
    no_verdict_after_handshake,
    openssl_cannot_offer,
    session_broken,
    spec,
    strict_tls13_server,
    timed_out,
    tls12_accepted,
    unreachable_server,
    version_refused,
)

from mtls_audit.checks import (
    chain_complete,
    client_cert_required,
    expiry_soon,
    san_match,
    tls13_only,
    wrong_ca_rejected,
)
from mtls_audit.checks.base import Status
from mtls_audit.scanner.model.observations import Phase, Presented, ProbeObservation
from mtls_audit.scanner.model.target import AppProtocol

VALID = Presented.VALID
NO_CERT = Presented.NO_CERT
ROGUE = Presented.ROGUE_CA
SELF = Presented.SELF_SIGNED

ALL_CHECKS = [
    client_cert_required.CHECK,
    wrong_ca_rejected.CHECK,
    tls13_only.CHECK,
    chain_complete.CHECK,
    san_match.CHECK,
    expiry_soon.CHECK,
]


def run(check, observations: list[ProbeObservation], **target_overrides):
    return check.evaluate(evidence(make_target(**target_overrides), *observations))


def without(observations: list[ProbeObservation], presented: Presented, version) -> list[ProbeObservation]:
    return [o for o in observations if not (o.spec.presented is presented and o.spec.version is version)]


def swap(observations: list[ProbeObservation], new: ProbeObservation) -> list[ProbeObservation]:
    return without(observations, new.spec.presented, new.spec.version) + [new]


def dual_stack_server(*, no_cert_12: ProbeObservation | None = None) -> list[ProbeObservation]:
    """TLS 1.2 and 1.3, client certificate required on both (1.2 refuses in the
    handshake, 1.3 right after it)."""
    return [
        version_refused(spec(VALID, V10)),
        version_refused(spec(VALID, V11)),
        tls12_accepted(spec(VALID, V12)),
        accepted_with_ticket(spec(VALID, V13)),
        no_cert_12 or blocked_in_handshake(spec(NO_CERT, V12), 40),
        blocked_post_handshake(spec(NO_CERT, V13), 116),
        blocked_in_handshake(spec(ROGUE, V12), 48),
        blocked_in_handshake(spec(SELF, V12), 48),
        blocked_post_handshake(spec(ROGUE, V13), 48),
        blocked_post_handshake(spec(SELF, V13), 48),
    ]


# -- errors shared by every check ----------------------------------------------------


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.id)
def test_unreachable_target_is_an_error_for_every_check(check):
    finding = run(check, unreachable_server())
    assert finding.check == check.id
    assert finding.status is Status.ERROR
    assert "Connection refused" in finding.summary


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.id)
def test_hung_target_is_an_error_never_a_pass(check):
    finding = run(check, [timed_out(spec(VALID, v), Phase.HANDSHAKE) for v in (V10, V11, V12, V13)])
    assert finding.status is Status.ERROR


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.id)
def test_strict_tls13_server_passes_every_check(check):
    finding = run(check, strict_tls13_server())
    assert finding.status is Status.PASS, finding.summary


# -- client-cert-required ----------------------------------------------------------


class TestClientCertRequired:
    check = client_cert_required.CHECK

    def test_pass_on_strict_tls13_server(self):
        finding = run(self.check, strict_tls13_server())
        assert finding.status is Status.PASS
        assert "TLSv1.3" in finding.summary
        assert "tls-post-handshake" in finding.summary
        [entry] = finding.evidence["per_version"]
        assert entry["version"] == "TLSv1.3"
        assert entry["classification"] == "required"
        assert entry["blocked_at"] == "tls-post-handshake"
        assert entry["attempts"][0]["alert"]["code"] == 116
        [command] = finding.commands
        assert command.label == "no-cert@tls1.3"
        assert "-tls1_3" in command.command
        assert "-cert" not in command.command.split()

    def test_pass_on_every_version_with_both_layers(self):
        finding = run(self.check, dual_stack_server())
        assert finding.status is Status.PASS
        per_version = {e["version"]: e for e in finding.evidence["per_version"]}
        assert set(per_version) == {"TLSv1.2", "TLSv1.3"}
        assert per_version["TLSv1.2"]["blocked_at"] == "tls-handshake"
        assert per_version["TLSv1.3"]["blocked_at"] == "tls-post-handshake"
        assert "tls-handshake" in finding.summary and "tls-post-handshake" in finding.summary

    def test_pass_with_http_layer_enforcement(self):
        observations = swap(strict_tls13_server(), accepted_with_ticket(spec(NO_CERT, V13), 400))
        finding = run(self.check, observations)
        assert finding.status is Status.PASS
        assert finding.evidence["per_version"][0]["attempts"][0]["http_status"] == 400
        assert finding.evidence["per_version"][0]["blocked_at"] == "http"

    def test_fail_when_optional(self):
        observations = swap(strict_tls13_server(), accepted_with_ticket(spec(NO_CERT, V13), 200))
        finding = run(self.check, observations)
        assert finding.status is Status.FAIL
        assert "TLSv1.3: optional" in finding.summary
        assert finding.remediation
        assert finding.evidence["per_version"][0]["attempts"][0]["outcome"] == "accepted"

    def test_fail_when_not_requested(self):
        observations = swap(
            strict_tls13_server(), accepted_with_ticket(spec(NO_CERT, V13), 200, certificate_request=False)
        )
        observations = swap(observations, accepted_with_ticket(spec(VALID, V13), 200, certificate_request=False))
        finding = run(self.check, observations)
        assert finding.status is Status.FAIL
        assert "TLSv1.3: not-requested" in finding.summary

    def test_fail_names_tls12_when_only_tls13_enforces(self):
        observations = dual_stack_server(no_cert_12=tls12_accepted(spec(NO_CERT, V12), 200))
        finding = run(self.check, observations)
        assert finding.status is Status.FAIL
        assert "TLSv1.2" in finding.summary
        assert "TLSv1.3" not in finding.summary
        per_version = {e["version"]: e for e in finding.evidence["per_version"]}
        assert per_version["TLSv1.2"]["classification"] == "optional"
        assert per_version["TLSv1.3"]["classification"] == "required"

    def test_error_when_our_own_identity_is_refused(self):
        observations = swap(strict_tls13_server(), blocked_post_handshake(spec(VALID, V13), 48))
        finding = run(self.check, observations)
        assert finding.status is Status.ERROR
        assert "our own identity" in finding.summary
        assert "TLSv1.3" in finding.summary

    def test_error_when_no_cert_verdict_is_undecided(self):
        observations = swap(strict_tls13_server(), no_verdict_after_handshake(spec(NO_CERT, V13)))
        finding = run(self.check, observations, app_protocol=AppProtocol.NONE)
        assert finding.status is Status.ERROR
        assert "undecided" in finding.summary
        assert finding.evidence["per_version"][0]["attempts"][0]["outcome"] == "unknown"

    def test_error_when_no_cert_probe_timed_out(self):
        observations = swap(strict_tls13_server(), timed_out(spec(NO_CERT, V13), Phase.HANDSHAKE))
        finding = run(self.check, observations)
        assert finding.status is Status.ERROR
        assert "TLSv1.3" in finding.summary

    def test_error_when_blocked_without_being_asked_for_a_certificate(self):
        no_cert = blocked_post_handshake(spec(NO_CERT, V13), 49, certificate_request=False)
        observations = swap(strict_tls13_server(), no_cert)
        observations = swap(observations, accepted_with_ticket(spec(VALID, V13), certificate_request=False))
        finding = run(self.check, observations)
        assert finding.status is Status.ERROR
        assert finding.evidence["per_version"][0]["classification"] == "unknown"

    def test_error_when_no_cert_probe_missing(self):
        finding = run(self.check, without(strict_tls13_server(), NO_CERT, V13))
        assert finding.status is Status.ERROR
        assert "not probed" in finding.summary

    def test_fail_beats_undecided(self):
        observations = dual_stack_server(no_cert_12=tls12_accepted(spec(NO_CERT, V12), 200))
        observations = swap(observations, timed_out(spec(NO_CERT, V13), Phase.HANDSHAKE))
        assert run(self.check, observations).status is Status.FAIL


# -- wrong-ca-rejected -------------------------------------------------------------


class TestWrongCaRejected:
    check = wrong_ca_rejected.CHECK

    def test_pass_when_impostors_are_blocked(self):
        finding = run(self.check, strict_tls13_server())
        assert finding.status is Status.PASS
        probes = {p["probe"]: p for p in finding.evidence["probes"]}
        assert set(probes) == {"rogue-ca@tls1.3", "self-signed@tls1.3"}
        assert all(p["outcome"] == "blocked" for p in probes.values())
        commands = {c.label: c.command for c in finding.commands}
        assert set(commands) == {"rogue-ca@tls1.3", "self-signed@tls1.3"}
        assert commands["rogue-ca@tls1.3"].count("rogue-client.pem") == 1
        assert "tls-post-handshake" in finding.summary

    def test_pass_on_both_versions(self):
        finding = run(self.check, dual_stack_server())
        assert finding.status is Status.PASS
        assert len(finding.evidence["probes"]) == 4
        assert "tls-handshake" in finding.summary and "tls-post-handshake" in finding.summary

    def test_fail_when_rogue_ca_gets_in(self):
        observations = swap(strict_tls13_server(), accepted_with_ticket(spec(ROGUE, V13), 200))
        finding = run(self.check, observations)
        assert finding.status is Status.FAIL
        assert "rogue-ca on TLSv1.3" in finding.summary
        assert "self-signed" not in finding.summary
        assert "never asked" not in finding.summary
        assert finding.remediation

    def test_fail_says_when_no_certificate_was_asked_for(self):
        rogue = accepted_with_ticket(spec(ROGUE, V13), 200, certificate_request=False)
        finding = run(self.check, swap(strict_tls13_server(), rogue))
        assert finding.status is Status.FAIL
        assert "never asked for a certificate" in finding.summary

    def test_fail_when_self_signed_gets_in_on_tls12_only(self):
        observations = dual_stack_server()
        observations = swap(observations, tls12_accepted(spec(SELF, V12), 200))
        finding = run(self.check, observations)
        assert finding.status is Status.FAIL
        assert "self-signed on TLSv1.2" in finding.summary
        assert "TLSv1.3" not in finding.summary

    def test_error_when_our_own_identity_is_refused(self):
        observations = swap(strict_tls13_server(), blocked_post_handshake(spec(VALID, V13), 48))
        finding = run(self.check, observations)
        assert finding.status is Status.ERROR
        assert "our own identity" in finding.summary

    def test_error_when_an_impostor_probe_is_undecided(self):
        observations = swap(strict_tls13_server(), timed_out(spec(SELF, V13), Phase.HANDSHAKE))
        finding = run(self.check, observations)
        assert finding.status is Status.ERROR
        assert "self-signed@tls1.3" in finding.summary

    def test_error_when_an_impostor_was_not_probed(self):
        finding = run(self.check, without(strict_tls13_server(), ROGUE, V13))
        assert finding.status is Status.ERROR
        assert "rogue-ca@tls1.3: not probed" in finding.summary


class TestOwnIdentityGuard:
    """Impostor verdicts prove something only while our own identity gets in."""

    @pytest.mark.parametrize("check", [client_cert_required.CHECK, wrong_ca_rejected.CHECK], ids=lambda c: c.id)
    def test_undecided_own_identity_trips_the_guard(self, check):
        """The legitimate identity's HTTP request timed out: undecided, so the
        impostors' refusals cannot pass."""
        valid = no_verdict_after_handshake(spec(VALID, V13), http_error="no HTTP response within 5s")
        finding = run(check, swap(strict_tls13_server(), valid))
        assert finding.status is Status.ERROR
        assert "our own identity was not let in on TLSv1.3 (unknown" in finding.summary

    @pytest.mark.parametrize("check", [client_cert_required.CHECK, wrong_ca_rejected.CHECK], ids=lambda c: c.id)
    def test_own_identity_with_a_broken_session_trips_the_guard(self, check):
        finding = run(check, swap(strict_tls13_server(), session_broken(spec(VALID, V13))))
        assert finding.status is Status.ERROR
        assert "our own identity was not let in" in finding.summary


class TestNoRefusalWithoutACertificateRequest:
    """Scanned without an identity, a server that never asks for a certificate and
    refuses everyone proves nothing about its trust store."""

    @staticmethod
    def server(refusal) -> list[ProbeObservation]:
        no_ask = {"certificate_request": False}
        return [
            version_refused(spec(NO_CERT, V10)),
            version_refused(spec(NO_CERT, V11)),
            version_refused(spec(NO_CERT, V12)),
            accepted_with_ticket(spec(NO_CERT, V13), 400, **no_ask),
            refusal(spec(ROGUE, V13)),
            refusal(spec(SELF, V13)),
        ]

    def test_400_to_everyone_is_not_a_rejected_impostor(self):
        refusal = lambda s: accepted_with_ticket(s, 400, certificate_request=False)  # noqa: E731
        finding = run(wrong_ca_rejected.CHECK, self.server(refusal), identity_=None)
        assert finding.status is Status.ERROR
        assert "never asked for a certificate" in finding.summary

    def test_closing_every_connection_is_not_a_rejected_impostor(self):
        def refusal(s):
            return replace(eof_after_handshake(s), certificate_request_seen=False, client_ca_names=())

        finding = run(wrong_ca_rejected.CHECK, self.server(refusal), identity_=None)
        assert finding.status is Status.ERROR
        assert "never asked for a certificate" in finding.summary


class TestCloseWithoutAnAlert:
    def test_close_after_an_untrusted_certificate_on_tls12_is_a_rejection(self):
        """Node.js `https` with rejectUnauthorized closes right after an untrusted
        client certificate on TLS 1.2, with no alert."""
        observations = dual_stack_server()
        observations = swap(observations, closed_in_handshake(spec(ROGUE, V12)))
        observations = swap(observations, closed_in_handshake(spec(SELF, V12)))
        finding = run(wrong_ca_rejected.CHECK, observations)
        assert finding.status is Status.PASS, finding.summary
        assert "tls-handshake" in finding.summary


class TestRounds:
    """Behind a load balancer whose backends disagree, one attempt per probe sees one
    backend; any attempt that gets in fails, and every attempt is in the evidence."""

    def test_one_no_cert_attempt_in_fails_as_inconsistent(self):
        observations = strict_tls13_server() + [accepted_with_ticket(spec(NO_CERT, V13, 2), 200)]
        finding = run(client_cert_required.CHECK, observations)
        assert finding.status is Status.FAIL
        assert "inconsistent: 1 of 2 attempts got in" in finding.summary
        attempts = finding.evidence["per_version"][0]["attempts"]
        assert [(a["probe"], a["outcome"]) for a in attempts] == [
            ("no-cert@tls1.3", "blocked"),
            ("no-cert@tls1.3#2", "accepted"),
        ]

    def test_one_impostor_attempt_in_fails_as_inconsistent(self):
        observations = strict_tls13_server() + [
            blocked_post_handshake(spec(SELF, V13, 2), 48),
            accepted_with_ticket(spec(ROGUE, V13, 2), 200),
        ]
        finding = run(wrong_ca_rejected.CHECK, observations)
        assert finding.status is Status.FAIL
        assert "rogue-ca on TLSv1.3" in finding.summary
        assert "inconsistent: 1 of 2 attempts got in" in finding.summary
        probes = [(p["probe"], p["outcome"]) for p in finding.evidence["probes"]]
        assert ("rogue-ca@tls1.3#2", "accepted") in probes and ("rogue-ca@tls1.3", "blocked") in probes
        assert len(probes) == 4

    def test_every_attempt_blocked_passes(self):
        observations = strict_tls13_server() + [
            blocked_post_handshake(spec(NO_CERT, V13, 2), 116),
            blocked_post_handshake(spec(ROGUE, V13, 2), 48),
            blocked_post_handshake(spec(SELF, V13, 2), 48),
        ]
        assert run(client_cert_required.CHECK, observations).status is Status.PASS
        assert run(wrong_ca_rejected.CHECK, observations).status is Status.PASS


# -- tls13-only --------------------------------------------------------------------


class TestTls13Only:
    check = tls13_only.CHECK

    def test_pass_when_everything_below_13_is_refused(self):
        finding = run(self.check, strict_tls13_server())
        assert finding.status is Status.PASS
        assert finding.evidence["minimum"] == "TLSv1.3"
        support = {v["version"]: v["support"] for v in finding.evidence["versions"]}
        assert support == {"TLSv1": "refused", "TLSv1.1": "refused", "TLSv1.2": "refused", "TLSv1.3": "accepted"}
        commands = {c.label: c.command for c in finding.commands}
        assert "-tls1_2" in commands["valid@tls1.2"]
        assert "-tls1_3" in commands["valid@tls1.3"]

    def test_fail_when_tls12_is_accepted(self):
        finding = run(self.check, dual_stack_server())
        assert finding.status is Status.FAIL
        assert "TLSv1.2" in finding.summary
        assert "TLSv1.3" in finding.summary  # the policy minimum
        assert "TLSv1.1" not in finding.summary
        assert finding.remediation

    def test_support_read_from_server_hello_even_if_the_cert_is_refused(self):
        # no identity: the version probes are the no-cert probes
        observations = [
            version_refused(spec(NO_CERT, V10)),
            version_refused(spec(NO_CERT, V11)),
            blocked_in_handshake(spec(NO_CERT, V12), 40),
            blocked_post_handshake(spec(NO_CERT, V13)),
        ]
        finding = run(self.check, observations, identity_=None)
        assert finding.status is Status.FAIL
        assert "accepts TLSv1.2" in finding.summary

    def test_min_tls12_passes_a_tls12_and_13_server(self):
        finding = run(self.check, dual_stack_server(), min_tls_version=V12)
        assert finding.status is Status.PASS
        assert "TLSv1.2" in finding.summary
        assert finding.evidence["minimum"] == "TLSv1.2"

    def test_min_tls12_fails_a_server_accepting_tls11(self):
        observations = swap(dual_stack_server(), tls12_accepted(spec(VALID, V11), 200))
        finding = run(self.check, observations, min_tls_version=V12)
        assert finding.status is Status.FAIL
        assert "TLSv1.1" in finding.summary

    def test_error_when_a_lower_version_probe_timed_out(self):
        observations = swap(strict_tls13_server(), timed_out(spec(VALID, V12), Phase.HANDSHAKE))
        finding = run(self.check, observations)
        assert finding.status is Status.ERROR
        assert "TLSv1.2" in finding.summary
        support = {v["version"]: v["support"] for v in finding.evidence["versions"]}
        assert support["TLSv1.2"] == "unknown"

    def test_error_when_local_openssl_cannot_offer_an_old_version(self):
        observations = swap(strict_tls13_server(), openssl_cannot_offer(spec(VALID, V10)))
        finding = run(self.check, observations)
        assert finding.status is Status.ERROR
        assert "TLSv1" in finding.summary

    def test_timeout_above_the_minimum_does_not_matter(self):
        observations = swap(dual_stack_server(), timed_out(spec(VALID, V13), Phase.HANDSHAKE))
        finding = run(self.check, observations, min_tls_version=V12)
        assert finding.status is Status.PASS

    def test_fail_beats_undecided(self):
        observations = swap(dual_stack_server(), timed_out(spec(VALID, V11), Phase.HANDSHAKE))
        finding = run(self.check, observations)
        assert finding.status is Status.FAIL


# -- chain-complete ----------------------------------------------------------------


def with_chain(chain: tuple[bytes, ...]) -> list[ProbeObservation]:
    return strict_tls13_server(chain=chain)


INTERMEDIATE_CN = "CN=mtls-audit test server intermediate CA"
ROOT_CN = "CN=mtls-audit test root CA"


class TestChainComplete:
    check = chain_complete.CHECK

    def test_pass_with_leaf_and_intermediate(self):
        finding = run(self.check, with_chain(FULL_CHAIN))
        assert finding.status is Status.PASS
        assert finding.evidence["built_path"] == ["CN=api.test", INTERMEDIATE_CN, ROOT_CN]
        assert len(finding.evidence["presented"]) == 2
        assert ROOT_CN in finding.summary

    def test_fail_with_leaf_only(self):
        finding = run(self.check, with_chain(LEAF_ONLY))
        assert finding.status is Status.FAIL
        assert INTERMEDIATE_CN in finding.summary
        assert len(finding.evidence["presented"]) == 1
        assert finding.remediation

    def test_pass_with_expired_leaf_and_intermediate(self):
        finding = run(self.check, with_chain(der(PKI.expired, PKI.intermediate)))
        assert finding.status is Status.PASS, finding.summary

    def test_fail_with_expired_leaf_alone_names_the_missing_intermediate(self):
        finding = run(self.check, with_chain(der(PKI.expired)))
        assert finding.status is Status.FAIL
        assert INTERMEDIATE_CN in finding.summary

    def test_pass_with_not_yet_valid_leaf(self):
        finding = run(self.check, with_chain(der(PKI.not_yet_valid, PKI.intermediate)))
        assert finding.status is Status.PASS, finding.summary

    def test_fail_when_the_chain_leads_to_another_root(self):
        finding = run(self.check, with_chain(FULL_CHAIN), trust_anchors=(PKI.client.certificate,))
        assert finding.status is Status.FAIL

    def test_chain_from_our_own_probe_is_preferred(self):
        # the no-cert probe saw a different (incomplete) chain; the valid one decides
        observations = swap(strict_tls13_server(), blocked_post_handshake(spec(NO_CERT, V13), chain=LEAF_ONLY))
        assert run(self.check, observations).status is Status.PASS

    def test_error_without_a_presented_certificate(self):
        finding = run(self.check, with_chain(()))
        assert finding.status is Status.ERROR
        assert "no certificate" in finding.summary

    def test_error_without_trust_anchors(self):
        finding = run(self.check, with_chain(FULL_CHAIN), trust_anchors=())
        assert finding.status is Status.ERROR
        assert "trust anchors" in finding.summary


# -- san-match ---------------------------------------------------------------------


class TestSanMatch:
    check = san_match.CHECK

    def test_pass_for_dns_name(self):
        finding = run(self.check, with_chain(FULL_CHAIN))
        assert finding.status is Status.PASS
        assert "api.test" in finding.summary
        assert "DNS:api.test" in finding.evidence["subject_alternative_names"]

    def test_fail_for_cn_only_certificate(self):
        finding = run(self.check, with_chain(der(PKI.cn_only, PKI.intermediate)))
        assert finding.status is Status.FAIL
        assert "no subjectAltName" in finding.summary
        assert finding.evidence["subject"] == "CN=api.test"  # the CN matches, and is ignored
        assert finding.evidence["subject_alternative_names"] == []

    def test_fail_for_wrong_name(self):
        finding = run(self.check, with_chain(FULL_CHAIN), server_name="payments.test")
        assert finding.status is Status.FAIL
        assert "payments.test" in finding.summary
        assert "DNS:api.test" in finding.summary
        assert finding.evidence["expected"] == "payments.test"

    def test_pass_for_ip_server_name_with_ip_san(self):
        finding = run(self.check, with_chain(FULL_CHAIN), server_name="127.0.0.1")
        assert finding.status is Status.PASS
        assert "IP:127.0.0.1" in finding.evidence["subject_alternative_names"]

    def test_fail_for_ip_not_in_san(self):
        finding = run(self.check, with_chain(FULL_CHAIN), server_name="10.0.0.7")
        assert finding.status is Status.FAIL
        assert "10.0.0.7" in finding.summary

    def test_fail_for_ip_server_name_with_dns_only_san(self):
        finding = run(self.check, with_chain(der(PKI.expiring, PKI.intermediate)), server_name="127.0.0.1")
        assert finding.status is Status.FAIL

    def test_error_without_a_presented_certificate(self):
        finding = run(self.check, with_chain(()))
        assert finding.status is Status.ERROR


# -- expiry-soon -------------------------------------------------------------------


class TestExpirySoon:
    check = expiry_soon.CHECK

    def test_pass_when_everything_is_valid_for_long(self):
        finding = run(self.check, with_chain(FULL_CHAIN))
        assert finding.status is Status.PASS
        roles = [c["role"] for c in finding.evidence["certificates"]]
        assert roles == ["server leaf", "server chain", "client identity", "trust anchor"]
        assert finding.evidence["warning_days"] == 30
        assert "4 certificates" in finding.summary

    def test_warn_inside_the_horizon(self):
        finding = run(self.check, with_chain(der(PKI.expiring, PKI.intermediate)))
        assert finding.status is Status.WARN
        assert "server leaf" in finding.summary
        assert "5 days" in finding.summary
        leaf = finding.evidence["certificates"][0]
        assert 4.9 <= leaf["days_left"] <= 5.0

    def test_pass_when_the_horizon_is_shorter(self):
        finding = run(self.check, with_chain(der(PKI.expiring, PKI.intermediate)), expiry_warning_days=3)
        assert finding.status is Status.PASS

    def test_fail_when_the_leaf_expired(self):
        finding = run(self.check, with_chain(der(PKI.expired, PKI.intermediate)))
        assert finding.status is Status.FAIL
        assert "server leaf" in finding.summary and "expired" in finding.summary
        assert finding.evidence["certificates"][0]["days_left"] < 0

    def test_fail_when_the_leaf_is_not_yet_valid(self):
        finding = run(self.check, with_chain(der(PKI.not_yet_valid, PKI.intermediate)))
        assert finding.status is Status.FAIL
        assert "not valid until" in finding.summary

    def test_fail_when_the_client_identity_expired(self):
        finding = run(self.check, with_chain(FULL_CHAIN), identity_=identity(PKI.expired_client))
        assert finding.status is Status.FAIL
        assert "client identity" in finding.summary
        assert "server leaf" not in finding.summary

    def test_expired_client_identity_fails_even_when_the_server_is_unreachable(self):
        finding = run(self.check, unreachable_server(), identity_=identity(PKI.expired_client))
        assert finding.status is Status.FAIL
        assert "client identity" in finding.summary

    def test_fail_beats_warn(self):
        finding = run(
            self.check, with_chain(der(PKI.expiring, PKI.intermediate)), identity_=identity(PKI.expired_client)
        )
        assert finding.status is Status.FAIL
        assert "client identity" in finding.summary


def test_chain_complete_with_expired_leaf_and_renewed_root_is_not_a_chain_failure():
    from mtls_audit.scanner.credentials.factory import common_name, issue

    renewed_root = issue(
        PKI.root.certificate.subject,
        is_ca=True,
        key=PKI.root.private_key,
        not_before=NOW - 7 * DAY,
        not_after=NOW + 3650 * DAY,
    )
    expired_long_ago = issue(
        common_name("api.test"), issuer=PKI.intermediate, not_before=NOW - 400 * DAY, not_after=NOW - 30 * DAY
    )
    observations = with_chain(der(expired_long_ago, PKI.intermediate))
    finding = run(chain_complete.CHECK, observations, trust_anchors=(renewed_root.certificate,))
    # the same chain with a current leaf builds to this root: only the leaf's dates differ
    current = run(chain_complete.CHECK, with_chain(FULL_CHAIN), trust_anchors=(renewed_root.certificate,))
    assert current.status is Status.PASS
    assert finding.status is Status.PASS, finding.summary
