"""NDJSON for a SIEM: one event per finding, plus one scan-summary event at the end.

Two flavors, chosen per writer: ``ecs`` (Elastic Common Schema, built by
``reports.siem.ecs``) and ``ocsf`` (OCSF Compliance Finding and Scan Activity, built by
``reports.siem.ocsf``). Both translate status and severity through the one table in
``reports.siem.mapping``, read each target once through ``reports.siem.target`` and
carry the same object of our own fields (``reports.siem.extras``). This module writes
the events.

Lines are written as the scan goes: ``add(target)`` writes that target's findings at once
and flushes, so a SIEM shipper tail-following the file (Filebeat, Fluent Bit, the
Splunk forwarder...) sees them while the scan is still running. The file is written in
place, never via a temporary file and rename, and it is opened for **appending**: like
any log, one file collects many scans and is rotated by the usual tools; truncating it
under a shipper that has not read it yet would lose events. ``finish()`` appends the
summary line and closes the file (a stream the caller passed in, e.g. ``sys.stdout``
for ``-``, is flushed but left open).

Every event is one line: ``json.dumps(ensure_ascii=False, separators=(",", ":"))``
escapes newlines, ESC and every other C0 control; on top of that U+0085, U+2028 and
U+2029 (line breaks for some splitters, Python's ``str.splitlines`` among them) and lone
surrogates (which UTF-8 cannot encode) are written as ``\\uXXXX`` escapes. Parsing the
line gives back exactly the original text: certificate subjects, SANs, HTTP reasons and
summaries are attacker-controlled and are neither trimmed nor "cleaned".
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from mtls_audit.reports.siem.ecs import ECS_VERSION, ecs_finding, ecs_summary
from mtls_audit.reports.siem.mapping import (
    SEVERITY_MAP,
    STATUS_MAP,
    RuleInfo,
    event_severity,
    finding_uid,
    mapping_table_markdown,
    rule_info,
    worse_severity,
)
from mtls_audit.reports.siem.ocsf import OCSF_VERSION, ocsf_finding, ocsf_summary
from mtls_audit.reports.siem.target import TargetContext
from mtls_audit.scanner.model.finding import Finding
from mtls_audit.scanner.model.report import CheckInfo, ScanInfo, Summary, TargetReport
from mtls_audit.scanner.model.status import Severity

__all__ = [
    "ECS_VERSION",
    "FLAVORS",
    "OCSF_VERSION",
    "SEVERITY_MAP",
    "STATUS_MAP",
    "SiemWriter",
    "dumps_line",
    "event_severity",
    "finding_uid",
    "mapping_table_markdown",
]

FLAVORS = ("ecs", "ocsf")
_FINDING_EVENT = {"ecs": ecs_finding, "ocsf": ocsf_finding}
_SUMMARY_EVENT = {"ecs": ecs_summary, "ocsf": ocsf_summary}

# Characters json.dumps(ensure_ascii=False) leaves raw that still break a line for some
# readers (NEL, LINE/PARAGRAPH SEPARATOR), and lone surrogates UTF-8 cannot encode.
_UNSAFE_IN_LINE = re.compile("[\u0085\u2028\u2029\ud800-\udfff]")


def dumps_line(event: dict[str, Any], ensure_ascii: bool = False) -> str:
    """One event as one line of JSON (no trailing newline); see the module docstring."""
    text = json.dumps(event, ensure_ascii=ensure_ascii, separators=(",", ":"), allow_nan=False)
    return _UNSAFE_IN_LINE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


class SiemWriter:
    """Streams SIEM events: ``start()``, ``add(target)`` per target, ``finish(scan, summary)``.

    ``destination`` is a path (opened for appending) or an open text stream
    (``sys.stdout`` for ``-``; left open). ``flavor`` is ``"ecs"`` or ``"ocsf"``. Rule
    names and descriptions come from the scan's check catalog (``ScanInfo.checks``);
    ``clock`` (for ``event.created``) defaults to UTC now, ``tool_version`` to the
    scan's.
    """

    def __init__(
        self,
        destination: Path | str | IO[str],
        flavor: str,
        *,
        clock: Callable[[], datetime] | None = None,
        tool_version: str | None = None,
    ) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"unknown SIEM flavor {flavor!r} (expected one of: {', '.join(FLAVORS)})")
        self.flavor = flavor
        if isinstance(destination, (str, os.PathLike)):
            self.path: Path | None = Path(destination)
            self._stream: IO[str] | None = None
        else:
            self.path = None
            self._stream = destination
        self._file: IO[str] | None = None
        self._done = False
        self._checks: dict[str, CheckInfo] = {}
        self._clock = clock or (lambda: datetime.now(UTC))
        self._tool_version = tool_version
        self._worst_severity: Severity | None = None
        self.events_written = 0

    # -- lifecycle ---------------------------------------------------------------

    def start(self, scan: ScanInfo) -> None:
        if self._file is not None or self._done:
            raise RuntimeError("SiemWriter.start() called twice")
        self._checks = {check.id: check for check in scan.checks}
        if self._tool_version is None:
            self._tool_version = scan.tool_version
        if self.path is not None:
            self._file = open(self.path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115
        else:
            assert self._stream is not None
            self._file = self._stream

    def add(self, target: TargetReport) -> None:
        """Write one event per finding of the target, now."""
        file = self._require_open()
        context = TargetContext(target)
        lines = []
        for finding in target.findings:
            self._worst_severity = worse_severity(self._worst_severity, finding)
            lines.append(self._line(self._finding_event(context, finding), file))
        if lines:
            file.write("".join(lines))
            file.flush()
            self.events_written += len(lines)

    def finish(self, scan: ScanInfo, summary: Summary) -> Path | None:
        """Write the scan-summary event and close the file (a passed-in stream stays open)."""
        file = self._require_open()
        event = self._summary_event(scan, summary)
        try:
            file.write(self._line(event, file))
            file.flush()
            self.events_written += 1
            if self.path is not None:
                os.fsync(file.fileno())
        finally:
            self.close()
        return self.path

    def close(self) -> None:
        """Stop writing (no summary line); what was written stays, it is real."""
        if self._file is not None:
            try:
                if self.path is not None:
                    self._file.close()
                else:
                    self._file.flush()
            finally:
                self._file = None
        self._done = True

    abort = close

    def _require_open(self) -> IO[str]:
        if self._file is None:
            state = "finished or closed" if self._done else "not started"
            raise RuntimeError(f"SiemWriter is {state}")
        return self._file

    @staticmethod
    def _line(event: dict[str, Any], file: IO[str]) -> str:
        line = dumps_line(event) + "\n"
        encoding = getattr(file, "encoding", None)
        if encoding and encoding.lower().replace("-", "").replace("_", "") != "utf8":
            try:
                line.encode(encoding)
            except UnicodeEncodeError:  # e.g. stdout in an ASCII locale: same JSON, escaped
                line = dumps_line(event, ensure_ascii=True) + "\n"
            except LookupError:
                pass
        return line

    # -- events ------------------------------------------------------------------

    @property
    def tool_version(self) -> str:
        return self._tool_version or "unknown"

    def _finding_event(self, context: TargetContext, finding: Finding) -> dict[str, Any]:
        check = self._check(finding.check)
        build = _FINDING_EVENT[self.flavor]
        return build(context, finding, check, now=self._now, tool_version=self.tool_version)

    def _summary_event(self, scan: ScanInfo, summary: Summary) -> dict[str, Any]:
        build = _SUMMARY_EVENT[self.flavor]
        return build(scan, summary, worst_severity=self._worst_severity, now=self._now, tool_version=self.tool_version)

    def _check(self, check_id: str) -> RuleInfo:
        return rule_info(check_id, self._checks.get(check_id))

    def _now(self) -> datetime:
        now = self._clock()
        return now if now.tzinfo else now.replace(tzinfo=UTC)
