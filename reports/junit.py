"""JUnit XML for CI: one test case per target × check, so a pipeline's test view shows
which endpoint broke which rule.

Layout (a bare ``<testsuites>`` holding one ``<testsuite>`` per target)::

    <testsuites>
      <testsuite name="payments-api" tests="6" failures="1" errors="0" skipped="0" time="0.042"
                 timestamp="<scan start, UTC>" hostname="localhost" id="0" package="mtls-audit">
        <properties> address, server_name, status, error, scanned_at, tags </properties>
        <testcase name="client-cert-required" classname="payments-api" time="0">
          <failure message="<summary>" type="<severity>">summary, remediation,
            reproduce commands, evidence as indented JSON</failure>
        </testcase>
        ...
        <system-out> warnings and resolved findings of this target </system-out>
        <system-err />
      </testsuite>

The file validates against both schemas CI tools hold JUnit files to: the Jenkins xUnit
plugin's ``junit-10.xsd`` and the Ant JUnit schema (windyroad ``JUnit.xsd``); the tests
check it against both. Together they fix the shape:

- ``<testsuites>`` has no attributes: the Ant schema allows none, and xUnit rejects
  ``skipped`` there. Totals are per suite; every CI tool adds them up itself.
- each ``<testsuite>`` has ``name``, ``tests``, ``failures``, ``errors``, ``skipped``,
  ``time`` (the target's probes' connection time, seconds), ``timestamp`` (the scan
  start in UTC, without a zone and without fractions: the Ant pattern allows neither),
  ``hostname`` ("localhost": the report does not record which machine scanned, and a
  re-rendered report must not name another), ``id`` (0, 1, ... in file order) and
  ``package`` ("mtls-audit"); its children are ``<properties>``, the test cases,
  ``<system-out>`` and ``<system-err>``, in that order, all present.
- each ``<testcase>`` has ``name``, ``classname`` and ``time`` (GitLab shows no duration
  without it). A check is a pure function of observations shared by the target's
  checks, so a test case takes no time of its own: ``0``.
- a ``<testcase>`` holds at most one of ``<failure>``, ``<error>``, ``<skipped>`` and no
  ``<system-out>`` (Ant), so the details of a warning that passes go to the suite's
  ``<system-out>``, named by check; Jenkins shows a suite's output for test cases
  without their own.

Why one suite per target rather than a single "mtls-audit" suite: Jenkins and GitLab
group test cases by ``classname`` (= the target name) whatever the suites are, so for
them both layouts look the same; the GitHub reporters (dorny/test-reporter,
EnricoMi/publish-unit-test-result-action, mikepenz/action-junit-report) and Azure
DevOps show one table or count line per ``<testsuite>``, so per-target suites give a
per-endpoint breakdown there too. A suite also carries its target's address, SNI name,
tags and scan error as ``<properties>``. Caveat: Jenkins splits a classname at dots into
package and class, so a target named ``api.internal:8443`` shows under package ``api``.

Finding status → JUnit result:

=========================  =============================================================
``fail``                   ``<failure message=summary type=severity>`` (body: summary,
                           remediation, ``openssl s_client`` commands, evidence JSON)
``error``                  ``<error message=summary type=severity>``, same body
``skip``                   ``<skipped message=summary>``
waived (fail/warn/error)   ``<skipped message="waived: REASON (owner OWNER, until DATE)">``
                           with the original status and the full body
``warn``                   passes, with ``WARN <check>:`` and the body in the suite's
                           ``<system-out>``; with ``fail_on="warn"`` (``--fail-on warn``)
                           a ``<failure>`` instead
``pass``                   passes (the suite's ``<system-out>`` notes a resolved baseline)
=========================  =============================================================

A target that could not be scanned has only ``error`` findings already; if a report has
such a target with no findings at all, a single test case named ``scan`` carries the
error so the outage is not invisible in CI.

Certificate text and everything else taken from a server is attacker-controlled: the
XML library escapes markup (``<``, ``&``, quotes), and characters XML 1.0 cannot carry at
all (NUL, ESC and the other C0 controls, lone surrogates, U+FFFE/U+FFFF) are replaced by
a visible ``\\xNN``/``\\uNNNN`` escape so the file always stays well-formed.

Memory: ``add(target)`` builds that target's ``<testsuite>`` at once, serializes it to a
spill file next to the destination (``reports.spill``) and keeps only the number of
suites; ``finish()`` writes the root and copies the suites into the report's temporary
file, which is then renamed into place. ``abort()`` deletes both.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import UTC
from pathlib import Path
from typing import Any

from mtls_audit.reports.atomic import AtomicFile
from mtls_audit.reports.spill import SpillingWriter
from mtls_audit.scanner.model.finding import BaselineLabel, Finding, ReproCommand, WaiverNote
from mtls_audit.scanner.model.report import ScanInfo, Summary, TargetReport
from mtls_audit.scanner.model.status import Status

FAIL_ON_LEVELS = ("fail", "warn")
UNSCANNED_CASE_NAME = "scan"
PACKAGE = "mtls-audit"
HOSTNAME = "localhost"  # the Ant schema's value when the scanning host is not known
CASE_TIME = "0"
_INDENT = "  "

# Everything outside XML 1.0's Char production: #x9 | #xA | #xD | [#x20-#xD7FF] |
# [#xE000-#xFFFD] | [#x10000-#x10FFFF]. Lone surrogates are in the excluded range too.
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(value: Any) -> str:
    """``value`` as text that XML 1.0 can carry: illegal characters become visible
    ``\\xNN`` / ``\\uNNNN`` escapes (markup characters are left to the XML writer)."""
    text = value if isinstance(value, str) else str(value)

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _XML_ILLEGAL.sub(escape, text)


def command_lines(commands: Iterable[ReproCommand]) -> list[str]:
    """The reproduce commands as lines: each command under a ``# label`` comment line."""
    lines: list[str] = []
    for command in commands:
        if command.label:
            lines.append(f"# {command.label}")
        lines.append(command.command)
    return lines


