"""How a finding's status, severity and check become SIEM fields, the same for ECS and OCSF.

Severity and status are translated through ONE table each, ``SEVERITY_MAP`` and
``STATUS_MAP``, used by both flavors (``mapping_table_markdown()`` renders them for the
README). ``event.severity`` uses the same 1–5 scale as OCSF ``severity_id``, so
"severity >= 4" means high or critical in either flavor.

A finding's event severity is the severity *of the event*, not of the check: a ``fail``,
``warn`` or ``error`` carries the check's severity, while a ``pass`` or ``skip`` is
informational (ECS ``event.severity`` 1, OCSF ``severity_id`` 1 Informational), since
nothing needs doing. Otherwise every passing critical check would look like a critical
event and SIEM rules keyed on severity would fire on good news. The check's own severity
stays in our field ``mtls.severity`` (``unmapped.mtls.severity`` in OCSF).

OCSF 1.8.0 defines ``compliance.status_id`` as 1 Pass ("passed for all the evaluated
resources"), 2 Warning ("did not yield a result due to missing information"), 3 Fail
("failed for at least one of the evaluated resources"), plus 0 Unknown and 99 Other
from the dictionary. So:

- ``error`` (the scanner could not decide: timeout, ambiguous observation, target not
  reachable) is exactly OCSF's 2 Warning; ECS ``event.outcome`` ``unknown``.
- ``warn`` (e.g. a certificate inside the expiry horizon) *did* yield a result, and the
  endpoint does not meet the requirement yet, which is OCSF's 3 Fail, not its Warning
  (that would claim the check could not decide). ECS counts it as a ``failure`` too.
  ``compliance.status_code`` keeps our own status (``warn``), so a SIEM can still tell
  a warning from a failure.
- ``skip`` (the check does not apply to that target, e.g. a TLS-only service) is still
  emitted, so the SIEM sees every gate, with ECS outcome ``unknown`` and OCSF compliance
  status 99 Other, ``status`` "Skipped" (for Other the source names the status).

The scan summary's outcome is the scan's overall verdict (``Summary.overall``): the
worst target status (``Status.rank`` order: fail, error, warn, pass, skip) through
``STATUS_MAP``. Its severity is the highest severity among the fail/warn/error findings
written, info when there are none (``worse_severity`` keeps it up to date).

A finding's uid (``finding_uid``) is stable across scans: a hash of the target name and
the check id, so later events about a finding refer to the same finding.

A check is named by its title and description from the scan's check catalog
(``ScanInfo.checks``); its category is ``client-authentication`` for the mTLS checks,
``tls-configuration`` for the others.
"""

from __future__ import annotations

import hashlib
import json
from typing import NamedTuple

from mtls_audit.scanner.model.finding import Finding
from mtls_audit.scanner.model.report import CheckInfo
from mtls_audit.scanner.model.status import Severity, Status

PRODUCT = "mtls-audit"


class SeverityMapping(NamedTuple):
    ecs_severity: int  # ECS event.severity (long)
    ocsf_severity_id: int  # OCSF severity_id
    ocsf_severity: str  # OCSF severity (the caption of severity_id)


class StatusMapping(NamedTuple):
    ecs_outcome: str  # ECS event.outcome
    ocsf_status_id: int  # OCSF compliance.status_id
    ocsf_status: str  # OCSF compliance.status


class RuleInfo(NamedTuple):
    title: str
    description: str | None
    category: str


SEVERITY_MAP: dict[str, SeverityMapping] = {
    Severity.INFO.value: SeverityMapping(1, 1, "Informational"),
    Severity.LOW.value: SeverityMapping(2, 2, "Low"),
    Severity.MEDIUM.value: SeverityMapping(3, 3, "Medium"),
    Severity.HIGH.value: SeverityMapping(4, 4, "High"),
    Severity.CRITICAL.value: SeverityMapping(5, 5, "Critical"),
}

STATUS_MAP: dict[str, StatusMapping] = {
    Status.PASS.value: StatusMapping("success", 1, "Pass"),
    Status.WARN.value: StatusMapping("failure", 3, "Fail"),
    Status.FAIL.value: StatusMapping("failure", 3, "Fail"),
    Status.ERROR.value: StatusMapping("unknown", 2, "Warning"),
    Status.SKIP.value: StatusMapping("unknown", 99, "Skipped"),
}

# Findings with these statuses are informational events, whatever the check's severity.
INFORMATIONAL_STATUSES = (Status.PASS, Status.SKIP)


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
        "| finding `severity` (`fail`, `warn`, `error`) | ECS `event.severity` | OCSF `severity_id` | OCSF `severity` |",
        "|---|---|---|---|",
    ]
    for severity, level in SEVERITY_MAP.items():
        lines.append(f"| `{severity}` | `{level.ecs_severity}` | `{level.ocsf_severity_id}` | {level.ocsf_severity} |")
    informational = SEVERITY_MAP[Severity.INFO.value]
    statuses = " or ".join(f"`{status.value}`" for status in INFORMATIONAL_STATUSES)
    lines.append(
        f"| any, when the status is {statuses} (the check's own is in `mtls.severity`) "
        f"| `{informational.ecs_severity}` | `{informational.ocsf_severity_id}` | {informational.ocsf_severity} |"
    )
    return "\n".join(lines) + "\n"


def finding_uid(target_name: str, check_id: str) -> str:
    """A finding's identity across scans: the same target and check give the same uid."""
    material = json.dumps([target_name, check_id], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def status_mapping(status: Status) -> StatusMapping:
    return STATUS_MAP[status.value]


def event_severity(finding: Finding) -> SeverityMapping:
    """The event's severity: the check's for fail/warn/error, informational otherwise."""
    if finding.status in INFORMATIONAL_STATUSES:
        return SEVERITY_MAP[Severity.INFO.value]
    return SEVERITY_MAP[finding.severity.value]


def worse_severity(worst: Severity | None, finding: Finding) -> Severity | None:
    """The summary's severity after ``finding``: ``worst`` so far, raised by a fail/warn/error."""
    if finding.status.failing and (worst is None or finding.severity.rank > worst.rank):
        return finding.severity
    return worst


def rule_info(check_id: str, check: CheckInfo | None) -> RuleInfo:
    """What the events say about a check (``None``: not in the scan's catalog, named by its id)."""
    if check is None:
        return RuleInfo(check_id, None, "tls-configuration")
    category = "client-authentication" if check.mtls else "tls-configuration"
    return RuleInfo(check.title, check.description, category)
