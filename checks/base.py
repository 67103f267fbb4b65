"""The contract between the engine and a check.

A check is plain data plus a pure function: it names the probes it needs, and turns
a target's observations into exactly one finding. It does no I/O and reads no clock
(the scan time comes in ``Evidence.now``), so every check is tested with hand-built
observations. Third-party checks register a ``Check`` under the entry-point group
``mtls_audit.checks``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mtls_audit.scanner.model.observations import Presented, ProbeObservation, TLSVersion
from mtls_audit.scanner.model.target import Target

ENTRY_POINT_GROUP = "mtls_audit.checks"


class Status(enum.StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"  # could not decide: never silently a pass
    SKIP = "skip"

    @property
    def rank(self) -> int:
        """Badness, for picking a target's overall status."""
        return {"skip": 0, "pass": 1, "warn": 2, "error": 3, "fail": 4}[self.value]


class Severity(enum.StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    severity: Severity
    summary: str  # one line
    remediation: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status.value,
            "severity": self.severity.value,
            "summary": self.summary,
            "remediation": self.remediation,
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class Evidence:
    """Everything a check may look at for one target."""

    target: Target
    observations: tuple[ProbeObservation, ...]
    now: datetime  # the scan's clock, timezone-aware UTC

    def probe(self, presented: Presented, version: TLSVersion) -> ProbeObservation | None:
        for observation in self.observations:
            if observation.spec.presented is presented and observation.spec.version is version:
                return observation
        return None


class Needs(enum.StrEnum):
    """Probe families a check can ask for. The engine runs the union of what the
    enabled checks need: version probes first, then impostors on every version the
    server accepted."""

    VERSIONS = "versions"  # one handshake per TLS version, as the valid identity
    NO_CERT = "no-cert"
    ROGUE_CA = "rogue-ca"
    SELF_SIGNED = "self-signed"


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    severity: Severity
    needs: frozenset[Needs]
    description: str  # what passing means, for `mtls-audit checks`
    evaluate: Callable[[Evidence], Finding]
    mtls: bool = False  # judged on client authentication: skipped when the target expects none

    def finding(self, status: Status, summary: str, remediation: str = "", /, **evidence: Any) -> Finding:
        """This check's finding; the keyword arguments are its evidence.

        ``status``, ``summary`` and ``remediation`` are positional-only, so evidence
        passed as ``**facts`` is never typed as (or bound to) the status or summary.
        A ``remediation=`` keyword is still the remediation, as it always was, so
        "remediation" is never an evidence key.
        """
        if "remediation" in evidence:
            remediation = evidence.pop("remediation")
        return Finding(self.id, status, self.severity, summary, remediation, evidence)
