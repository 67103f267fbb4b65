"""A finding: one check's verdict on one target, with its evidence.

Evidence is free-form per check (plain JSON values). What every writer needs in the
same shape is typed: the commands that repeat the verdict by hand, and what triage
(waivers, the baseline) concluded about the finding.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from mtls_audit.scanner.model.status import Severity, Status

if TYPE_CHECKING:
    from mtls_audit.scanner.model.observations import ProbeObservation


@dataclass(frozen=True, slots=True)
class ReproCommand:
    """A shell command line that repeats one probe by hand (``openssl s_client``)."""

    label: str  # which probe it repeats, e.g. "no-cert@tls1.3"
    command: str

    def to_dict(self) -> dict[str, str]:
        return {"label": self.label, "command": self.command}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReproCommand:
        return cls(label=str(data.get("label") or ""), command=str(data["command"]))


def probe_evidence(probe: ProbeObservation, outcome: str, blocked_at: str | None, reason: str) -> dict[str, Any]:
    """One probe as a finding's evidence lists it: its verdict and the facts behind it
    (what was presented, the version, the alert, the application's answer). The checks
    write it; a saved report keeps only the verdict and ``Finding.from_dict`` puts the
    rest back from the probe, so both must come from here."""
    entry: dict[str, Any] = {
        "probe": probe.spec.id,
        "presented": probe.spec.presented.value,
        "attempt": probe.spec.attempt,
        "tls_version": probe.negotiated_version or probe.spec.version.value,
        "outcome": outcome,
        "blocked_at": blocked_at,
        "reason": reason,
        "certificate_request_seen": probe.certificate_request_seen,
        "alert": probe.alert_received.to_dict() if probe.alert_received else None,
        "after_handshake": probe.after_handshake.value,
        "http_status": probe.http.status if probe.http else None,
    }
    # Only where the probe spoke the protocol, so HTTP evidence reads as it always did.
    if probe.certificate_requested_after_handshake:
        entry["certificate_requested_after_handshake"] = True
    if probe.grpc is not None:
        entry |= {"grpc_status": probe.grpc.grpc_status, "grpc_message": probe.grpc.grpc_message}
    if probe.postgres is not None:
        entry |= {"sqlstate": probe.postgres.sqlstate, "postgres_message": probe.postgres.message}
    return entry


class BaselineLabel(enum.StrEnum):
    """A finding compared with the baseline report (see ``triage.baseline``)."""

    NEW = "new"
    KNOWN = "known"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class WaiverNote:
    """The waiver that matched a failing finding; ``expired`` ones do not apply."""

    target: str
    check: str
    reason: str
    owner: str
    expires: date
    expired: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "target": self.target,
            "check": self.check,
            "reason": self.reason,
            "owner": self.owner,
            "expires": self.expires.isoformat(),
        }
        if self.expired:
            data["expired"] = True
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WaiverNote:
        return cls(
            target=data["target"],
            check=data["check"],
            reason=data["reason"],
            owner=data["owner"],
            expires=date.fromisoformat(data["expires"]),
            expired=bool(data.get("expired", False)),
        )


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    status: Status
    severity: Severity
    summary: str  # one line
    remediation: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    commands: tuple[ReproCommand, ...] = ()
    # Set by triage on the way to the reports; a scan without triage leaves them so.
    waived: bool = False
    waiver: WaiverNote | None = None
    baseline: BaselineLabel | None = None

    def to_dict(self, probes: Mapping[str, ProbeObservation] | None = None) -> dict[str, Any]:
        """The finding; what is at its default (no remediation, no commands, no
        evidence, not waived, no baseline label) is left out.

        With the target's ``probes`` (by id), an evidence entry that repeats a probe's
        facts (``checks.common.probe_entry``: what was presented, the version, the
        alert...) keeps only the verdict: ``probe``, ``outcome``, ``blocked_at``,
        ``reason``; ``from_dict`` puts the facts back from the probe. It is done only
        when reading it back gives the evidence exactly as it was."""
        data: dict[str, Any] = {
            "check": self.check,
            "status": self.status.value,
            "severity": self.severity.value,
            "summary": self.summary,
        }
        if self.remediation:
            data["remediation"] = self.remediation
        if self.commands:
            data["commands"] = [command.to_dict() for command in self.commands]
        evidence = self.evidence
        if probes and evidence:
            verdict = ("probe", "outcome", "blocked_at", "reason")

            def by_reference(value: Any) -> Any:
                if isinstance(value, dict):
                    probe = value.get("probe")
                    if isinstance(probe, str) and probe in probes and set(value) > set(verdict):
                        return {key: value[key] for key in verdict}
                    return {key: by_reference(item) for key, item in value.items()}
                if isinstance(value, list):
                    return [by_reference(item) for item in value]
                return value

            shorter = by_reference(evidence)
            if shorter != evidence and Finding.from_dict({**data, "evidence": shorter}, probes).evidence == evidence:
                evidence = shorter
        if evidence:
            data["evidence"] = evidence
        if self.waived:
            data["waived"] = True
        if self.waiver:
            data["waiver"] = self.waiver.to_dict()
        if self.baseline:
            data["baseline"] = self.baseline.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], probes: Mapping[str, ProbeObservation] | None = None) -> Finding:
        """From a saved finding; with the target's ``probes`` (by id), an evidence
        entry that names a probe and holds only the verdict gets the probe's facts back
        (see ``to_dict``)."""
        waiver = data.get("waiver")
        baseline = data.get("baseline")
        evidence = data.get("evidence") or {}
        if probes and evidence:
            verdict = {"probe", "outcome", "blocked_at", "reason"}

            def restored(value: Any) -> Any:
                if isinstance(value, dict):
                    probe = value.get("probe")
                    if isinstance(probe, str) and probe in probes and set(value) == verdict:
                        return probe_evidence(probes[probe], value["outcome"], value["blocked_at"], value["reason"])
                    return {key: restored(item) for key, item in value.items()}
                if isinstance(value, list):
                    return [restored(item) for item in value]
                return value

            evidence = restored(evidence)
        return cls(
            check=data["check"],
            status=Status(data["status"]),
            severity=Severity(data["severity"]),
            summary=data["summary"],
            remediation=data.get("remediation", ""),
            evidence=evidence,
            commands=tuple(ReproCommand.from_dict(c) for c in data.get("commands") or ()),
            waived=bool(data.get("waived", False)),
            waiver=WaiverNote.from_dict(waiver) if waiver else None,
            baseline=BaselineLabel(baseline) if baseline else None,
        )
