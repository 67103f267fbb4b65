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
from types import TracebackType
from typing import IO, Any

from mtls_audit.reports.atomic import AtomicFile

SCHEMA_VERSION = "1.0"  # must match scanner.results.SCHEMA_VERSION and the schema's const

_STATUSES = frozenset({"pass", "warn", "fail", "error", "skip"})
_TARGET_KEYS = (
    "name",
    "address",
    "server_name",
    "tags",
    "status",
    "error",
    "accepted_versions",
    "client_auth",
    "certificates",
    "findings",
    "probes",
)


class ReportError(Exception):
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

    def start(self) -> None:
        if self._file is not None or self._done:
            raise RuntimeError("JsonReportWriter.start() called twice")
        self._atomic = AtomicFile(self.path)
        self._file = self._atomic.file
        self._file.write(f'{{"schema_version": {_dumps(SCHEMA_VERSION)}, "targets": [')

    def add(self, target: dict[str, Any]) -> None:
        """Write one target (``TargetResult.to_dict()``); order of calls is report order."""
        file = self._require_open()
        text = _dumps(target, indent=2).replace("\n", "\n  ")
        file.write(("," if self._count else "") + "\n  " + text)
        self._count += 1

    def finish(self, scan: dict[str, Any], summary: dict[str, Any]) -> Path:
        """Write the closing ``scan`` and ``summary``, then publish under ``path``."""
        file = self._require_open()
        atomic = self._atomic
        assert atomic is not None  # start() set it along with the open file
        closing = "\n" if self._count else ""
        closing += f'],\n"scan": {_dumps(scan, indent=2)},\n"summary": {_dumps(summary, indent=2)}\n}}\n'
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

    def __enter__(self) -> JsonReportWriter:
        if self._file is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # finish() must be called explicitly (it needs scan and summary); anything
        # else, an exception included, discards the partial file.
        if self._file is not None:
            self.abort()

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


def load_report(path: Path | str) -> dict[str, Any]:
    """Read a saved report and validate it. Raises ``ReportError`` (one line) if the
    file cannot be read, is not JSON, or does not match the schema."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ReportError(f"{path}: cannot read report: {_one_line(str(error))}") from error
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReportError(f"{path}: not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}") from error
    problem = validation_problem(document)
    if problem is not None:
        raise ReportError(f"{path}: not an mtls-audit {SCHEMA_VERSION} report: {problem}")
    return document


def validation_problem(document: Any) -> str | None:
    """The first schema violation in ``document`` as one line, or None when it is valid.

    Uses jsonschema when it is installed; otherwise (it is only a test dependency)
    falls back to checking the top-level structure and the status enums.
    """
    try:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import best_match
    except ImportError:
        return _basic_problem(document)
    validator = Draft202012Validator(schema())
    error = best_match(validator.iter_errors(document))
    if error is None:
        return None
    where = error.json_path if error.path else "$"
    return _one_line(f"at {where}: {error.message}")


def _basic_problem(document: Any) -> str | None:
    if not isinstance(document, dict):
        return "at $: the document is not an object"
    for key in ("schema_version", "scan", "summary", "targets"):
        if key not in document:
            return f"at $: {key!r} is a required property"
    if document["schema_version"] != SCHEMA_VERSION:
        return f"at $.schema_version: {document['schema_version']!r} is not {SCHEMA_VERSION!r}"
    if not isinstance(document["scan"], dict) or not isinstance(document["summary"], dict):
        return "at $: 'scan' and 'summary' must be objects"
    if not isinstance(document["targets"], list):
        return "at $.targets: not an array"
    for i, target in enumerate(document["targets"]):
        if not isinstance(target, dict):
            return f"at $.targets[{i}]: not an object"
        for key in _TARGET_KEYS:
            if key not in target:
                return f"at $.targets[{i}]: {key!r} is a required property"
        if target["status"] not in _STATUSES:
            return f"at $.targets[{i}].status: {target['status']!r} is not a status"
        if not isinstance(target["findings"], list):
            return f"at $.targets[{i}].findings: not an array"
        for j, finding in enumerate(target["findings"]):
            if not isinstance(finding, dict) or finding.get("status") not in _STATUSES:
                return f"at $.targets[{i}].findings[{j}]: missing or unknown status"
            if not isinstance(finding.get("check"), str):
                return f"at $.targets[{i}].findings[{j}].check: not a string"
    return None


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
