"""The view model: what the template shows, built from the typed report.

The template only sees what is built here, with every key present, so a target with
empty lists or no values (an unreachable one) renders the same way as any other.
Ids and anchors come from positions and a sanitized slug per check, never from names.

A report of more than ``INLINE_DETAILS_UP_TO`` targets gets the page's on-demand form
(``on_demand``): short matrix cells, and each target's section kept as text in a
``<noscript>`` until it is opened (see the template's header).

The page is built in two parts so that a writer never holds every target: a
``PageTally`` takes each target as it arrives and keeps only what the header, the
filter and the matrix columns need (counts, tags, check ids); ``TargetViews`` turns the
targets into their views one at a time, each time the template walks them (the matrix,
then the sections).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from mtls_audit.reports.html.escaping import line
from mtls_audit.scanner.model.finding import BaselineLabel, Finding, WaiverNote
from mtls_audit.scanner.model.observations import Alert, ProbeObservation
from mtls_audit.scanner.model.report import (
    TOOL,
    BaselineReport,
    CertificateSummary,
    ClientAuthEntry,
    MatrixCell,
    MatrixRow,
    ScanInfo,
    TargetReport,
    WaiverReport,
)
from mtls_audit.scanner.model.status import DISPLAY_ORDER as STATUS_DISPLAY_ORDER

# Statuses the scanner emits, in the order counts are shown.
STATUS_ORDER = tuple(status.value for status in STATUS_DISPLAY_ORDER)
# What the page shows: a waived finding is "waived" everywhere, whatever its status.
DISPLAY_ORDER = (*STATUS_ORDER[:3], "waived", *STATUS_ORDER[3:])
_RANK = {status: rank for rank, status in enumerate(DISPLAY_ORDER)}
_FLAG_LABELS = {
    "attention": "needs attention (fail, error, warn)",
    "waived": "has waived findings",
    "new": "has new findings",
}

_CLASSIFICATION_CSS = {
    "required": "pass",
    "required-after-handshake": "pass",
    "optional": "fail",
    "not-requested": "fail",
    "unknown": "error",
}
_BLOCKED_AT = {
    "tls-handshake": "TLS handshake",
    "tls-post-handshake": "after the TLS handshake",
    "http": "HTTP layer",
    "grpc": "gRPC status",
    "application": "PostgreSQL protocol",
}
# The identity matrix: who each client is, and how a cell reads against the policy.
_MATRIX_KINDS = {"identity": "our identity", "impostor": "impostor", "rule": "access rule", "minted": "minted copy"}
_FINGERPRINT_SHOWN = 16  # hex digits of a client certificate's SHA-256 shown; the rest in a title
# Up to this many targets every section is on the page as elements, and each matrix
# cell links to its finding with the finding's summary as a title. Beyond it the page
# takes its on-demand form: a section of the demo is some 1,300 elements, so 100
# targets already take 1.3 s to load, and 10,000 did not load in ten minutes
# (bench/html_at_scale.py; the on-demand form loads 10,000 in under 2 s).
INLINE_DETAILS_UP_TO = 25
# The matrix's rows come in bodies of this many, each laid out only near the viewport
# (content-visibility), so showing 10,000 rows again lays out a screenful.
MATRIX_ROWS_PER_BODY = 100


def display_status(finding: Finding) -> str:
    return "waived" if finding.waived else finding.status.value


class PageTally:
    """What the page needs to know about all targets, gathered one target at a time:
    a few counters, the tags and the check ids in order of first appearance."""

    def __init__(self) -> None:
        self.target_count = 0
        self.targets_by_status: dict[str, int] = {}
        self.findings_by_status: dict[str, int] = {}
        self.new_count = 0
        self.resolved_count = 0
        self.flag_counts = {flag: 0 for flag in _FLAG_LABELS}
        self.tags: list[str] = []
        self.check_ids: list[str] = []
        self.slugs: dict[str, str] = {}
        self._taken_slugs: set[str] = set()

    def add(self, target: TargetReport) -> None:
        self.target_count += 1
        status = target.status.value
        self.targets_by_status[status] = self.targets_by_status.get(status, 0) + 1
        for finding in target.findings:
            display = display_status(finding)
            self.findings_by_status[display] = self.findings_by_status.get(display, 0) + 1
            if finding.baseline is BaselineLabel.NEW:
                self.new_count += 1
            elif finding.baseline is BaselineLabel.RESOLVED:
                self.resolved_count += 1
            if finding.check not in self.slugs:
                self._add_check(finding.check)
        for flag in target_flags(target):
            self.flag_counts[flag] += 1
        for tag in target.tags:
            shown = line(tag)
            if shown not in self.tags:
                self.tags.append(shown)

    def _add_check(self, check: str) -> None:
        """A safe, unique id fragment per check id (third-party ids can contain anything).
        A slug depends only on the checks seen before, so it never changes later."""
        number = len(self.check_ids) + 1
        slug = re.sub(r"[^a-z0-9_-]+", "-", check.lower()).strip("-")[:64] or f"check-{number}"
        candidate, n = slug, 2
        while candidate in self._taken_slugs:
            candidate = f"{slug}-{n}"
            n += 1
        self._taken_slugs.add(candidate)
        self.slugs[check] = candidate
        self.check_ids.append(check)


def target_flags(target: TargetReport) -> list[str]:
    flags = []
    if target.status.failing:
        flags.append("attention")
    if any(f.waived for f in target.findings):
        flags.append("waived")
    if any(f.baseline is BaselineLabel.NEW for f in target.findings):
        flags.append("new")
    return flags


class TargetViews:
    """The targets' views, built afresh on every walk from ``source`` (a callable giving
    the targets in report order: a tuple in memory, or a spill file read back)."""

    def __init__(
        self, source: Callable[[], Iterable[TargetReport]], tally: PageTally, scan_time: datetime | None
    ) -> None:
        self._source = source
        self._tally = tally
        self._scan_time = scan_time

    def __bool__(self) -> bool:
        return self._tally.target_count > 0

    def __len__(self) -> int:
        return self._tally.target_count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for index, target in enumerate(self._source()):
            yield target_view(index, target, self._tally, self._scan_time)


def page_view(
    scan: ScanInfo, schema_version: str, tally: PageTally, targets: Callable[[], Iterable[TargetReport]]
) -> dict[str, Any]:
    scan_time = _aware(scan.started)
    finished = _aware(scan.finished)
    by_target, by_finding = tally.targets_by_status, tally.findings_by_status
    return {
        "schema_version": schema_version,
        "known_statuses": DISPLAY_ORDER,
        "tool": TOOL,
        "tool_version": line(scan.tool_version),
        "started": scan.started.isoformat(),
        "started_display": _display_time(scan.started),
        "finished": scan.finished.isoformat() if scan.finished else None,
        "duration": _duration(scan_time, finished),
        "inventory": line(scan.inventory),
        "options": dict(scan.options),
        "waivers": _waivers_meta(scan.waivers),
        "baseline": _baseline_meta(scan.baseline, tally.new_count, tally.resolved_count),
        "target_count": tally.target_count,
        "targets_by_status": [{"status": s, "count": by_target.get(s, 0)} for s in STATUS_ORDER],
        "finding_count": sum(by_finding.values()),
        "findings_by_status": [
            {"status": s, "count": by_finding.get(s, 0)} for s in DISPLAY_ORDER if s != "waived" or by_finding.get(s)
        ],
        "new_count": tally.new_count,
        "checks": [{"id": line(check), "slug": tally.slugs[check]} for check in tally.check_ids],
        "tags": tally.tags,
        "status_options": [
            {"value": s, "label": s, "count": by_target[s]} for s in STATUS_ORDER if by_target.get(s, 0)
        ],
        "flag_options": [
            {"value": flag, "label": _FLAG_LABELS[flag], "count": n} for flag, n in tally.flag_counts.items() if n
        ],
        "on_demand": tally.target_count > INLINE_DETAILS_UP_TO,
        "rows_per_body": MATRIX_ROWS_PER_BODY,
        "targets": TargetViews(targets, tally, scan_time),
    }


def target_view(index: int, target: TargetReport, tally: PageTally, scan_time: datetime | None) -> dict[str, Any]:
    anchor = f"target-{index + 1}"
    findings = []
    used: set[str] = set()
    for finding in target.findings:
        slug = tally.slugs[finding.check]
        finding_anchor = f"{anchor}-{slug}"
        n = 2
        while finding_anchor in used:  # the same check twice on one target: keep ids unique
            finding_anchor = f"{anchor}-{slug}-{n}"
            n += 1
        used.add(finding_anchor)
        findings.append(_finding_view(finding_anchor, finding))

    return {
        "number": index + 1,
        "anchor": anchor,
        "name": line(target.name),
        "address": line(target.address),
        "server_name": line(target.server_name),
        "tags": [line(tag) for tag in target.tags],
        "data_tags": json.dumps(list(target.tags)),
        "flags": target_flags(target),
        "status": target.status.value,
        "error": target.error,
        "accepted_versions": [line(v) for v in target.accepted_versions],
        "client_auth": [_client_auth_view(entry) for entry in target.client_auth],
        "certificates": [_certificate_view(i, c, scan_time) for i, c in enumerate(target.certificates)],
        "findings": sorted(findings, key=lambda f: _RANK[f["display"]]),
        "passed": sum(1 for f in findings if f["display"] == "pass"),
        "cells": [_cell(check, findings) for check in tally.check_ids],
        "probes": [_probe_view(p) for p in target.probes],
        "identity_matrix": _identity_matrix_view(target.identity_matrix),
    }


def _cell(check: str, findings: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The matrix cell of one check: its worst finding on the target, or None."""
    matching = [f for f in findings if f["check_raw"] == check]
    if not matching:
        return None
    worst = min(matching, key=lambda f: _RANK[f["display"]])
    title = f"{worst['check']}: "
    if worst["waived"]:
        title += f"waived {worst['status']}"
        if worst["waiver"] and worst["waiver"]["reason"]:
            title += f" ({worst['waiver']['reason']})"
        title += " – "
    title += worst["summary"] or ""
    if len(matching) > 1:
        title += f" (+{len(matching) - 1} more finding{'s' if len(matching) > 2 else ''})"
    return {
        "check": worst["check"],
        "display": worst["display"],
        "anchor": worst["anchor"],
        "title": title,
        "new": any(f["baseline"] == "new" for f in matching),
        "count": len(matching),
    }


