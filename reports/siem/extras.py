"""Our own fields, and the rest of the scan summary both flavors share.

Our own fields live under ``mtls`` in ECS and ``unmapped.mtls`` in OCSF (the same
object): raw status and the check's own severity, the target, per-version client-auth
classification, the probes behind the verdict with where they were blocked and the
alerts seen, waiver and baseline, and the finding's free-form evidence as a JSON-encoded
string (one keyword-like field, so per-check evidence shapes never clash in an index
mapping).

The scan summary's own fields are the scan (its uid, start and end, tool, inventory and
options, the options JSON-encoded like the evidence) and the summary's counts; both
flavors also share its message and its uid.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mtls_audit.reports.siem.mapping import finding_uid
from mtls_audit.reports.siem.target import TargetContext
from mtls_audit.reports.siem.values import drop_none, iso, iso_date
from mtls_audit.scanner.model.finding import Finding
from mtls_audit.scanner.model.report import TOOL, ScanInfo, Summary
from mtls_audit.scanner.model.status import DISPLAY_ORDER, Status


def finding_extras(context: TargetContext, finding: Finding) -> dict[str, Any]:
    """``mtls`` (ECS) / ``unmapped.mtls`` (OCSF): the same object in both flavors."""
    target = context.target
    entries = _evidence_entries(finding.evidence)
    extras: dict[str, Any] = {
        "status": finding.status.value,
        "severity": finding.severity.value,
        "finding_uid": finding_uid(context.name, finding.check),
        "target": drop_none(
            {
                "name": target.name,
                "address": target.address,
                "server_name": target.server_name,
                "status": target.status.value,
                "error": target.error,
            }
        ),
        "accepted_versions": list(target.accepted_versions),
        "client_auth": [
            {
                "version": entry.version,
                "classification": entry.classification,
                "blocked_at": entry.blocked_at,
                "certificate_request_seen": entry.certificate_request_seen,
                "detail": entry.detail,
            }
            for entry in target.client_auth
        ],
    }
    probes = [str(entry["probe"]) for entry in entries if entry.get("probe")]
    if probes:
        extras["probe"] = probes
    layers = list(dict.fromkeys(str(e["blocked_at"]) for e in entries if e.get("blocked_at")))
    if layers:
        extras["blocking_layer"] = layers
    alerts: list[dict[str, Any]] = []
    for entry in entries:
        alert = entry.get("alert")
        if isinstance(alert, dict) and isinstance(alert.get("code"), int):
            item = {"code": alert["code"], "name": str(alert.get("name") or "")}
            if item not in alerts:
                alerts.append(item)
    if alerts:
        extras["alert"] = alerts
    extras["waived"] = finding.waived
    if finding.waiver is not None:
        extras["waiver"] = {
            "reason": finding.waiver.reason,
            "owner": finding.waiver.owner,
            "expires": iso_date(finding.waiver.expires),
        }
    if finding.baseline is not None:
        extras["baseline"] = finding.baseline.value
    if finding.evidence:
        extras["evidence"] = json.dumps(finding.evidence, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return extras


def _evidence_entries(evidence: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-probe entries a finding's evidence carries (evidence is free-form per
    check, so it is read defensively): ``probes``, the ``attempts`` of each
    ``per_version`` entry, the ``probes`` of each access rule (``rules``) and minted
    copy (``minted``), and the minted ``control``."""
    probes = evidence.get("probes")
    candidates = list(probes) if isinstance(probes, list | tuple) else []
    for group, key in (("per_version", "attempts"), ("rules", "probes"), ("minted", "probes")):
        entries = evidence.get(group)
        for entry in entries if isinstance(entries, list | tuple) else ():
            nested = entry.get(key) if isinstance(entry, dict) else None
            if isinstance(nested, list | tuple):
                candidates += nested
    control = evidence.get("control")
    if isinstance(control, list | tuple):
        candidates += control
    return [entry for entry in candidates if isinstance(entry, dict) and "probe" in entry]


# -- the scan summary ---------------------------------------------------------------------


def summary_extras(scan: ScanInfo, summary: Summary) -> dict[str, Any]:
    """``mtls`` (ECS) / ``unmapped.mtls`` (OCSF) of the scan summary."""
    return {"status": summary.overall.value, "scan": _scan_extras(scan), "summary": summary_counts(summary)}


def _scan_extras(scan: ScanInfo) -> dict[str, Any]:
    extras = {
        "uid": scan_uid(scan),
        "started": iso(scan.started),
        "finished": iso(scan.finished) if scan.finished else None,
        "tool": TOOL,
        "tool_version": scan.tool_version,
        "inventory": scan.inventory,
        "options": json.dumps(dict(scan.options), ensure_ascii=False, separators=(",", ":"), sort_keys=True),
    }
    return drop_none(extras)


def summary_counts(summary: Summary) -> dict[str, Any]:
    return {
        "targets": summary.targets,
        "targets_by_status": {status.value: n for status, n in summary.targets_by_status.items()},
        "findings_by_status": {status.value: n for status, n in summary.findings_by_status.items()},
    }


def summary_message(summary: Summary) -> str:
    def breakdown(counts: dict[Status, int]) -> str:
        parts = [f"{counts[s]} {s.value}" for s in DISPLAY_ORDER if counts.get(s)]
        return f" ({', '.join(parts)})" if parts else ""

    by_target, by_finding = dict(summary.targets_by_status), dict(summary.findings_by_status)
    return (
        f"mtls-audit scan finished: {summary.targets} targets{breakdown(by_target)}, "
        f"{sum(by_finding.values())} findings{breakdown(by_finding)}"
    )


def scan_uid(scan: ScanInfo) -> str:
    material = json.dumps([scan.started.isoformat(), scan.inventory], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()[:32]
