"""Reading an access-rule probe: did the named identity's request reach the
application, or was it denied?

Denied is what ``judge`` calls blocked: in or after the TLS handshake, or an HTTP
401/403/495/496 (and nginx's 400 for a certificate failure). Allowed is wider than
``judge``'s "accepted": any other HTTP answer means the request got past every
layer that checks the certificate (a 405 or a 500 comes from the application).
"""

from __future__ import annotations

from collections.abc import Sequence

from mtls_audit.scanner.judge.client_auth import Attempts
from mtls_audit.scanner.judge.verdicts import Layer, Outcome, ProbeVerdict, judge
from mtls_audit.scanner.model.observations import ProbeObservation
from mtls_audit.scanner.model.target import AppProtocol


def access_verdict(
    observation: ProbeObservation, app_protocol: AppProtocol, reference: ProbeObservation | None = None
) -> ProbeVerdict:
    verdict = judge(observation, app_protocol, reference)
    http = observation.http
    if http is None:
        return verdict  # probe: none, or no request was made: the TLS layer decides
    if verdict.outcome is Outcome.UNKNOWN and http.status is not None:
        line = f"{http.status} {http.reason}".rstrip()
        return ProbeVerdict(Outcome.ACCEPTED, Layer.HTTP, f"the request reached the application: HTTP {line}")
    if verdict.outcome is Outcome.ACCEPTED and http.status is None:
        # TLS let the identity connect; whether the application lets it make this
        # request is what the rule asks, and nothing answered that.
        return ProbeVerdict(
            Outcome.UNKNOWN, None, f"TLS let the identity in, but the request got no HTTP answer ({http.error})"
        )
    return verdict


def judge_access_attempts(
    attempts: Sequence[ProbeObservation], app_protocol: AppProtocol, reference: ProbeObservation | None
) -> Attempts:
    return Attempts(tuple(access_verdict(o, app_protocol, reference) for o in attempts))