def _client_auth_view(entry: ClientAuthEntry) -> dict[str, Any]:
    return {
        "version": line(entry.version),
        "classification": line(entry.classification),
        "css": _CLASSIFICATION_CSS.get(entry.classification, "unknown"),
        "blocked_at": line(entry.blocked_at),
        "blocked_at_label": _BLOCKED_AT.get(entry.blocked_at or ""),
        "certificate_request_seen": entry.certificate_request_seen,
        "detail": line(entry.detail),
    }


def _identity_matrix_view(rows: tuple[MatrixRow, ...]) -> dict[str, Any] | None:
    """One row per client, one column per TLS version (in the order the rows name them);
    None when the target has no matrix, so the template shows nothing."""
    if not rows:
        return None
    versions: list[str] = []
    for row in rows:
        for cell in row.cells:
            if cell.version not in versions:
                versions.append(cell.version)
    row_views = []
    for row in rows:
        by_version = {cell.version: cell for cell in row.cells}
        row_views.append(_matrix_row_view(row, [by_version.get(version) for version in versions]))
    wrong = sum(1 for row in row_views for cell in row["cells"] if cell["mark"] == "wrong")
    return {"versions": [line(v) for v in versions], "rows": row_views, "wrong": wrong}


def _matrix_row_view(row: MatrixRow, cells: list[MatrixCell | None]) -> dict[str, Any]:
    client = line(row.client)
    detail = line(row.detail)
    fingerprint = line(row.client_certificate_sha256)
    return {
        "client": client,
        "kind": line(_MATRIX_KINDS.get(row.kind, row.kind)),
        "expect": line(row.expect),
        # an access rule's request is already in its client name
        "detail": detail if detail and detail not in client else None,
        "fingerprint": fingerprint,
        "fingerprint_short": (
            fingerprint[:_FINGERPRINT_SHOWN] + "…"
            if fingerprint and len(fingerprint) > _FINGERPRINT_SHOWN
            else fingerprint
        ),
        "wrong": row.as_expected is False,
        "cells": [_matrix_cell_view(cell, row.expect) for cell in cells],
    }


