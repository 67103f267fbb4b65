"""ECS events: one per finding (``ecs_finding``) and the scan summary (``ecs_summary``).

Elastic Common Schema 9.3.0 (``ecs.version``), nested objects, field types as the ECS
field reference defines them (keyword, long, boolean, date, ip). ``event.outcome`` and
``event.severity`` come from the shared table in ``reports.siem.mapping`` (a passing or
skipped finding is informational; the check's own severity is ``mtls.severity``).

ECS categorization (values from the ECS allowed-values lists): findings are
``event.kind: state`` — ECS defines ``state`` for a categorical measurement taken at a
point in time, naming "the state of a system regarding compliance with a regulatory
standard (compliant, not compliant)" as an example; that is what a check result is, for
passes as much as failures, so every finding has the same kind (``alert`` is for
detection rules firing on activity). ``event.category: [configuration, network]``
(configuration auditing of a network endpoint) with ``event.type: [info]``, an expected
type of both categories. The summary is ``event.kind: event`` (something happened: the
scan finished), ``event.category: [configuration]``, ``event.type: [info]``, with
``event.dataset: mtls_audit.scan``.

Where the ECS fields come from: ``@timestamp`` is the target's ``scanned_at`` (the scan's
end for the summary), ``event.created`` the moment the line is written;
``destination.address``/``port`` split the target address, ``destination.ip`` only for an
IP literal, ``destination.domain`` the host when it is a DNS name, else the server name;
``tls.*`` describe our own identity's completed handshake on the highest TLS version
(any completed handshake when no identity is configured; ``tls.established: false`` when
none completed) and the leaf certificate the server presented, with ``tls.server.hash.sha256``
and ``x509.serial_number`` in uppercase hex as ECS asks and SANs without their ``DNS:``/
``IP:``/``URI:`` prefix; ``rule.*`` is the check (id, title, description, ruleset
``mtls-audit``, category ``client-authentication`` or ``tls-configuration``).
``rule.reference`` is omitted: the project has no published documentation URL yet.

Our own fields are under ``mtls`` (``reports.siem.extras``), plus the check's remediation
for a finding. The finding workflow OCSF expresses with ``activity_id``/``status_id``
is carried as ``mtls.baseline``, ``mtls.waived``, ``mtls.waiver``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from mtls_audit.reports.siem.extras import finding_extras, summary_extras, summary_message
from mtls_audit.reports.siem.mapping import (
    PRODUCT,
    SEVERITY_MAP,
    RuleInfo,
    event_severity,
    status_mapping,
)
from mtls_audit.reports.siem.target import TargetContext
from mtls_audit.reports.siem.values import drop_none, iso
from mtls_audit.scanner.model.finding import Finding
from mtls_audit.scanner.model.report import CertificateSummary, ScanInfo, Summary
from mtls_audit.scanner.model.status import Severity

ECS_VERSION = "9.3.0"
RULESET = "mtls-audit"
ECS_MODULE = "mtls_audit"
ECS_FINDING_DATASET = "mtls_audit.finding"
ECS_SCAN_DATASET = "mtls_audit.scan"
ECS_FINDING_CATEGORY = ("configuration", "network")
ECS_SCAN_CATEGORY = ("configuration",)

_TLS_VERSION = re.compile(r"TLSv(\d)(?:\.(\d))?")
_SAN_PREFIXES = ("DNS:", "IP:", "URI:")


def ecs_finding(
    context: TargetContext,
    finding: Finding,
    check: RuleInfo,
    *,
    now: Callable[[], datetime],
    tool_version: str,
) -> dict[str, Any]:
    """The event for one finding of the target ``context`` describes; ``now`` is read once."""
    status, severity = status_mapping(finding.status), event_severity(finding)
    check_id = finding.check
    created = iso(now())
    event: dict[str, Any] = {
        "@timestamp": context.timestamp,
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "state",
            "category": list(ECS_FINDING_CATEGORY),
            "type": ["info"],
            "outcome": status.ecs_outcome,
            "module": ECS_MODULE,
            "dataset": ECS_FINDING_DATASET,
            "severity": severity.ecs_severity,
            "created": created,
        },
        "message": finding.summary,
        "rule": drop_none(
            {
                "id": check_id,
                "name": check.title,
                "description": check.description,
                "category": check.category,
                "ruleset": RULESET,
            }
        ),
        "destination": _destination(context),
    }
    tls = _tls(context)
    if tls:
        event["tls"] = tls
    event["observer"] = _observer(tool_version)
    related = _related(context)
    if related:
        event["related"] = related
    if context.tags:
        event["tags"] = context.tags
    event["mtls"] = finding_extras(context, finding) | {"remediation": finding.remediation}
    return event


def ecs_summary(
    scan: ScanInfo,
    summary: Summary,
    *,
    worst_severity: Severity | None,
    now: Callable[[], datetime],
    tool_version: str,
) -> dict[str, Any]:
    """The scan-summary event; ``worst_severity`` as ``mapping.worse_severity`` tracked it."""
    status = status_mapping(summary.overall)
    severity = SEVERITY_MAP[(worst_severity or Severity.INFO).value]
    created = iso(now())
    started, finished = scan.started, scan.finished
    event_fields: dict[str, Any] = {
        "kind": "event",
        "category": list(ECS_SCAN_CATEGORY),
        "type": ["info"],
        "outcome": status.ecs_outcome,
        "module": ECS_MODULE,
        "dataset": ECS_SCAN_DATASET,
        "severity": severity.ecs_severity,
        "created": created,
        "start": iso(started),
    }
    if finished:
        event_fields["end"] = iso(finished)
        event_fields["duration"] = max(0, round((finished - started).total_seconds() * 1_000_000_000))
    return {
        "@timestamp": iso(finished) if finished else created,
        "ecs": {"version": ECS_VERSION},
        "event": event_fields,
        "message": summary_message(summary),
        "observer": _observer(tool_version),
        "mtls": summary_extras(scan, summary),
    }


def _observer(tool_version: str) -> dict[str, Any]:
    return {"vendor": PRODUCT, "product": PRODUCT, "version": tool_version, "type": "scanner"}


def _destination(context: TargetContext) -> dict[str, Any]:
    destination: dict[str, Any] = {"address": context.host or context.address}
    if context.ip:
        destination["ip"] = context.ip
    if context.port is not None:
        destination["port"] = context.port
    if context.domain:
        destination["domain"] = context.domain
    return destination


def _tls(context: TargetContext) -> dict[str, Any]:
    tls: dict[str, Any] = {}
    if context.probe is not None:
        version = _tls_version(context.probe.negotiated_version)
        if version:
            tls["version"] = version
            tls["version_protocol"] = "tls"
        if context.probe.cipher:
            tls["cipher"] = context.probe.cipher
    if context.has_probes:
        tls["established"] = context.probe is not None
    sni = context.sni()
    if sni:
        tls["client"] = {"server_name": sni}
    if context.leaf is not None:
        tls["server"] = _server_certificate(context.leaf)
    return tls


def _related(context: TargetContext) -> dict[str, Any]:
    related: dict[str, Any] = {}
    if context.ip:
        related["ip"] = [context.ip]
    hosts = [h for h in dict.fromkeys([context.domain, context.sni()]) if h]
    if hosts:
        related["hosts"] = hosts
    if context.leaf is not None and context.leaf.sha256:
        related["hash"] = [context.leaf.sha256.upper()]
    return related


def _tls_version(negotiated: str | None) -> str | None:
    """ "TLSv1.3" -> "1.3", "TLSv1" -> "1.0" (ECS tls.version is the numeric part)."""
    match = _TLS_VERSION.fullmatch(negotiated) if negotiated else None
    if not match:
        return None
    return f"{match.group(1)}.{match.group(2) or '0'}"


def _server_certificate(leaf: CertificateSummary) -> dict[str, Any]:
    x509: dict[str, Any] = {
        "subject": {"distinguished_name": leaf.subject},
        "issuer": {"distinguished_name": leaf.issuer},
    }
    names = [_strip_san_prefix(name) for name in leaf.subject_alternative_names]
    if names:
        x509["alternative_names"] = names
    x509["not_before"] = iso(leaf.not_before)
    x509["not_after"] = iso(leaf.not_after)
    if leaf.serial:
        # ECS: "if this value is alphanumeric, it should be formatted without colons and uppercase".
        x509["serial_number"] = leaf.serial.upper()
    server: dict[str, Any] = {}
    if leaf.sha256:
        server["hash"] = {"sha256": leaf.sha256.upper()}  # ECS hashes are uppercase hex
    server["x509"] = x509
    return server


def _strip_san_prefix(name: str) -> str:
    for prefix in _SAN_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name
