"""A finding: one check's verdict on one target, with its evidence.

Evidence is free-form per check (plain JSON values). What every writer needs in the
same shape is typed: the commands that repeat the verdict by hand, and what triage
(waivers, the baseline) concluded about the finding.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from mtls_audit.scanner.model.status import Severity, Status


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status.value,
            "severity": self.severity.value,
            "summary": self.summary,
            "remediation": self.remediation,
            "commands": [command.to_dict() for command in self.commands],
            "evidence": self.evidence,
            "waived": self.waived,
            "waiver": self.waiver.to_dict() if self.waiver else None,
            "baseline": self.baseline.value if self.baseline else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        waiver = data.get("waiver")
        baseline = data.get("baseline")
        return cls(
            check=data["check"],
            status=Status(data["status"]),
            severity=Severity(data["severity"]),
            summary=data["summary"],
            remediation=data.get("remediation", ""),
            evidence=data.get("evidence") or {},
            commands=tuple(ReproCommand.from_dict(c) for c in data.get("commands") or ()),
            waived=bool(data.get("waived", False)),
            waiver=WaiverNote.from_dict(waiver) if waiver else None,
            baseline=BaselineLabel(baseline) if baseline else None,
        )
