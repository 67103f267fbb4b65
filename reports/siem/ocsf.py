"""OCSF events: one per finding (``ocsf_finding``) and the scan summary (``ocsf_summary``).

OCSF 1.8.0. Each finding is a *Compliance Finding* (``class_uid`` 2003, category 2
Findings); the scan summary is a *Scan Activity* (``class_uid`` 6007, category 6
Application Activity) with ``activity_id`` 2 Completed. ``severity_id`` and
``compliance.status_id`` come from the shared table in ``reports.siem.mapping`` (a
passing or skipped finding is Informational; ``warn`` is compliance status 3 Fail and
``error`` 2 Warning, as that module explains); ``compliance.status_code`` is our own
status (``pass``, ``warn``, ``fail``, ``error``, ``skip``).

Finding workflow (optional ``baseline``/``waived`` keys on a finding): ``activity_id``
follows the baseline — ``new`` or none → 1 Create, ``known`` → 2 Update, ``resolved`` →
3 Close — and ``status_id`` is 4 Resolved for a resolved baseline, 3 Suppressed for a
waived finding, 1 New otherwise. ``finding_info.uid`` is ``finding_uid``, stable across
scans, so Update/Close refer to the same finding.

The scan summary's ``status_id`` is 1 Success, 2 Failure or 0 Unknown for the ECS
outcomes success, failure and unknown of the scan's overall status.

The endpoint facts ECS spreads over ``destination``/``tls`` are in ``resources[0]``
(``uid`` = address, ``data`` = port, TLS, leaf). Our own fields are under
``unmapped.mtls`` (``reports.siem.extras``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypedDict

from mtls_audit.reports.siem.extras import finding_extras, scan_uid, summary_extras, summary_message
from mtls_audit.reports.siem.mapping import (
    PRODUCT,
    SEVERITY_MAP,
    RuleInfo,
    event_severity,
    finding_uid,
    status_mapping,
)
from mtls_audit.reports.siem.target import TargetContext
from mtls_audit.reports.siem.values import drop_none, epoch_ms
from mtls_audit.scanner.model.finding import BaselineLabel, Finding
from mtls_audit.scanner.model.report import ScanInfo, Summary
from mtls_audit.scanner.model.status import Severity, Status

OCSF_VERSION = "1.8.0"
OCSF_STANDARD = "mtls-audit"
OCSF_RESOURCE_TYPE = "network_endpoint"

# OCSF finding workflow: baseline -> (activity_id, activity_name).
OCSF_BASELINE_ACTIVITY: dict[BaselineLabel | None, tuple[int, str]] = {
    None: (1, "Create"),
    BaselineLabel.NEW: (1, "Create"),
    BaselineLabel.KNOWN: (2, "Update"),
    BaselineLabel.RESOLVED: (3, "Close"),
}
OCSF_FINDING_STATUS_NEW = (1, "New")
OCSF_FINDING_STATUS_SUPPRESSED = (3, "Suppressed")
OCSF_FINDING_STATUS_RESOLVED = (4, "Resolved")

# OCSF base-event status for the scan summary, from the ECS outcome of the overall status.
OCSF_EVENT_STATUS: dict[str, tuple[int, str]] = {
    "success": (1, "Success"),
    "failure": (2, "Failure"),
    "unknown": (0, "Unknown"),
}


class OcsfClass(TypedDict):
    """The OCSF category and class fields an event starts with."""

    category_uid: int
    category_name: str
    class_uid: int
    class_name: str


OCSF_COMPLIANCE_FINDING: OcsfClass = {
    "category_uid": 2,
    "category_name": "Findings",
    "class_uid": 2003,
    "class_name": "Compliance Finding",
}
OCSF_SCAN_ACTIVITY: OcsfClass = {
    "category_uid": 6,
    "category_name": "Application Activity",
    "class_uid": 6007,
    "class_name": "Scan Activity",
}
OCSF_SCAN_COMPLETED = (2, "Completed")


def ocsf_finding(
    context: TargetContext,
    finding: Finding,
    check: RuleInfo,
    *,
    now: Callable[[], datetime],
    tool_version: str,
) -> dict[str, Any]:
    """The event for one finding of the target ``context`` describes (``now`` is not
    needed: the time is the target's scan time)."""
    status, severity = status_mapping(finding.status), event_severity(finding)
    check_id = finding.check
    activity_id, activity_name = OCSF_BASELINE_ACTIVITY[finding.baseline]
    if finding.baseline is BaselineLabel.RESOLVED:
        status_id, status_name = OCSF_FINDING_STATUS_RESOLVED
    elif finding.waived:
        status_id, status_name = OCSF_FINDING_STATUS_SUPPRESSED
    else:
        status_id, status_name = OCSF_FINDING_STATUS_NEW
    time_ms = context.time_ms
    event: dict[str, Any] = {
        "activity_id": activity_id,
        "activity_name": activity_name,
        **OCSF_COMPLIANCE_FINDING,
        "type_uid": OCSF_COMPLIANCE_FINDING["class_uid"] * 100 + activity_id,
        "type_name": f"{OCSF_COMPLIANCE_FINDING['class_name']}: {activity_name}",
        "severity_id": severity.ocsf_severity_id,
        "severity": severity.ocsf_severity,
        "status_id": status_id,
        "status": status_name,
        "time": time_ms,
        "timezone_offset": context.timezone_offset,
        "message": finding.summary,
        "metadata": _metadata(tool_version),
        "finding_info": drop_none(
            {
                "uid": finding_uid(context.name, check_id),
                "title": check.title,
                "desc": finding.summary,
                "types": ["mTLS policy"],
                "analytic": drop_none(
                    {"uid": check_id, "name": check.title, "desc": check.description, "type_id": 1, "type": "Rule"}
                ),
                "created_time": time_ms,
            }
        ),
        "compliance": drop_none(
            {
                "control": check_id,
                "desc": check.description,
                "category": check.category,
                "standards": [OCSF_STANDARD],
                "status_id": status.ocsf_status_id,
                "status": status.ocsf_status,
                "status_code": finding.status.value,
            }
        ),
        "resources": [_resource(context)],
    }
    if event["timezone_offset"] is None:
        del event["timezone_offset"]
    if finding.remediation:
        event["remediation"] = {"desc": finding.remediation}
    event["unmapped"] = {"mtls": finding_extras(context, finding)}
    return event


def ocsf_summary(
    scan: ScanInfo,
    summary: Summary,
    *,
    worst_severity: Severity | None,
    now: Callable[[], datetime],
    tool_version: str,
) -> dict[str, Any]:
    """The scan-summary event; ``worst_severity`` as ``mapping.worse_severity`` tracked it,
    ``now`` read only when the scan has no end time."""
    status_id, status_name = OCSF_EVENT_STATUS[status_mapping(summary.overall).ecs_outcome]
    severity = SEVERITY_MAP[(worst_severity or Severity.INFO).value]
    activity_id, activity_name = OCSF_SCAN_COMPLETED
    end = scan.finished or now()
    by_finding = summary.findings_by_status
    event: dict[str, Any] = {
        "activity_id": activity_id,
        "activity_name": activity_name,
        **OCSF_SCAN_ACTIVITY,
        "type_uid": OCSF_SCAN_ACTIVITY["class_uid"] * 100 + activity_id,
        "type_name": f"{OCSF_SCAN_ACTIVITY['class_name']}: {activity_name}",
        "severity_id": severity.ocsf_severity_id,
        "severity": severity.ocsf_severity,
        "status_id": status_id,
        "status": status_name,
        "time": epoch_ms(end),
        "message": summary_message(summary),
        "metadata": _metadata(tool_version),
        "scan": {"uid": scan_uid(scan), "name": PRODUCT, "type_id": 99, "type": "mTLS policy audit"},
        "total": summary.targets,
        "num_network_items": summary.targets,
        "num_detections": by_finding.get(Status.FAIL, 0) + by_finding.get(Status.WARN, 0),
        "start_time": epoch_ms(scan.started),
        "end_time": epoch_ms(end),
    }
    event["duration"] = max(0, event["end_time"] - event["start_time"])
    event["unmapped"] = {"mtls": summary_extras(scan, summary)}
    return event


def _metadata(tool_version: str) -> dict[str, Any]:
    return {
        "version": OCSF_VERSION,
        "product": {"name": PRODUCT, "vendor_name": PRODUCT, "version": tool_version},
    }


def _resource(context: TargetContext) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "type": OCSF_RESOURCE_TYPE,
        "uid": context.address,
        "name": context.name,
        "role_id": 1,
        "role": "Target",
    }
    if context.domain:
        resource["hostname"] = context.domain
    if context.ip:
        resource["ip"] = context.ip
    if context.tags:
        resource["labels"] = context.tags
    data: dict[str, Any] = {"server_name": context.server_name}
    if context.port is not None:
        data["port"] = context.port
    data["accepted_versions"] = list(context.target.accepted_versions)
    if context.has_probes:
        tls: dict[str, Any] = {"established": context.probe is not None}
        if context.probe is not None:
            tls |= drop_none(
                {
                    "probe": context.probe.spec.id,
                    "version": context.probe.negotiated_version,
                    "cipher": context.probe.cipher,
                }
            )
        sni = context.sni()
        if sni:
            tls["sni"] = sni
        data["tls"] = tls
    if context.leaf is not None:
        data["certificate"] = {key: value for key, value in context.leaf.to_dict().items() if key != "pem"}
    resource["data"] = data
    return resource
