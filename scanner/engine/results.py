"""What the scan concluded about each target, in the shape every report is made from.

``TargetResult.to_dict()`` is the JSON report's per-target object (see
``reports/schema/report.schema.json``). Reporters read only that dict form, so any of
them can re-render a saved JSON report without the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from mtls_audit.checks.base import Finding, Status
from mtls_audit.scanner.judge.verdicts import VersionClientAuth
from mtls_audit.scanner.model.certificates import certificate_summary
from mtls_audit.scanner.model.observations import ProbeObservation
from mtls_audit.scanner.model.target import Target

SCHEMA_VERSION = "1.0"


@dataclass(frozen=True)
class TargetResult:
    target: Target
    status: Status  # worst finding; error when the target could not be scanned
    error: str | None  # why the target could not be scanned, if it could not
    accepted_versions: tuple[str, ...]
    client_auth: tuple[VersionClientAuth, ...]
    presented_chain: tuple[x509.Certificate, ...]
    findings: tuple[Finding, ...]
    observations: tuple[ProbeObservation, ...]
    scanned_at: datetime  # when the last probe of this target finished

    def to_dict(self) -> dict[str, Any]:
        target = self.target
        return {
            "name": target.name,
            "address": target.address,
            "server_name": target.server_name,
            "tags": list(target.tags),
            "status": self.status.value,
            "error": self.error,
            "scanned_at": self.scanned_at.isoformat(),
            "accepted_versions": list(self.accepted_versions),
            "client_auth": [entry.to_dict() for entry in self.client_auth],
            "certificates": [certificate_summary(c) for c in self.presented_chain],
            "findings": [finding.to_dict() for finding in self.findings],
            "probes": [observation.to_dict() for observation in self.observations],
        }


@dataclass(frozen=True)
class ScanMetadata:
    started: datetime
    finished: datetime | None
    tool_version: str
    inventory: str | None
    options: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat() if self.finished else None,
            "tool": "mtls-audit",
            "tool_version": self.tool_version,
            "inventory": self.inventory,
            "options": self.options,
        }