def _matrix_cell_view(cell: MatrixCell | None, expect: str | None) -> dict[str, Any]:
    """``mark`` is wrong (against the policy), right (as it wants) or none (no
    expectation, or nothing decided); the cell reads as text without its colour."""
    if cell is None or cell.observed == "not-probed":
        return {"text": "not probed", "mark": "none", "title": "no probe on this version"}
    observed = line(cell.observed)
    where = line(cell.where)
    if cell.observed in ("allowed", "blocked"):
        text = f"{observed} ({where})" if where else observed
    else:
        text = f"{observed}: {where}" if where else observed
    mark = {True: "right", False: "wrong", None: "none"}[cell.as_expected]
    if expect is None:
        title = "the policy has no expectation for this client"
    else:
        verdict = {"right": "as expected", "wrong": "NOT as expected", "none": "undecided"}[mark]
        title = f"expected {line(expect)}: {verdict}"
    return {"text": text, "mark": mark, "title": title}


def _finding_view(anchor: str, finding: Finding) -> dict[str, Any]:
    display = display_status(finding)
    return {
        "check": line(finding.check),
        "check_raw": finding.check,
        "anchor": anchor,
        "status": finding.status.value,
        "display": display,
        "waived": finding.waived,
        "waiver": None if finding.waiver is None else _waiver_view(finding.waiver),
        "baseline": finding.baseline.value if finding.baseline is not None else None,
        "severity": line(finding.severity.value),
        "summary": line(finding.summary),
        "remediation": line(finding.remediation),
        "remediation_parts": _inline_code(line(finding.remediation)),
        "commands": [{"label": line(c.label) or None, "command": c.command} for c in finding.commands],
        "evidence": finding.evidence,
        # a passing (or skipped) check keeps its evidence behind a disclosure
        "collapsed": display in ("pass", "skip"),
    }


