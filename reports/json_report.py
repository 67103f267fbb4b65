"""The JSON report: written as the scan goes, validated when read back.

The document is ``{"schema_version", "targets": [...], "scan", "summary"}``; its shape is
``reports/schema/report.schema.json``. ``JsonReportWriter`` streams one target at a
time into a temporary file next to the destination and renames it into place only in
``finish()``, so an interrupted scan never leaves a truncated report under the real
name. ``load_report`` reads a saved report back and checks it against the schema, so
the other reporters can re-render it later.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import IO, Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from mtls_audit.reports.atomic import AtomicFile
from mtls_audit.scanner.model.errors import UserError
from mtls_audit.scanner.model.report import (
    SCHEMA_VERSION,
    ReportDocument,
    ScanInfo,
    Summary,
    TargetReport,
)


class ReportError(UserError):
    """A report file that cannot be used: unreadable, not JSON, or not the schema."""


def _dumps(value: Any, indent: int | None = None) -> str:
    # allow_nan=False: NaN/Infinity are not JSON, and other tools would choke on them.
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=indent)


class JsonReportWriter:
    """Streams a report to ``path``: ``start()``, ``add(target)`` per target, ``finish()``.

    Until ``finish()`` succeeds the bytes live in a hidden temporary file in the same
    directory (so the final rename is atomic); ``abort()`` removes it. Used as a context
    manager, an exception inside the block aborts instead of publishing.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None
        self._atomic: AtomicFile | None = None
        self._count = 0
        self._done = False

    # -- lifecycle ---------------------------------------------------------------

    def start(self, scan: ScanInfo | None = None) -> None:
        if self._file is not None or self._done:
            raise RuntimeError("JsonReportWriter.start() called twice")
        self._atomic = AtomicFile(self.path)
        self._file = self._atomic.file
        self._file.write(f'{{"schema_version": {_dumps(SCHEMA_VERSION)}, "targets": [')

    def add(self, target: TargetReport) -> None:
        """Write one target; order of calls is report order."""
        file = self._require_open()
        text = _dumps(target.to_dict(), indent=2).replace("\n", "\n  ")
        file.write(("," if self._count else "") + "\n  " + text)
        self._count += 1

    def finish(self, scan: ScanInfo, summary: Summary) -> Path:
        """Write the closing ``scan`` and ``summary``, then publish under ``path``."""
        file = self._require_open()
        atomic = self._atomic
        assert atomic is not None  # start() set it along with the open file
        closing = "\n" if self._count else ""
        closing += (
            f'],\n"scan": {_dumps(scan.to_dict(), indent=2)},\n"summary": {_dumps(summary.to_dict(), indent=2)}\n}}\n'
        )
        try:
            file.write(closing)
        except BaseException:
            self.abort()
            raise
        self._file = None
        self._done = True
        return atomic.commit()

    def abort(self) -> None:
        """Drop the partial report; the final name is never touched."""
        if self._atomic is not None:
            self._atomic.abort()
        self._file = None
        self._done = True

    def _require_open(self) -> IO[str]:
        if self._file is None:
            state = "finished or aborted" if self._done else "not started"
            raise RuntimeError(f"JsonReportWriter is {state}")
        return self._file


# -- reading -----------------------------------------------------------------------


@functools.cache
def _schema_text() -> str:
    return resources.files("mtls_audit.reports").joinpath("schema/report.schema.json").read_text(encoding="utf-8")


def schema() -> dict[str, Any]:
    """The packaged JSON Schema (draft 2020-12) for the report; a fresh copy each call."""
    return json.loads(_schema_text())


def load_report(path: Path | str) -> ReportDocument:
    """Read a saved report and validate it. Raises ``ReportError`` (one line) if the
    file cannot be read, is not JSON, or does not match the schema."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ReportError(f"{path}: cannot read report: {_one_line(str(error))}", file=str(path)) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReportError(
            f"{path}: not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}", file=str(path)
        ) from None
    problem = validation_problem(document)
    if problem is not None:
        raise ReportError(f"{path}: not an mtls-audit {SCHEMA_VERSION} report: {problem}", file=str(path))
    if document["schema_version"] == "1.0":
        _commands_out_of_evidence(document)
    return ReportDocument.from_dict(document)


_LEGACY_COMMAND = "openssl_command"
_LEGACY_ENTRY_LISTS = ("per_version", "probes", "versions")
_LEGACY_LABEL_KEYS = ("probe", "version", "tls_version")


def _commands_out_of_evidence(document: dict[str, Any]) -> None:
    """A 1.0 report kept a finding's ``openssl s_client`` lines in its evidence
    (``openssl_command``: a string or a list, at the top or in ``per_version`` /
    ``probes`` / ``versions`` entries). Move them to the finding's ``commands``, where
    1.1 keeps them and every writer reads them, labelled with the entry's probe or
    version; duplicates are dropped, order is kept. Values of another shape stay."""
    for target in document["targets"]:
        for finding in target["findings"]:
            evidence = finding["evidence"]
            commands: list[dict[str, str]] = list(finding.get("commands") or [])
            _take_commands(evidence, "", commands)
            for key in _LEGACY_ENTRY_LISTS:
                entries = evidence.get(key)
                for entry in entries if isinstance(entries, list) else ():
                    if isinstance(entry, dict):
                        label = next((str(entry[k]) for k in _LEGACY_LABEL_KEYS if entry.get(k) is not None), "")
                        _take_commands(entry, label, commands)
            finding["commands"] = commands


def _take_commands(holder: dict[str, Any], label: str, commands: list[dict[str, str]]) -> None:
    value = holder.get(_LEGACY_COMMAND)
    lines = [value] if isinstance(value, str) else value
    if not isinstance(lines, list) or not lines or not all(isinstance(line, str) for line in lines):
        return
    del holder[_LEGACY_COMMAND]
    for line in lines:
        command = {"label": label, "command": line}
        if command not in commands:
            commands.append(command)


def validation_problem(document: Any) -> str | None:
    """The first schema violation in ``document`` as one line, or None when it is valid."""
    validator = Draft202012Validator(schema())
    error = best_match(validator.iter_errors(document))
    if error is None:
        return None
    where = error.json_path if error.path else "$"
    return _one_line(f"at {where}: {error.message}")


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
