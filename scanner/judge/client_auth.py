"""Client authentication per TLS version: required, optional, not requested, unknown.

The no-certificate probe runs several times (``--rounds``): behind a load balancer
whose backends disagree, one attempt sees one backend. Any attempt that gets in
decides the version; "required" needs every attempt blocked.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from mtls_audit.scanner.judge.verdicts import Layer, Outcome, ProbeVerdict, judge
from mtls_audit.scanner.model.observations import ProbeObservation, TLSVersion
from mtls_audit.scanner.model.report import ClientAuthEntry
from mtls_audit.scanner.model.target import AppProtocol


class ClientAuth(enum.StrEnum):
    REQUIRED = "required"
    # Every client without a certificate blocked, asked only after the handshake: the
    # server enforces per request (Apache's SSLVerifyClient inside a <Location>), so
    # a request elsewhere may not be asked at all.
    REQUIRED_AFTER_HANDSHAKE = "required-after-handshake"
    OPTIONAL = "optional"
    NOT_REQUESTED = "not-requested"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Attempts:
    """The verdicts of every attempt of one probe, in order."""

    verdicts: tuple[ProbeVerdict, ...]

    @property
    def got_in(self) -> int:
        return sum(1 for v in self.verdicts if v.outcome is Outcome.ACCEPTED)

    @property
    def all_blocked(self) -> bool:
        return bool(self.verdicts) and all(v.outcome is Outcome.BLOCKED for v in self.verdicts)

    @property
    def deciding(self) -> ProbeVerdict | None:
        """The verdict that decides: the first that got in, else the first that did
        not block, else the first."""
        accepted = [v for v in self.verdicts if v.outcome is Outcome.ACCEPTED]
        not_blocked = [v for v in self.verdicts if v.outcome is not Outcome.BLOCKED]
        for group in (accepted, not_blocked, self.verdicts):
            if group:
                return group[0]
        return None

    @property
    def inconsistency(self) -> str | None:
        """``inconsistent: 1 of 2 attempts got in`` when attempts disagree."""
        n = len(self.verdicts)
        if 0 < self.got_in < n:
            return f"inconsistent: {self.got_in} of {n} attempts got in"
        return None


def judge_attempts(
    attempts: Sequence[ProbeObservation], app_protocol: AppProtocol, reference: ProbeObservation | None
) -> Attempts:
    return Attempts(tuple(judge(o, app_protocol, reference) for o in attempts))


@dataclass(frozen=True, slots=True)
class VersionClientAuth:
    """Client authentication as observed on one TLS version."""

    version: TLSVersion
    classification: ClientAuth
    certificate_request_seen: bool  # in the handshake or after it
    no_cert: Attempts
    requested_after: str | None = None  # "after the handshake (on GET /secure)"

    @property
    def blocked_at(self) -> Layer | None:
        if not self.no_cert.all_blocked:
            return None
        return self.no_cert.verdicts[0].layer

    @property
    def detail(self) -> str:
        if self.requested_after is not None:
            asked = f"CertificateRequest {self.requested_after}"
        else:
            asked = "CertificateRequest seen" if self.certificate_request_seen else "no CertificateRequest"
        verdict = self.no_cert.deciding
        if verdict is None:
            return f"{asked}; no-cert probe not run"
        text = f"{asked}; without a certificate: {verdict.outcome.value} ({verdict.reason})"
        inconsistency = self.no_cert.inconsistency
        return f"{text}; {inconsistency}" if inconsistency else text

    def entry(self) -> ClientAuthEntry:
        return ClientAuthEntry(
            version=self.version.value,
            classification=self.classification.value,
            blocked_at=self.blocked_at.value if self.blocked_at else None,
            certificate_request_seen=self.certificate_request_seen,
            detail=self.detail,
        )


def classify_client_auth(
    version: TLSVersion,
    valid: ProbeObservation | None,
    no_cert: Sequence[ProbeObservation],
    app_protocol: AppProtocol,
) -> VersionClientAuth:
    """``no_cert``: every attempt of the no-certificate probe on ``version``."""
    seen = [o for o in (valid, *no_cert) if o is not None]
    in_handshake = any(o.certificate_request_seen for o in seen)
    after = [o for o in seen if o.certificate_requested_after_handshake]
    requested = in_handshake or bool(after)
    requested_after = None
    if after and not in_handshake:
        trigger = next((o.certificate_request_trigger for o in after if o.certificate_request_trigger), None)
        requested_after = "after the handshake" + (f" (on {trigger})" if trigger else "")
    attempts = judge_attempts(no_cert, app_protocol, valid)
    if not attempts.verdicts:
        classification = ClientAuth.UNKNOWN
    elif attempts.got_in:
        classification = ClientAuth.OPTIONAL if requested else ClientAuth.NOT_REQUESTED
    elif attempts.all_blocked and in_handshake:
        classification = ClientAuth.REQUIRED
    elif attempts.all_blocked and requested:
        classification = ClientAuth.REQUIRED_AFTER_HANDSHAKE
    else:
        # Blocked without ever asking for a certificate is not client-cert
        # enforcement we can attribute (it may be post-handshake auth, or a
        # server that refuses everyone), and an undecided attempt decides nothing.
        classification = ClientAuth.UNKNOWN
    return VersionClientAuth(version, classification, requested, attempts, requested_after)