def _waiver_view(waiver: WaiverNote) -> dict[str, Any]:
    return {
        "reason": line(waiver.reason),
        "owner": line(waiver.owner),
        "expires": line(waiver.expires.isoformat()),
        "expired": waiver.expired,
    }


def _certificate_view(index: int, certificate: CertificateSummary, scan_time: datetime | None) -> dict[str, Any]:
    note = None
    days_left = None
    not_before = _aware(certificate.not_before)
    not_after = _aware(certificate.not_after)
    if scan_time is not None:
        if not_after is not None and not_after < scan_time:
            note = "expired at scan time"
        elif not_before is not None and not_before > scan_time:
            note = "not yet valid at scan time"
        elif not_after is not None:
            days_left = (not_after - scan_time).days
    subject = line(certificate.subject)
    issuer = line(certificate.issuer)
    if index == 0:
        role = "leaf"
    elif subject and subject == issuer:
        role = "self-signed"
    else:
        role = "issuer"
    return {
        "role": role,
        "subject": subject,
        "issuer": issuer,
        "serial": line(certificate.serial),
        "not_before": certificate.not_before.isoformat(),
        "not_after": certificate.not_after.isoformat(),
        "not_before_date": _display_date(certificate.not_before),
        "not_after_date": _display_date(certificate.not_after),
        "validity_note": note,
        "days_left": days_left,
        "sans": [line(name) for name in certificate.subject_alternative_names],
        "sha256": line(certificate.sha256),
        "pem": certificate.pem,
    }


