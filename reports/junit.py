"""JUnit XML for CI: one test case per target × check, so a pipeline's test view shows
which endpoint broke which rule.

Layout (``<testsuites name="mtls-audit">`` holding one ``<testsuite>`` per target)::

    <testsuites name="mtls-audit" tests=".." failures=".." errors=".." skipped=".." time="..">
      <testsuite name="payments-api" timestamp="<scan start>" tests="6" failures="1" ...>
        <properties> address, server_name, tags, status, error, scanned_at </properties>
        <testcase classname="payments-api" name="client-cert-required">
          <failure message="<summary>" type="<severity>">summary, remediation,
            reproduce commands, evidence as indented JSON</failure>
        </testcase>
        ...

Why one suite per target rather than a single "mtls-audit" suite: Jenkins and GitLab
group test cases by ``classname`` (= the target name) whatever the suites are, so for
them both layouts look the same; the GitHub reporters (dorny/test-reporter,
EnricoMi/publish-unit-test-result-action, mikepenz/action-junit-report) and Azure
DevOps show one table or count line per ``<testsuite>``, so per-target suites give a
per-endpoint breakdown there too. A suite can also carry its target's address, SNI
name, tags and scan error as ``<properties>``, and the ``<testsuites>`` root still
carries the scan-wide totals and the name "mtls-audit" for tools that only read those.
Every suite's ``timestamp`` is the scan start (a target has no start time of its own).
Caveat: Jenkins splits a classname at dots into package and class, so a target named
``api.internal:8443`` shows under package ``api``.

Finding status → JUnit result:

=========================  =============================================================
``fail``                   ``<failure message=summary type=severity>`` (body: summary,
                           remediation, ``openssl s_client`` commands, evidence JSON)
``error``                  ``<error message=summary type=severity>``, same body
``skip``                   ``<skipped message=summary>``
waived (fail/warn/error)   ``<skipped message="waived: REASON (owner OWNER, until DATE)">``
                           with the original status and the full body
``warn``                   passes, with the summary and body in ``<system-out>``; with
                           ``fail_on="warn"`` (``--fail-on warn``) a ``<failure>`` instead
``pass``                   passes (``<system-out>`` only to note a resolved baseline)
=========================  =============================================================

A target that could not be scanned has only ``error`` findings already; if a report has
such a target with no findings at all, a single test case named ``scan`` carries the
error so the outage is not invisible in CI.

Certificate text and everything else taken from a server is attacker-controlled: the
XML library escapes markup (``<``, ``&``, quotes), and characters XML 1.0 cannot carry at
all (NUL, ESC and the other C0 controls, lone surrogates, U+FFFE/U+FFFF) are replaced by
a visible ``\\xNN``/``\\uNNNN`` escape so the file always stays well-formed.

The writer has the streaming interface of ``JsonReportWriter``: ``start()``,
``add(target)`` per target (test cases are built right away, so the full target dicts
are not kept), ``finish(scan, summary)`` writes everything to a temporary file next to
the destination and renames it into place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite
from junitparser import junitparser as _junitparser_module

from mtls_audit.reports.atomic import AtomicFile

FAIL_ON_LEVELS = ("fail", "warn")
UNSCANNED_CASE_NAME = "scan"

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


def openssl_commands(evidence: Any) -> list[str]:
    """The ``openssl s_client`` command lines in a finding's evidence, top level first,
    then those nested in ``per_version`` entries; duplicates dropped, order kept."""
    found: list[str] = []

    def take(value: Any) -> None:
        items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        for item in items:
            if isinstance(item, str) and item not in found:
                found.append(item)

    if isinstance(evidence, dict):
        take(evidence.get("openssl_command"))
        per_version = evidence.get("per_version")
        if isinstance(per_version, list):
            for entry in per_version:
                if isinstance(entry, dict):
                    take(entry.get("openssl_command"))
    return found


def waiver_message(waiver: dict[str, Any]) -> str:
    return f"waived: {waiver.get('reason', '')} (owner {waiver.get('owner', '')}, until {waiver.get('expires', '')})"


class JunitReportWriter:
    """Streams targets into a JUnit XML file at ``path``: ``start()``, ``add(target)``,
    ``finish(scan, summary)``.

    ``fail_on`` mirrors ``--fail-on``: with ``"fail"`` (the default) a ``warn`` finding
    is a passing test case with its summary in ``<system-out>``; with ``"warn"`` it is
    a ``<failure>``, so the CI view agrees with the exit code.
    """

    def __init__(self, path: Path | str, *, fail_on: str = "fail") -> None:
        if fail_on not in FAIL_ON_LEVELS:
            raise ValueError(f"fail_on must be one of {', '.join(FAIL_ON_LEVELS)}, not {fail_on!r}")
        self.path = Path(path)
        self.fail_on = fail_on
        self._suites: list[TestSuite] = []
        self._started = False
        self._done = False

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        if self._started or self._done:
            raise RuntimeError("JunitReportWriter.start() called twice")
        self._started = True

    def add(self, target: dict[str, Any]) -> None:
        """Turn one target (``TargetResult.to_dict()``, possibly annotated with
        ``waived``/``waiver``/``baseline``) into a test suite; call order is file order."""
        self._require_open()
        self._suites.append(_suite(target, self.fail_on))

    def finish(self, scan: dict[str, Any], summary: dict[str, Any] | None = None) -> Path:
        """Write every suite and publish the file under ``path`` (atomically)."""
        self._require_open()
        root = JUnitXml(name="mtls-audit")
        started = scan.get("started") if isinstance(scan, dict) else None
        for suite in self._suites:
            if started:
                suite.timestamp = xml_safe(started)
            # append, not add_testsuite(): that one compares every suite with every
            # other (quadratic) and merges suites it considers equal.
            root.append(suite)
        root.update_statistics()
        duration = _duration(scan)
        if duration is not None:
            root.time = duration
        indent = getattr(_junitparser_module.etree, "indent", None)
        if indent is not None:
            indent(root._elem, space="  ")

        target = AtomicFile(self.path, binary=True)
        try:
            root.write(target.file)
        except BaseException:
            target.abort()
            self._suites = []
            self._done = True
            raise
        target.commit()
        self._suites = []
        self._done = True
        return self.path

    def abort(self) -> None:
        """Drop what was collected; nothing is ever written before ``finish()``."""
        self._suites = []
        self._done = True

    def __enter__(self) -> JunitReportWriter:
        if not self._started:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.abort()

    def _require_open(self) -> None:
        if not self._started or self._done:
            state = "finished or aborted" if self._done else "not started"
            raise RuntimeError(f"JunitReportWriter is {state}")


# -- building ------------------------------------------------------------------------


def _suite(target: dict[str, Any], fail_on: str) -> TestSuite:
    name = xml_safe(target.get("name", ""))
    suite = TestSuite(name)
    for key in ("address", "server_name", "status", "error", "scanned_at"):
        value = target.get(key)
        if value is not None:
            suite.add_property(key, xml_safe(value))
    tags = target.get("tags") or []
    if tags:
        suite.add_property("tags", xml_safe(", ".join(str(tag) for tag in tags)))

    findings = target.get("findings") or []
    cases = [_case(target, finding, fail_on) for finding in findings]
    if not findings and target.get("error"):
        case = TestCase(UNSCANNED_CASE_NAME, name)
        message = f"target could not be scanned: {target['error']}"
        case.result = [Error(xml_safe(message), "error")]
        cases.append(case)
    suite.add_testcases(cases)
    return suite


def _case(target: dict[str, Any], finding: dict[str, Any], fail_on: str) -> TestCase:
    case = TestCase(xml_safe(finding.get("check", "")), xml_safe(target.get("name", "")))
    status = finding.get("status")
    summary = str(finding.get("summary", ""))
    severity = str(finding.get("severity", ""))
    waiver = finding.get("waiver") if isinstance(finding.get("waiver"), dict) else None

    result: Skipped | Failure | Error | None
    if finding.get("waived"):
        message = waiver_message(waiver) if waiver is not None else "waived"
        result = Skipped(xml_safe(message))
        result.text = xml_safe(
            f"{status.upper() if isinstance(status, str) else status} (waived)\n" + _body(target, finding)
        )
    elif status == "fail" or (status == "warn" and fail_on == "warn"):
        result = Failure(xml_safe(summary), xml_safe(severity))
        result.text = xml_safe(_body(target, finding))
    elif status == "error":
        result = Error(xml_safe(summary), xml_safe(severity))
        result.text = xml_safe(_body(target, finding))
    elif status == "skip":
        result = Skipped(xml_safe(summary))
    else:
        result = None

    if result is not None:
        case.result = [result]
    if status == "warn" and fail_on != "warn" and not finding.get("waived"):
        case.system_out = xml_safe("WARN: " + _body(target, finding))
    elif status == "pass" and finding.get("baseline") == "resolved":
        case.system_out = xml_safe(f"resolved: was failing in the baseline; now: {summary}")
    return case


def _body(target: dict[str, Any], finding: dict[str, Any]) -> str:
    lines = [str(finding.get("summary", "")), ""]
    lines.append(
        f"Target: {target.get('name', '')} ({target.get('address', '')}, server name {target.get('server_name', '')})"
    )
    lines.append(f"Check: {finding.get('check', '')} (severity {finding.get('severity', '')})")
    baseline = finding.get("baseline")
    if baseline:
        lines.append(f"Baseline: {baseline}")
    waiver = finding.get("waiver")
    if isinstance(waiver, dict) and waiver.get("expired"):
        lines.append(
            f"Waiver EXPIRED on {waiver.get('expires', '')} (not applied): "
            f"{waiver.get('reason', '')} (owner {waiver.get('owner', '')})"
        )
    remediation = finding.get("remediation")
    if remediation:
        lines += ["", "Remediation:", _indent([str(remediation)])]
    commands = openssl_commands(finding.get("evidence"))
    if commands:
        lines += ["", "Reproduce:", _indent(commands)]
    evidence = finding.get("evidence")
    if evidence:
        text = json.dumps(evidence, indent=2, ensure_ascii=False, default=str, sort_keys=False)
        lines += ["", "Evidence:", _indent(text.splitlines())]
    return "\n".join(lines) + "\n"


def _indent(lines: Iterable[str], prefix: str = "  ") -> str:
    return "\n".join(prefix + line for line in lines)


def _duration(scan: Any) -> float | None:
    if not isinstance(scan, dict):
        return None
    try:
        started = datetime.fromisoformat(scan["started"])
        finished = datetime.fromisoformat(scan["finished"])
    except (KeyError, TypeError, ValueError):
        return None
    seconds = (finished - started).total_seconds()
    return round(seconds, 3) if seconds >= 0 else None