def waiver_message(waiver: WaiverNote) -> str:
    return f"waived: {waiver.reason} (owner {waiver.owner}, until {waiver.expires.isoformat()})"


class JunitReportWriter(SpillingWriter):
    """Streams targets into a JUnit XML file at ``path``: ``start(scan)``, ``add(target)``,
    ``finish(scan, summary)``.

    ``fail_on`` mirrors ``--fail-on``: with ``"fail"`` (the default) a ``warn`` finding
    is a passing test case with its details in the suite's ``<system-out>``; with
    ``"warn"`` it is a ``<failure>``, so the CI view agrees with the exit code.

    Between ``add()`` calls the writer holds no target and no suite: only the count of
    suites written to its spill file.
    """

    def __init__(self, path: Path | str, *, fail_on: str = "fail") -> None:
        if fail_on not in FAIL_ON_LEVELS:
            raise ValueError(f"fail_on must be one of {', '.join(FAIL_ON_LEVELS)}, not {fail_on!r}")
        super().__init__(path)
        self.fail_on = fail_on
        self.suites = 0
        self._timestamp = ""

    def start(self, scan: ScanInfo) -> None:
        self._open_spill()
        self._timestamp = timestamp(scan)

    def add(self, target: TargetReport) -> None:
        """Turn one target into a test suite and park it on disk; call order is file order."""
        spill = self._parked()
        suite = suite_element(target, self.fail_on, suite_id=self.suites, timestamp=self._timestamp)
        spill.append(_serialize_suite(suite))
        self.suites += 1

    def finish(self, scan: ScanInfo, summary: Summary | None = None) -> Path:
        """Write the root and every suite, then publish the file under ``path`` (atomically)."""
        spill = self._parked()
        target = AtomicFile(self.path)
        try:
            file = target.file
            file.write("<?xml version='1.0' encoding='utf-8'?>\n")
            if spill.records:
                file.write("<testsuites>")
                for suite in spill:
                    file.write("\n" + _INDENT + suite)
                file.write("\n</testsuites>\n")
            else:
                file.write("<testsuites />\n")
            target.commit()
        except BaseException:
            target.abort()
            raise
        finally:
            self._close()
        return self.path


# -- the file around the suites --------------------------------------------------------


def timestamp(scan: ScanInfo) -> str:
    """The scan start in UTC as the Ant schema's pattern wants it: no zone, no fraction."""
    started = scan.started if scan.started.tzinfo is None else scan.started.astimezone(UTC)
    return started.strftime("%Y-%m-%dT%H:%M:%S")


def _serialize_suite(suite: ET.Element) -> str:
    ET.indent(suite, space=_INDENT, level=1)
    suite.tail = None
    return ET.tostring(suite, encoding="unicode")


# -- building ------------------------------------------------------------------------


