"""SARIF 2.1.0 for code scanning: every finding that needs attention, as an alert at the
line of the inventory file that declares the endpoint.

Layout (one run)::

    {"$schema": ..., "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "mtls-audit", "version": ..., "rules": [one per check]}},
        "invocations": [{"executionSuccessful": true, "startTimeUtc": ..., "endTimeUtc": ...}],
        "results": [one per fail / warn / error finding]}]}

Rules: one per check of the scan (``ScanInfo.checks``, in that order; a check only a
finding names, as in a 1.0 report, gets a rule made from the finding). ``id`` is the
check id, ``name`` its CamelCase, ``shortDescription`` the title, ``fullDescription``
what passing means, ``help`` the same plus the remediation (the first one a finding of
that check carried: remediation lives on findings), and ``properties`` the
``security-severity`` GitHub ranks alerts by (a score, as a string) with the tags
``security`` and ``mtls``; ``defaultConfiguration.level`` follows the severity.

Results: ``pass`` and ``skip`` give none. Status → ``level``:

=========  ==========  ================================================================
``fail``   ``error``   the endpoint breaks the policy
``warn``   ``warning``
``error``  ``note``    the scan could not decide (timeout, ambiguous observation): not
                       a violation, but not a pass either, so it stays visible
=========  ==========  ================================================================

Each result is located at ``region.startLine`` = ``TargetReport.inventory_line`` (1 when
the inventory gave none, e.g. JSON) of the inventory file, as a path relative to the
working directory (run from the repository root, as code scanning resolves paths
against it). An ad-hoc ``HOST:PORT`` scan has no file: its results carry a
``logicalLocation`` naming the address instead, which is valid SARIF, but GitHub
rejects results without a physical location, so upload only inventory scans.

``partialFingerprints["mtlsAuditFinding/v1"]`` is the SHA-256 of (target name, check
id): the same finding keeps its fingerprint across runs whatever its port, line or
wording, so code scanning tracks one alert over time. A waived finding keeps its
level and carries an accepted external ``suppression`` (justification = the reason;
owner and expiry in its properties); a waiver past its date suppresses nothing. The
baseline maps where SARIF has the same idea: ``new`` → ``baselineState: new``,
``known`` → ``unchanged`` (``resolved`` findings pass, so they have no result).

Text from servers (certificate names in summaries and evidence) is attacker-controlled
and is only JSON-escaped: written as ASCII JSON, so control characters and even lone
surrogates come out as ``\\uXXXX`` escapes and the file always parses.

Memory: ``add(target)`` turns the target's findings into results at once and parks them
in a spill file next to the destination (``reports.spill``), keeping only the rules seen
and one remediation per check; ``finish()`` writes the rules first, then copies the
results into the report's temporary file, which is renamed into place. ``abort()``
deletes both.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mtls_audit.reports.atomic import AtomicFile
from mtls_audit.reports.junit import command_lines
from mtls_audit.reports.spill import SpillingWriter
from mtls_audit.scanner.model.finding import BaselineLabel, Finding
from mtls_audit.scanner.model.report import TOOL, CheckInfo, ScanInfo, Summary, TargetReport
from mtls_audit.scanner.model.status import Severity, Status

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
FINGERPRINT = "mtlsAuditFinding/v1"
TAGS = ("security", "mtls")
UNSCANNED_RULE = "scan"  # a target that could not be scanned and has no findings (as in JUnit)

# GitHub ranks security alerts by this score: > 9.0 critical, 7.0-8.9 high, 4.0-6.9
# medium, below 4.0 low.
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}
DEFAULT_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# ``error`` is "could not decide", not a violation: a note, so it is seen but does not
# read as a broken endpoint.
RESULT_LEVEL = {Status.FAIL: "error", Status.WARN: "warning", Status.ERROR: "note"}
BASELINE_STATE = {BaselineLabel.NEW: "new", BaselineLabel.KNOWN: "unchanged"}
_INDENT = "  "


def _dumps(value: Any, level: int = 0) -> str:
    """``value`` as ASCII JSON indented for nesting ``level`` deep. JSON escapes every
    newline inside strings, so re-indenting the lines cannot touch the text."""
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, indent=2, default=str)
    return text.replace("\n", "\n" + _INDENT * level)


def rule_name(check_id: str) -> str:
    """``client-cert-required`` → ``ClientCertRequired``."""
    return "".join(part[:1].upper() + part[1:] for part in check_id.replace("_", "-").split("-") if part)


def fingerprint(target_name: str, check_id: str) -> str:
    """Stable across runs: only what names the finding, never its port, line or text."""
    return hashlib.sha256(json.dumps([target_name, check_id]).encode()).hexdigest()


def utc_timestamp(moment: datetime) -> str:
    """SARIF's date-time form: UTC with a ``Z`` (a naive time is taken as UTC)."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def inventory_uri(inventory: str, cwd: Path | None = None) -> str:
    """The inventory file as a URI reference relative to the working directory: an
    absolute path is made relative to ``cwd``; a relative one was relative to the
    directory the scan ran in, and is kept (normalized)."""
    path = inventory
    if os.path.isabs(path):
        path = os.path.relpath(path, cwd if cwd is not None else Path.cwd())
    return quote(posixpath.normpath(Path(path).as_posix()), safe="/")