def _certificate_request_text(probe: ProbeObservation) -> str:
    """When the server asked for a certificate: "in handshake", "after handshake (on
    GET /secure HTTP/1.1)", or "no"."""
    if probe.certificate_request_seen:
        return "in handshake"
    if probe.certificate_requested_after_handshake:
        trigger = probe.certificate_request_trigger
        return "after handshake" + (f" (on {trigger})" if trigger else "")
    return "no"


def _probe_view(probe: ProbeObservation) -> dict[str, Any]:
    return {
        "probe": probe.spec.id,
        "negotiated_version": probe.negotiated_version,
        "connected": probe.connected,
        "certificate_request": _certificate_request_text(probe),
        "handshake_completed": probe.handshake_completed,
        "alert_received": _alert_text(probe.alert_received),
        "alert_sent": _alert_text(probe.alert_sent),
        "after_handshake": probe.after_handshake.value,
        "answer": probe.application_answer,
        "error": probe.connect_error or probe.tls_error,
        "timed_out": probe.timed_out.value if probe.timed_out else None,
        "total_ms": probe.total_ms,
    }


def _alert_text(alert: Alert | None) -> str | None:
    if alert is None:
        return None
    return f"{alert.name} ({alert.code}) during {alert.phase.value}"


def _waivers_meta(waivers: WaiverReport | None) -> dict[str, Any] | None:
    if waivers is None:
        return None
    return {
        "file": line(waivers.file),
        "expired": [_waiver_entry(entry) for entry in waivers.expired],
        "unused": [_waiver_entry(entry) for entry in waivers.unused],
    }


def _waiver_entry(entry: WaiverNote) -> dict[str, Any]:
    return {
        "target": line(entry.target),
        "check": line(entry.check),
        "reason": line(entry.reason),
        "owner": line(entry.owner),
        "expires": line(entry.expires.isoformat()),
    }


def _baseline_meta(baseline: BaselineReport | None, new_count: int, resolved_count: int) -> dict[str, Any] | None:
    if baseline is None:
        return None
    return {
        "file": line(baseline.file),
        "missing_targets": [line(name) for name in baseline.missing_targets],
        "new": new_count,
        "resolved": resolved_count,
    }


def _inline_code(remediation: str | None) -> list[dict[str, Any]]:
    """Remediation text split on `backticks` so configuration snippets show as code.
    Unbalanced backticks leave the text as it is."""
    if not remediation:
        return []
    pieces = remediation.split("`")
    if len(pieces) % 2 == 0:
        return [{"code": False, "text": remediation}]
    return [{"code": i % 2 == 1, "text": piece} for i, piece in enumerate(pieces) if piece]


def _aware(moment: datetime | None) -> datetime | None:
    """Times without a zone are not compared (a report's times always carry one)."""
    return moment if moment is not None and moment.tzinfo is not None else None


def _display_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        return line(moment.isoformat())
    zone = "UTC" if moment.utcoffset() == timedelta(0) else moment.strftime("UTC%z")
    return moment.strftime("%Y-%m-%d %H:%M:%S ") + zone


def _display_date(moment: datetime) -> str:
    if moment.tzinfo is None:
        return line(moment.isoformat())
    return moment.strftime("%Y-%m-%d")


def _duration(start: datetime | None, end: datetime | None) -> str | None:
    if start is None or end is None or end < start:
        return None
    seconds = (end - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s"