def suite_element(target: TargetReport, fail_on: str, *, suite_id: int, timestamp: str) -> ET.Element:
    """One target's ``<testsuite>``, with its statistics; ``timestamp`` is the scan start."""
    name = xml_safe(target.name)
    suite = ET.Element("testsuite", {"name": name})
    properties = ET.SubElement(suite, "properties")
    facts: list[tuple[str, str | None]] = [
        ("address", target.address),
        ("server_name", target.server_name),
        ("status", target.status.value),
        ("error", target.error),
        ("scanned_at", target.scanned_at.isoformat()),
    ]
    if target.tags:
        facts.append(("tags", ", ".join(target.tags)))
    for key, value in facts:
        if value is not None:
            ET.SubElement(properties, "property", {"name": key, "value": xml_safe(value)})

    cases = [_case(target, finding, fail_on) for finding in target.findings]
    if not target.findings and target.error:
        case = ET.Element("testcase", {"name": UNSCANNED_CASE_NAME, "classname": name, "time": CASE_TIME})
        message = f"target could not be scanned: {target.error}"
        ET.SubElement(case, "error", {"message": xml_safe(message), "type": "error"})
        cases.append(case)
    suite.extend(cases)
    ET.SubElement(suite, "system-out").text = xml_safe(_suite_output(target, fail_on)) or None
    ET.SubElement(suite, "system-err")

    def count(tag: str) -> int:
        return sum(1 for case in cases if case.find(tag) is not None)

    suite.set("tests", str(len(cases)))
    suite.set("failures", str(count("failure")))
    suite.set("errors", str(count("error")))
    suite.set("skipped", str(count("skipped")))
    suite.set("time", _suite_time(target))
    suite.set("timestamp", timestamp)
    suite.set("hostname", HOSTNAME)
    suite.set("id", str(suite_id))
    suite.set("package", PACKAGE)
    return suite


def _suite_time(target: TargetReport) -> str:
    """Seconds spent connecting to the target: its probes' durations, added up."""
    milliseconds = sum(probe.total_ms for probe in target.probes if probe.total_ms is not None)
    return f"{milliseconds / 1000:.3f}"


def _suite_output(target: TargetReport, fail_on: str) -> str:
    """What passing test cases have to say: warnings (unless they fail) and findings
    that passed after failing in the baseline."""
    notes = []
    for finding in target.findings:
        if finding.status is Status.WARN and fail_on != "warn" and not finding.waived:
            notes.append(f"WARN {finding.check}: " + _body(target, finding))
        elif finding.status is Status.PASS and finding.baseline is BaselineLabel.RESOLVED:
            notes.append(f"RESOLVED {finding.check}: was failing in the baseline; now: {finding.summary}\n")
    return "\n".join(notes)


def _case(target: TargetReport, finding: Finding, fail_on: str) -> ET.Element:
    case = ET.Element(
        "testcase", {"name": xml_safe(finding.check), "classname": xml_safe(target.name), "time": CASE_TIME}
    )
    status = finding.status

    def result(tag: str, text: str | None, message: str, kind: str | None = None) -> None:
        attributes = {"message": xml_safe(message)}
        if kind is not None:
            attributes["type"] = xml_safe(kind)
        element = ET.SubElement(case, tag, attributes)
        if text is not None:
            element.text = xml_safe(text)

    if finding.waived:
        message = waiver_message(finding.waiver) if finding.waiver is not None else "waived"
        result("skipped", f"{status.value.upper()} (waived)\n" + _body(target, finding), message)
    elif status is Status.FAIL or (status is Status.WARN and fail_on == "warn"):
        result("failure", _body(target, finding), finding.summary, finding.severity.value)
    elif status is Status.ERROR:
        result("error", _body(target, finding), finding.summary, finding.severity.value)
    elif status is Status.SKIP:
        result("skipped", None, finding.summary)
    return case


def _body(target: TargetReport, finding: Finding) -> str:
    lines = [finding.summary, ""]
    lines.append(f"Target: {target.name} ({target.address}, server name {target.server_name})")
    lines.append(f"Check: {finding.check} (severity {finding.severity.value})")
    if finding.baseline is not None:
        lines.append(f"Baseline: {finding.baseline.value}")
    waiver = finding.waiver
    if waiver is not None and waiver.expired:
        lines.append(
            f"Waiver EXPIRED on {waiver.expires.isoformat()} (not applied): {waiver.reason} (owner {waiver.owner})"
        )
    if finding.remediation:
        lines += ["", "Remediation:", _indent([finding.remediation])]
    commands = command_lines(finding.commands)
    if commands:
        lines += ["", "Reproduce:", _indent(commands)]
    if finding.evidence:
        text = json.dumps(finding.evidence, indent=2, ensure_ascii=False, default=str, sort_keys=False)
        lines += ["", "Evidence:", _indent(text.splitlines())]
    return "\n".join(lines) + "\n"


def _indent(lines: Iterable[str], prefix: str = "  ") -> str:
    return "\n".join(prefix + line for line in lines)