@dataclass
class _Rule:
    check_id: str
    info: CheckInfo | None  # None: named only by findings
    severity: Severity
    remediation: str = ""


class SarifReportWriter(SpillingWriter):
    """Streams targets into a SARIF 2.1.0 file at ``path``: ``start(scan)``,
    ``add(target)``, ``finish(scan, summary)``.

    Between ``add()`` calls the writer holds no target: results are parked in its spill
    file; only the rules (one small record per check) stay in memory. ``cwd`` is what
    the inventory path is made relative to (the working directory by default).
    """

    def __init__(self, path: Path | str, *, cwd: Path | None = None) -> None:
        super().__init__(path)
        self.cwd = cwd
        self.results = 0
        self._rules: dict[str, _Rule] = {}  # in rule-index order
        self._inventory: str | None = None

    def start(self, scan: ScanInfo) -> None:
        self._open_spill()
        self._inventory = inventory_uri(scan.inventory, self.cwd) if scan.inventory else None
        self._know_checks(scan)

    def add(self, target: TargetReport) -> None:
        """Turn one target's findings into results and park them on disk."""
        spill = self._parked()
        for finding in target.findings:
            rule = self._rules.get(finding.check)
            if rule is not None and finding.remediation and not rule.remediation:
                rule.remediation = finding.remediation
            if finding.status.failing:
                spill.append(_dumps(self._result(target, finding), level=4))
                self.results += 1
        if not target.findings and target.error:
            spill.append(_dumps(self._unscanned_result(target), level=4))
            self.results += 1

    def finish(self, scan: ScanInfo, summary: Summary | None = None) -> Path:
        """Write the rules, then every result, and publish the file under ``path``."""
        spill = self._parked()
        self._know_checks(scan)
        driver = {
            "name": TOOL,
            "version": scan.tool_version,
            "rules": [_rule_descriptor(rule) for rule in self._rules.values()],
        }
        invocation: dict[str, Any] = {"executionSuccessful": True, "startTimeUtc": utc_timestamp(scan.started)}
        if scan.finished is not None:
            invocation["endTimeUtc"] = utc_timestamp(scan.finished)
        level = 3 * _INDENT
        target = AtomicFile(self.path)
        try:
            file = target.file
            file.write("{\n")
            file.write(f'{_INDENT}"$schema": {_dumps(SARIF_SCHEMA)},\n{_INDENT}"version": {_dumps(SARIF_VERSION)},\n')
            file.write(f'{_INDENT}"runs": [\n{_INDENT * 2}{{\n')
            file.write(f'{level}"tool": {_dumps({"driver": driver}, level=3)},\n')
            file.write(f'{level}"invocations": {_dumps([invocation], level=3)},\n')
            file.write(f'{level}"columnKind": "utf16CodeUnits",\n')
            if spill.records:
                file.write(f'{level}"results": [')
                separator = "\n"
                for result in spill:
                    file.write(separator + level + _INDENT + result)
                    separator = ",\n"
                file.write(f"\n{level}]\n")
            else:
                file.write(f'{level}"results": []\n')
            file.write(f"{_INDENT * 2}}}\n{_INDENT}]\n}}\n")
            target.commit()
        except BaseException:
            target.abort()
            raise
        finally:
            self._close()
        return self.path

    # -- rules ------------------------------------------------------------------------

    def _know_checks(self, scan: ScanInfo) -> None:
        for info in scan.checks:
            known = self._rules.get(info.id)
            if known is None:
                self._rules[info.id] = _Rule(info.id, info, info.severity)
            else:
                known.info, known.severity = info, info.severity

    def _rule_index(self, check_id: str, severity: Severity) -> int:
        if check_id not in self._rules:
            self._rules[check_id] = _Rule(check_id, None, severity)
        return list(self._rules).index(check_id)

    # -- results ----------------------------------------------------------------------

    def _result(self, target: TargetReport, finding: Finding) -> dict[str, Any]:
        index = self._rule_index(finding.check, finding.severity)
        rule = self._rules[finding.check]
        if finding.remediation and not rule.remediation:
            rule.remediation = finding.remediation
        properties: dict[str, Any] = {
            "target": target.name,
            "address": target.address,
            "server_name": target.server_name,
            "status": finding.status.value,
            "severity": finding.severity.value,
        }
        if target.tags:
            properties["target_tags"] = list(target.tags)
        if finding.remediation:
            properties["remediation"] = finding.remediation
        commands = command_lines(finding.commands)
        if commands:
            properties["reproduce"] = commands
        if finding.evidence:
            properties["evidence"] = finding.evidence
        result: dict[str, Any] = {
            "ruleId": finding.check,
            "ruleIndex": index,
            "level": RESULT_LEVEL[finding.status],
            "message": {"text": f"{_label(target)}: {finding.summary}"},
            "locations": [self._location(target)],
            "partialFingerprints": {FINGERPRINT: fingerprint(target.name, finding.check)},
        }
        state = BASELINE_STATE.get(finding.baseline) if finding.baseline is not None else None
        if state is not None:
            result["baselineState"] = state
        waiver = finding.waiver
        if finding.waived and waiver is not None:
            result["suppressions"] = [
                {
                    "kind": "external",
                    "status": "accepted",
                    "justification": waiver.reason,
                    "properties": {
                        "owner": waiver.owner,
                        "expires": waiver.expires.isoformat(),
                        "target": waiver.target,
                    },
                }
            ]
        elif waiver is not None and waiver.expired:
            properties["expired_waiver"] = waiver.to_dict()
        result["properties"] = properties
        return result

    def _unscanned_result(self, target: TargetReport) -> dict[str, Any]:
        return {
            "ruleId": UNSCANNED_RULE,
            "ruleIndex": self._rule_index(UNSCANNED_RULE, Severity.INFO),
            "level": RESULT_LEVEL[Status.ERROR],
            "message": {"text": f"{_label(target)}: target could not be scanned: {target.error}"},
            "locations": [self._location(target)],
            "partialFingerprints": {FINGERPRINT: fingerprint(target.name, UNSCANNED_RULE)},
            "properties": {"target": target.name, "address": target.address, "status": Status.ERROR.value},
        }

    def _location(self, target: TargetReport) -> dict[str, Any]:
        if self._inventory is None:
            return {"logicalLocations": [{"name": target.address, "kind": "resource"}]}
        return {
            "physicalLocation": {
                "artifactLocation": {"uri": self._inventory},
                "region": {"startLine": target.inventory_line or 1},
            }
        }


def _label(target: TargetReport) -> str:
    return target.address if target.name == target.address else f"{target.name} ({target.address})"


def _rule_descriptor(rule: _Rule) -> dict[str, Any]:
    info = rule.info
    if info is not None:
        title, passes = info.title, f"Passes when {info.description}."
    elif rule.check_id == UNSCANNED_RULE:
        title, passes = "Target scanned", "Passes when the scanner reaches the target and completes its probes."
    else:
        title, passes = rule.check_id, f"The check {rule.check_id} (not described by this report)."
    remediation = rule.remediation or "See the finding's evidence and the mtls-audit README for this check."
    return {
        "id": rule.check_id,
        "name": rule_name(rule.check_id),
        "shortDescription": {"text": title},
        "fullDescription": {"text": passes},
        "help": {
            "text": f"{passes}\n\nRemediation: {remediation}",
            "markdown": f"{passes}\n\n**Remediation:** {remediation}",
        },
        "defaultConfiguration": {"level": DEFAULT_LEVEL[rule.severity]},
        "properties": {"security-severity": SECURITY_SEVERITY[rule.severity], "tags": list(TAGS)},
    }
