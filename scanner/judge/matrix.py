"""The identity matrix: every client the scanner presented (our identity, the
impostors, each access rule's identity, the issuer-minted copies) across every TLS
version the server accepted: allowed, or blocked where, and whether the policy
wanted that. It is what a person reads first to see who gets in."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mtls_audit.scanner.judge.access import access_verdict
from mtls_audit.scanner.judge.verdicts import Layer, Outcome, ProbeVerdict, judge
from mtls_audit.scanner.judge.versions import accepted_versions
from mtls_audit.scanner.model.certificates import subject_text
from mtls_audit.scanner.model.minting import DEFECTS, ONLY_WITH_ACCESS_RULES
from mtls_audit.scanner.model.observations import MINTED_VARIANTS, Presented, ProbeObservation, TLSVersion
from mtls_audit.scanner.model.report import MatrixCell, MatrixRow
from mtls_audit.scanner.model.target import AppProtocol, ClientAuthExpectation, Target

_IMPOSTORS = {
    Presented.NO_CERT: "no certificate",
    Presented.ROGUE_CA: "rogue CA",
    Presented.SELF_SIGNED: "self-signed",
}

Judge = Callable[[ProbeObservation, AppProtocol, ProbeObservation | None], ProbeVerdict]


def identity_matrix(target: Target, observations: Sequence[ProbeObservation]) -> tuple[MatrixRow, ...]:
    versions = accepted_versions(observations)
    if not versions:
        return ()

    def attempts(
        presented: Presented, version: TLSVersion, name: str | None, request: str | None
    ) -> list[ProbeObservation]:
        return [
            o
            for o in observations
            if o.spec.presented is presented
            and o.spec.version is version
            and o.spec.identity == name
            and o.spec.request == request
        ]

    reference = {o.spec.version: o for o in observations if o.spec.presented is Presented.VALID and o.spec.attempt == 1}
    minted_reference = {
        o.spec.version: o for o in observations if o.spec.presented is Presented.MINTED and o.spec.attempt == 1
    }

    def row(
        client: str,
        kind: str,
        expect: str | None,
        presented: Presented,
        *,
        name: str | None = None,
        request: str | None = None,
        judging: Judge = judge,
        references: dict[TLSVersion, ProbeObservation] = reference,
        detail: str = "",
    ) -> MatrixRow | None:
        cells = []
        fingerprint = None
        for version in versions:
            seen = attempts(presented, version, name, request)
            if seen:
                fingerprint = fingerprint or seen[0].client_certificate_sha256
            cells.append(_cell(version, seen, expect, judging, target.app_protocol, references.get(version)))
        if all(cell.observed == "not-probed" for cell in cells):
            return None
        return MatrixRow(client, kind, expect, tuple(cells), detail, fingerprint)

    mtls = target.client_auth is ClientAuthExpectation.REQUIRED
    rows: list[MatrixRow | None] = []
    if target.identity is not None:
        name = target.identity.name or subject_text(target.identity.credential.certificate)
        rows.append(row(name, "identity", "allow", Presented.VALID))
    for presented, label in _IMPOSTORS.items():
        rows.append(row(label, "impostor", "deny" if mtls else None, presented))
    for rule in target.access:
        request = rule.request_made(target.request)
        rows.append(
            row(
                f"{rule.name} {request}",
                "rule",
                rule.expect.value,
                Presented.IDENTITY,
                name=rule.name,
                request=rule.request,
                judging=access_verdict,
                detail=request,
            )
        )
    rows.append(
        row(
            "issuer copy",
            "minted",
            "allow",
            Presented.MINTED,
            detail=DEFECTS[Presented.MINTED],
        )
    )
    for presented in MINTED_VARIANTS:
        expect = "deny" if presented not in ONLY_WITH_ACCESS_RULES or target.access else None
        rows.append(
            row(
                presented.value,
                "minted",
                expect if mtls else None,
                presented,
                references=minted_reference,
                detail=DEFECTS[presented],
            )
        )
    return tuple(r for r in rows if r is not None)


def _cell(
    version: TLSVersion,
    attempts: list[ProbeObservation],
    expect: str | None,
    judging: Judge,
    app_protocol: AppProtocol,
    reference: ProbeObservation | None,
) -> MatrixCell:
    if not attempts:
        return MatrixCell(version.value, "not-probed", "", None)
    verdicts = [judging(o, app_protocol, reference) for o in attempts]
    accepted = [(o, v) for o, v in zip(attempts, verdicts, strict=True) if v.outcome is Outcome.ACCEPTED]
    if accepted:
        observation, verdict = accepted[0]
        observed = "allowed"
    elif all(v.outcome is Outcome.BLOCKED for v in verdicts):
        observation, verdict = attempts[0], verdicts[0]
        observed = "blocked"
    else:
        observation, verdict = next(
            (o, v) for o, v in zip(attempts, verdicts, strict=True) if v.outcome is not Outcome.BLOCKED
        )
        observed = verdict.outcome.value
    where = _where(observation, verdict)
    as_expected = None
    if expect is not None and observed in ("allowed", "blocked"):
        as_expected = (observed == "allowed") == (expect == "allow")
    return MatrixCell(version.value, observed, where, as_expected)


def _where(observation: ProbeObservation, verdict: ProbeVerdict) -> str:
    if verdict.layer is Layer.HTTP and observation.http is not None and observation.http.status is not None:
        return f"http {observation.http.status}"
    if verdict.layer is Layer.TLS_HANDSHAKE and observation.alert_received is not None:
        return f"handshake, alert {observation.alert_received.code}"
    if verdict.layer is Layer.TLS_POST_HANDSHAKE and observation.alert_received is not None:
        return f"after handshake, alert {observation.alert_received.code}"
    if verdict.layer is not None:
        return verdict.layer.value
    return verdict.reason
