"""Reading an access-rule probe: did the named identity's request reach the
application, or was it denied?

Denied is what ``judge`` calls blocked: in or after the TLS handshake, or an HTTP
401/403/495/496 (and nginx's 400 for a certificate failure). Allowed is wider than
``judge``'s "accepted": any other HTTP answer means the request got past every
layer that checks the certificate (a 405 or a 500 comes from the application).
For gRPC every status but UNAUTHENTICATED and PERMISSION_DENIED means the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from mtls_audit.scanner.judge.client_auth import Attempts
from mtls_audit.scanner.judge.verdicts import Outcome, ProbeVerdict, judge
from mtls_audit.scanner.model.observations import ProbeObservation
from mtls_audit.scanner.model.target import AppProtocol


def access_verdict(
    observation: ProbeObservation, app_protocol: AppProtocol, reference: ProbeObservation | None = None
) -> ProbeVerdict:
    verdict = judge(observation, app_protocol, reference)
    answered, asked, error = _application_answer(observation)
    if asked is None:
        return verdict  # probe: none or postgres, or no request was made: judge decides
    if verdict.outcome is Outcome.UNKNOWN and answered is not None:
        return ProbeVerdict(Outcome.ACCEPTED, verdict.layer, f"the request reached the application: {answered}")
    if verdict.outcome is Outcome.ACCEPTED and answered is None:
        # TLS let the identity connect; whether the application lets it make this
        # request is what the rule asks, and nothing answered that.
        return ProbeVerdict(
            Outcome.UNKNOWN, None, f"TLS let the identity in, but the request got no {asked} answer ({error})"
        )
    return verdict


def _application_answer(o: ProbeObservation) -> tuple[str | None, str | None, str | None]:
    """(what the application answered, or None; which protocol was asked, or None;
    why there was no answer)."""
    if o.http is not None:
        answered = f"HTTP {o.http.status} {o.http.reason}".rstrip() if o.http.status is not None else None
        return answered, "HTTP", o.http.error
    if o.grpc is not None:
        answered = f"gRPC status {o.grpc.grpc_status}" if o.grpc.grpc_status is not None else None
        return answered, "gRPC", o.grpc.error
    return None, None, None


def judge_access_attempts(
    attempts: Sequence[ProbeObservation], app_protocol: AppProtocol, reference: ProbeObservation | None
) -> Attempts:
    return Attempts(tuple(access_verdict(o, app_protocol, reference) for o in attempts))
