"""NDJSON for a SIEM: one event per finding, plus one scan-summary event at the end.

Two flavors, chosen per writer: ``ecs`` (Elastic Common Schema, built by
``reports.siem_ecs``) and ``ocsf`` (OCSF Compliance Finding and Scan Activity, built by
``reports.siem_ocsf``). Both translate status and severity through the one table in
``reports.siem_mapping``, read each target once through ``reports.siem_target`` and
carry the same object of our own fields (``reports.siem_extras``). This module writes
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

import functools
import json
import os
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from mtls_audit.reports.siem.ecs import ECS_VERSION, ecs_finding, ecs_summary
from mtls_audit.reports.siem.mapping import (
    SEVERITY_MAP,
    STATUS_MAP,
    CheckInfo,
    check_info,
    finding_uid,
    mapping_table_markdown,
    worse_severity,
)
from mtls_audit.reports.siem.ocsf import OCSF_VERSION, ocsf_finding, ocsf_summary
from mtls_audit.reports.siem.target import TargetContext

__all__ = [
    "ECS_VERSION",
    "FLAVORS",
    "OCSF_VERSION",
    "SEVERITY_MAP",
    "STATUS_MAP",
    "SiemWriter",
    "dumps_line",
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

    ``destination`` is a path (opened for appending, created with its directory) or an
    open text stream (``sys.stdout`` for ``-``; left open). ``flavor`` is ``"ecs"`` or
    ``"ocsf"``. ``checks`` (the registered ``Check`` objects, for rule names and
    descriptions) defaults to the registry; ``clock`` (for ``event.created``) to UTC now;
    ``tool_version`` to the installed mtls-audit version.
    """

    def __init__(
        self,
        destination: Path | str | IO[str],
        flavor: str,
        *,
        checks: Iterable[Any] | None = None,
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
        self._checks = None if checks is None else {check.id: check for check in checks}
        self._clock = clock or (lambda: datetime.now(UTC))
        self._tool_version = tool_version
        self._worst_severity: str | None = None
        self.events_written = 0

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        if self._file is not None or self._done:
            raise RuntimeError("SiemWriter.start() called twice")
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115
        else:
            assert self._stream is not None
            self._file = self._stream

    def add(self, target: dict[str, Any]) -> None:
        """Write one event per finding of ``target`` (``TargetResult.to_dict()``), now."""
        file = self._require_open()
        context = TargetContext(target)
        lines = []
        for finding in target.get("findings") or []:
            if not isinstance(finding, dict):
                continue
            self._worst_severity = worse_severity(self._worst_severity, finding)
            lines.append(self._line(self._finding_event(context, finding), file))
        if lines:
            file.write("".join(lines))
            file.flush()
            self.events_written += len(lines)

    def finish(self, scan: dict[str, Any], summary: dict[str, Any]) -> Path | None:
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

    def __enter__(self) -> SiemWriter:
        if self._file is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

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
        if self._tool_version is None:
            from mtls_audit.scanner import __version__

            self._tool_version = __version__
        return self._tool_version

    def _finding_event(self, context: TargetContext, finding: dict[str, Any]) -> dict[str, Any]:
        check = self._check(str(finding.get("check", "")))
        build = _FINDING_EVENT[self.flavor]
        return build(context, finding, check, now=self._now, tool_version=self.tool_version)

    def _summary_event(self, scan: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
        build = _SUMMARY_EVENT[self.flavor]
        return build(scan, summary, worst_severity=self._worst_severity, now=self._now, tool_version=self.tool_version)

    def _check(self, check_id: str) -> CheckInfo:
        if self._checks is None:
            self._checks = _registered_checks()
        return check_info(check_id, self._checks.get(check_id))

    def _now(self) -> datetime:
        now = self._clock()
        return now if now.tzinfo else now.replace(tzinfo=UTC)


@functools.cache
def _registry_checks() -> tuple[Any, ...]:
    from mtls_audit.checks.registry import RegistryError, load_checks

    try:
        return load_checks()
    except RegistryError:
        return ()


def _registered_checks() -> dict[str, Any]:
    return {check.id: check for check in _registry_checks()}
