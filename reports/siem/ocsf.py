"""OCSF events: one per finding (``ocsf_finding``) and the scan summary (``ocsf_summary``).

OCSF 1.8.0. Each finding is a *Compliance Finding* (``class_uid`` 2003, category 2
Findings); the scan summary is a *Scan Activity* (``class_uid`` 6007, category 6
Application Activity) with ``activity_id`` 2 Completed. ``severity_id`` and
``compliance.status_id`` come from the shared table in ``reports.siem_mapping``.

Finding workflow (optional ``baseline``/``waived`` keys on a finding): ``activity_id``
follows the baseline — ``new`` or none → 1 Create, ``known`` → 2 Update, ``resolved`` →
3 Close — and ``status_id`` is 4 Resolved for a resolved baseline, 3 Suppressed for a
waived finding, 1 New otherwise. ``finding_info.uid`` is ``finding_uid``, stable across
scans, so Update/Close refer to the same finding.

The scan summary's ``status_id`` is 1 Success, 2 Failure or 0 Unknown for the ECS
outcomes success, failure and unknown of the scan's overall status.

The endpoint facts ECS spreads over ``destination``/``tls`` are in ``resources[0]``
(``uid`` = address, ``data`` = port, TLS, leaf). Our own fields are under
``unmapped.mtls`` (``reports.siem_extras``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypedDict

from mtls_audit.reports.siem.extras import finding_extras, scan_uid, summary_extras, summary_message
from mtls_audit.reports.siem.mapping import (
    PRODUCT,
    SEVERITY_MAP,
    STATUS_MAP,
    CheckInfo,
    finding_uid,
    overall_status,
    severity_mapping,
    status_mapping,
)
from mtls_audit.reports.siem.target import TargetContext
from mtls_audit.reports.siem.values import as_count, as_text, drop_none, epoch_ms, parse_time

OCSF_VERSION = "1.8.0"
OCSF_STANDARD = "mtls-audit"
OCSF_RESOURCE_TYPE = "network_endpoint"

# OCSF finding workflow: baseline -> (activity_id, activity_name).
OCSF_BASELINE_ACTIVITY: dict[str | None, tuple[int, str]] = {
    None: (1, "Create"),
    "new": (1, "Create"),
    "known": (2, "Update"),
    "resolved": (3, "Close"),
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
    finding: dict[str, Any],
    check: CheckInfo,
    *,
    now: Callable[[], datetime],
    tool_version: str,
) -> dict[str, Any]:
    """The event for one finding of the target ``context`` describes; ``now`` is read only
    when the target has no scan time."""
    status, severity = status_mapping(finding), severity_mapping(finding)
    check_id = str(finding.get("check", ""))
    baseline = finding.get("baseline")
    activity_id, activity_name = OCSF_BASELINE_ACTIVITY.get(baseline, OCSF_BASELINE_ACTIVITY[None])
    if baseline == "resolved":
        status_id, status_name = OCSF_FINDING_STATUS_RESOLVED
    elif finding.get("waived"):
        status_id, status_name = OCSF_FINDING_STATUS_SUPPRESSED
    else:
        status_id, status_name = OCSF_FINDING_STATUS_NEW
    time_ms = context.time_ms if context.time_ms is not None else epoch_ms(now())
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
        "message": as_text(finding.get("summary")),
        "metadata": _metadata(tool_version),
        "finding_info": drop_none(
            {
                "uid": finding_uid(context.name, check_id),
                "title": check.title,
                "desc": as_text(finding.get("summary")),
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
            }
        ),
        "resources": [_resource(context)],
    }
    if event["timezone_offset"] is None:
        del event["timezone_offset"]
    remediation = as_text(finding.get("remediation"))
    if remediation:
        event["remediation"] = {"desc": remediation}
    event["unmapped"] = {"mtls": finding_extras(context, finding)}
    return event


def ocsf_summary(
    scan: dict[str, Any],
    summary: dict[str, Any],
    *,
    worst_severity: str | None,
    now: Callable[[], datetime],
    tool_version: str,
) -> dict[str, Any]:
    """The scan-summary event; ``worst_severity`` as ``siem_mapping.worse_severity`` tracked it,
    ``now`` read only when the scan has no end time."""
    overall = overall_status(summary)
    status_id, status_name = OCSF_EVENT_STATUS[STATUS_MAP[overall].ecs_outcome]
    severity = SEVERITY_MAP[worst_severity or "info"]
    activity_id, activity_name = OCSF_SCAN_COMPLETED
    started, finished = parse_time(scan.get("started")), parse_time(scan.get("finished"))
    end = finished or now()
    targets = as_count(summary.get("targets"))
    by_finding = summary.get("findings_by_status") or {}
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
        "total": targets,
        "num_network_items": targets,
        "num_detections": as_count(by_finding.get("fail")) + as_count(by_finding.get("warn")),
        "end_time": epoch_ms(end),
    }
    if started:
        event["start_time"] = epoch_ms(started)
        event["duration"] = max(0, event["end_time"] - event["start_time"])
    event["unmapped"] = {"mtls": summary_extras(overall, scan, summary)}
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
    data["accepted_versions"] = [as_text(v) for v in context.target.get("accepted_versions") or []]
    if context.has_probes:
        tls: dict[str, Any] = {"established": context.probe is not None}
        if context.probe is not None:
            tls |= drop_none(
                {
                    "probe": context.probe.get("probe"),
                    "version": context.probe.get("negotiated_version"),
                    "cipher": context.probe.get("cipher"),
                }
            )
        sni = context.sni()
        if sni:
            tls["sni"] = sni
        data["tls"] = tls
    if context.leaf is not None:
        data["certificate"] = {key: value for key, value in context.leaf.items() if key != "pem"}
    resource["data"] = data
    return resource
