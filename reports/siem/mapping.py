"""How a finding's status, severity and check become SIEM fields, the same for ECS and OCSF.

Severity and status are translated through ONE table each, ``SEVERITY_MAP`` and
``STATUS_MAP``, used by both flavors (``mapping_table_markdown()`` renders them for the
README). ``event.severity`` uses the same 1–5 scale as OCSF ``severity_id``, so
"severity >= 4" means high or critical in either flavor. Findings keep the check's own
severity whatever their status (a passing critical check is still a critical check);
filter on the outcome/status to alert.

- ``warn`` counts as an ECS ``failure``: the requirement is not met yet (e.g. a
  certificate inside the expiry horizon). OCSF has a ``Warning`` compliance status.
- ``error`` (the scanner could not decide: timeout, ambiguous observation) is an ECS
  ``unknown`` outcome and OCSF compliance status ``0`` Unknown.
- ``skip`` (the check does not apply to that target, e.g. a TLS-only service) is still
  emitted, so the SIEM sees every gate, with ECS outcome ``unknown`` and OCSF compliance
  status ``99`` Other, ``status`` "Skipped".

The scan summary's outcome is the scan's overall verdict (``overall_status``): the worst
target status (``Status.rank`` order: fail, error, warn, pass, skip) through
``STATUS_MAP``. Its severity is the highest severity among the fail/warn/error findings
written, info when there are none (``worse_severity`` keeps it up to date).

A finding's uid (``finding_uid``) is stable across scans: a hash of the target name and
the check id, so later events about a finding refer to the same finding.

A check is named by its registered title and description; its category is
``client-authentication`` for the mTLS checks, ``tls-configuration`` for the others.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple

from mtls_audit.reports.siem.values import as_counts

PRODUCT = "mtls-audit"


class SeverityMapping(NamedTuple):
    ecs_severity: int  # ECS event.severity (long)
    ocsf_severity_id: int  # OCSF severity_id
    ocsf_severity: str  # OCSF severity (the caption of severity_id)


class StatusMapping(NamedTuple):
    ecs_outcome: str  # ECS event.outcome
    ocsf_status_id: int  # OCSF compliance.status_id
    ocsf_status: str  # OCSF compliance.status


class CheckInfo(NamedTuple):
    title: str
    description: str | None
    category: str


SEVERITY_MAP: dict[str, SeverityMapping] = {
    "info": SeverityMapping(1, 1, "Informational"),
    "low": SeverityMapping(2, 2, "Low"),
    "medium": SeverityMapping(3, 3, "Medium"),
    "high": SeverityMapping(4, 4, "High"),
    "critical": SeverityMapping(5, 5, "Critical"),
}

STATUS_MAP: dict[str, StatusMapping] = {
    "pass": StatusMapping("success", 1, "Pass"),
    "warn": StatusMapping("failure", 2, "Warning"),
    "fail": StatusMapping("failure", 3, "Fail"),
    "error": StatusMapping("unknown", 0, "Unknown"),
    "skip": StatusMapping("unknown", 99, "Skipped"),
}

_STATUS_RANK = {"skip": 0, "pass": 1, "warn": 2, "error": 3, "fail": 4}  # = checks.base.Status.rank
_NOT_PASSING = frozenset({"fail", "warn", "error"})


def mapping_table_markdown() -> str:
    """The severity and status mapping as Markdown tables (for the README)."""
    lines = [
        "| finding `status` | ECS `event.outcome` | OCSF `compliance.status_id` | OCSF `compliance.status` |",
        "|---|---|---|---|",
    ]
    for status, mapping in STATUS_MAP.items():
        lines.append(f"| `{status}` | `{mapping.ecs_outcome}` | `{mapping.ocsf_status_id}` | {mapping.ocsf_status} |")
    lines += [
        "",
        "| finding `severity` | ECS `event.severity` | OCSF `severity_id` | OCSF `severity` |",
        "|---|---|---|---|",
    ]
    for severity, level in SEVERITY_MAP.items():
        lines.append(f"| `{severity}` | `{level.ecs_severity}` | `{level.ocsf_severity_id}` | {level.ocsf_severity} |")
    return "\n".join(lines) + "\n"


def finding_uid(target_name: str, check_id: str) -> str:
    """A finding's identity across scans: the same target and check give the same uid."""
    material = json.dumps([target_name, check_id], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def status_mapping(finding: dict[str, Any]) -> StatusMapping:
    # The schema only allows the five statuses; anything else is reported as undecided.
    status: Any = finding.get("status")  # untyped JSON, looked up as is
    return STATUS_MAP.get(status, STATUS_MAP["error"])


def severity_mapping(finding: dict[str, Any]) -> SeverityMapping:
    severity: Any = finding.get("severity")  # untyped JSON, looked up as is
    return SEVERITY_MAP.get(severity, SEVERITY_MAP["info"])


def overall_status(summary: dict[str, Any]) -> str:
    """The scan's verdict: the worst status among its targets ("skip" when there are none)."""
    present = [s for s, n in as_counts(summary.get("targets_by_status")).items() if n and s in _STATUS_RANK]
    return max(present, key=_STATUS_RANK.__getitem__, default="skip")


def worse_severity(worst: str | None, finding: dict[str, Any]) -> str | None:
    """The summary's severity after ``finding``: ``worst`` so far, raised by a fail/warn/error."""
    severity = finding.get("severity")
    if finding.get("status") in _NOT_PASSING and severity in SEVERITY_MAP:
        order = list(SEVERITY_MAP)
        if worst is None or order.index(severity) > order.index(worst):
            return severity
    return worst


def check_info(check_id: str, check: Any | None) -> CheckInfo:
    """What the events say about a check (``None``: not registered, named by its id)."""
    if check is None:
        return CheckInfo(check_id, None, "tls-configuration")
    category = "client-authentication" if getattr(check, "mtls", False) else "tls-configuration"
    return CheckInfo(check.title, check.description, category)
