"""Our own fields, and the rest of the scan summary both flavors share.

Our own fields live under ``mtls`` in ECS and ``unmapped.mtls`` in OCSF (the same
object): raw status and severity, the target, per-version client-auth classification,
the probes behind the verdict with where they were blocked and the alerts seen, waiver
and baseline, and the finding's free-form evidence as a JSON-encoded string (one
keyword-like field, so per-check evidence shapes never clash in an index mapping).

The scan summary's own fields are the scan (its uid, start and end, tool, inventory and
options, the options JSON-encoded like the evidence) and the summary's counts; both
flavors also share its message and its uid.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from mtls_audit.reports.siem.mapping import finding_uid
from mtls_audit.reports.siem.target import TargetContext
from mtls_audit.reports.siem.values import as_count, as_counts, as_text, drop_none, iso, parse_time


def finding_extras(context: TargetContext, finding: dict[str, Any]) -> dict[str, Any]:
    """``mtls`` (ECS) / ``unmapped.mtls`` (OCSF): the same object in both flavors."""
    entries = _evidence_entries(finding.get("evidence"))
    extras: dict[str, Any] = {
        "status": as_text(finding.get("status")),
        "severity": as_text(finding.get("severity")),
        "finding_uid": finding_uid(context.name, str(finding.get("check", ""))),
        "target": drop_none(
            {
                "name": context.name,
                "address": context.address,
                "server_name": context.server_name,
                "status": context.target.get("status"),
                "error": context.target.get("error"),
            }
        ),
        "accepted_versions": [as_text(v) for v in context.target.get("accepted_versions") or []],
        "client_auth": [
            {
                "version": entry.get("version"),
                "classification": entry.get("classification"),
                "blocked_at": entry.get("blocked_at"),
                "certificate_request_seen": bool(entry.get("certificate_request_seen")),
                "detail": entry.get("detail"),
            }
            for entry in context.target.get("client_auth") or []
            if isinstance(entry, dict)
        ],
    }
    probes = [as_text(entry["probe"]) for entry in entries if entry.get("probe")]
    if probes:
        extras["probe"] = probes
    layers = list(dict.fromkeys(as_text(e["blocked_at"]) for e in entries if e.get("blocked_at")))
    if layers:
        extras["blocking_layer"] = layers
    alerts: list[dict[str, Any]] = []
    for entry in entries:
        alert = entry.get("alert")
        if isinstance(alert, dict) and isinstance(alert.get("code"), int):
            item = {"code": alert["code"], "name": as_text(alert.get("name"))}
            if item not in alerts:
                alerts.append(item)
    if alerts:
        extras["alert"] = alerts
    extras["waived"] = bool(finding.get("waived"))
    waiver = finding.get("waiver")
    if isinstance(waiver, dict):
        extras["waiver"] = drop_none(
            {
                "reason": waiver.get("reason"),
                "owner": waiver.get("owner"),
                "expires": _waiver_expiry(waiver.get("expires")),
            }
        )
    if finding.get("baseline") is not None:
        extras["baseline"] = as_text(finding["baseline"])
    evidence = finding.get("evidence")
    if evidence:
        extras["evidence"] = json.dumps(evidence, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return extras


def _evidence_entries(evidence: Any) -> list[dict[str, Any]]:
    """The per-probe entries a finding's evidence carries (``per_version`` / ``probes``)."""
    if not isinstance(evidence, dict):
        return []
    entries: list[dict[str, Any]] = []
    for key in ("per_version", "probes"):
        for entry in evidence.get(key) or []:
            if isinstance(entry, dict) and "probe" in entry:
                entries.append(entry)
    return entries


def _waiver_expiry(value: Any) -> str | None:
    """A waiver's expiry as an ECS date: a date-time, or a plain date (midnight UTC)."""
    moment = parse_time(value)
    if moment is None and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value + "T00:00:00+00:00")
        except ValueError:
            moment = None
    return iso(moment) if moment else None


# -- the scan summary ---------------------------------------------------------------------


def summary_extras(status: str, scan: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """``mtls`` (ECS) / ``unmapped.mtls`` (OCSF) of the scan summary; ``status`` is the overall one."""
    return {"status": status, "scan": _scan_extras(scan), "summary": _summary_counts(summary)}


def _scan_extras(scan: dict[str, Any]) -> dict[str, Any]:
    started, finished = parse_time(scan.get("started")), parse_time(scan.get("finished"))
    extras = {
        "uid": scan_uid(scan),
        "started": iso(started) if started else None,
        "finished": iso(finished) if finished else None,
        "tool": scan.get("tool"),
        "tool_version": scan.get("tool_version"),
        "inventory": scan.get("inventory"),
    }
    if scan.get("options") is not None:
        extras["options"] = json.dumps(scan["options"], ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return drop_none(extras)


def _summary_counts(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "targets": as_count(summary.get("targets")),
        "targets_by_status": as_counts(summary.get("targets_by_status")),
        "findings_by_status": as_counts(summary.get("findings_by_status")),
    }


def summary_message(summary: dict[str, Any]) -> str:
    def breakdown(counts: dict[str, int]) -> str:
        parts = [f"{counts[s]} {s}" for s in ("fail", "error", "warn", "pass", "skip") if counts.get(s)]
        return f" ({', '.join(parts)})" if parts else ""

    by_target = as_counts(summary.get("targets_by_status"))
    by_finding = as_counts(summary.get("findings_by_status"))
    return (
        f"mtls-audit scan finished: {as_count(summary.get('targets'))} targets{breakdown(by_target)}, "
        f"{sum(by_finding.values())} findings{breakdown(by_finding)}"
    )


def scan_uid(scan: dict[str, Any]) -> str:
    material = json.dumps([scan.get("started"), scan.get("inventory")], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()[:32]
