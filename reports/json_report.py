"""The JSON report: written as the scan goes, validated when read back.

The document is ``{"schema_version", "targets": [...], "certificates": {...}, "texts":
[...], "scan", "summary"}`` (``texts`` only when findings repeat a sentence); its
shape is ``reports/schema/report.schema.json``. ``JsonReportWriter`` streams one
target at a time into a temporary file next to the destination and renames it into
place only in ``finish()``, so an interrupted scan never leaves a truncated report
under the real name. ``load_report`` reads a saved report back and checks it
against the schema, so the other reporters can re-render it later.

The encoding is compact, for 10,000 targets: no indentation, one target per line (a
diff still shows which target changed), every fact said once. Targets name their
certificates by SHA-256 and the ``certificates`` table, written after the targets,
holds each distinct certificate once (targets behind one load balancer or CA share
chains); probes leave out their defaults and say how they differ from a probe like
them; findings name probes instead of repeating their facts, certificates by their
position in the chain, and share their commands' common arguments
(``TargetReport.to_dict``); the ``texts`` table, also after the targets, holds each
summary and remediation that findings repeat. Loading puts everything back.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from mtls_audit.reports.atomic import AtomicFile
from mtls_audit.reports.spill import SpillFile
from mtls_audit.scanner.model.compact import LIKE, TextTable, like_decode
from mtls_audit.scanner.model.errors import UserError
from mtls_audit.scanner.model.report import (
    SCHEMA_VERSION,
    CertificateSummary,
    ReportDocument,
    ScanInfo,
    Summary,
    TargetReport,
)
from mtls_audit.scanner.model.status import Severity


class ReportError(UserError):
    """A report file that cannot be used: unreadable, not JSON, or not the schema."""


def _dumps(value: Any) -> str:
    # allow_nan=False: NaN/Infinity are not JSON, and other tools would choke on them.
    # No spaces: at 10,000 targets a byte per separator is megabytes. Newlines inside
    # strings are escaped, so a target stays on its line.
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class JsonReportWriter:
    """Streams a report to ``path``: ``start()``, ``add(target)`` per target, ``finish()``.

    Until ``finish()`` succeeds the bytes live in a hidden temporary file in the same
    directory (so the final rename is atomic); ``abort()`` removes it. Used as a context
    manager, an exception inside the block aborts instead of publishing.

    The certificates table comes after the targets, so a certificate first seen on
    the last target still makes it; until then new certificates wait in a spill file
    beside the report, and the writer keeps only their fingerprints in memory. The
    texts table follows it. A finding at the severity ``start``'s check catalog gives
    its check leaves it out, so ``finish`` must get the same catalog.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None
        self._atomic: AtomicFile | None = None
        self._certificates: SpillFile | None = None
        self._seen: set[str] = set()
        self._texts = TextTable()
        self._severities: dict[str, Severity] = {}
        self._count = 0
        self._done = False

    # -- lifecycle ---------------------------------------------------------------

    def start(self, scan: ScanInfo | None = None) -> None:
        if self._file is not None or self._done:
            raise RuntimeError("JsonReportWriter.start() called twice")
        self._severities = scan.severities if scan is not None else {}
        self._atomic = AtomicFile(self.path)
        self._file = self._atomic.file
        self._file.write(f'{{"schema_version":{_dumps(SCHEMA_VERSION)},"targets":[')

    def add(self, target: TargetReport) -> None:
        """Write one target; order of calls is report order."""
        file = self._require_open()
        data = target.to_dict(texts=self._texts, severities=self._severities)
        data["certificates"] = [certificate.sha256 for certificate in target.certificates]
        for certificate in target.certificates:
            if certificate.sha256 not in self._seen:
                if self._certificates is None:
                    self._certificates = SpillFile(self.path)
                entry = certificate.to_dict()
                del entry["sha256"]
                self._certificates.append([certificate.sha256, entry])
                self._seen.add(certificate.sha256)
        file.write(("," if self._count else "") + "\n" + _dumps(data))
        self._count += 1

    def finish(self, scan: ScanInfo, summary: Summary) -> Path:
        """Write the closing ``scan`` and ``summary``, then publish under ``path``."""
        file = self._require_open()
        atomic = self._atomic
        assert atomic is not None  # start() set it along with the open file
        try:
            if any(scan.severities.get(check) is not severity for check, severity in self._severities.items()):
                raise ValueError(
                    "JsonReportWriter.finish() got other checks than start(): severities were left to them"
                )
            file.write(("\n" if self._count else "") + '],"certificates":{')
            for number, (sha256, entry) in enumerate(self._certificates or ()):
                file.write(("," if number else "") + f"\n{_dumps(sha256)}:{_dumps(entry)}")
            file.write(("\n" if self._seen else "") + "},\n")
            if self._texts.texts:
                file.write('"texts":[\n' + ",\n".join(_dumps(text) for text in self._texts.texts) + "],\n")
            file.write(f'"scan":{_dumps(scan.to_dict())},\n"summary":{_dumps(summary.to_dict())}}}\n')
        except BaseException:
            self.abort()
            raise
        self._discard_certificates()
        self._file = None
        self._done = True
        return atomic.commit()

    def abort(self) -> None:
        """Drop the partial report; the final name is never touched."""
        if self._atomic is not None:
            self._atomic.abort()
        self._discard_certificates()
        self._file = None
        self._done = True

    def _discard_certificates(self) -> None:
        if self._certificates is not None:
            self._certificates.discard()
        self._seen.clear()

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


@dataclass(frozen=True)
class StreamedReport:
    """A validated report whose targets are read one at a time: merging 10,000 targets
    of shard reports holds one target per shard, not all of them."""

    scan: ScanInfo
    summary: Summary
    schema_version: str
    targets: Callable[[], Iterator[TargetReport]]  # each call reads them again, in file order

    @classmethod
    def of(cls, document: ReportDocument) -> StreamedReport:
        return cls(document.scan, document.summary, document.schema_version, lambda: iter(document.targets))


def open_report(path: Path | str) -> StreamedReport:
    """Like ``load_report``, but a report as ``JsonReportWriter`` lays it out gives
    its targets one at a time (each validated as it is read); any other layout is
    loaded whole. Raises ``ReportError`` for the header at once, and for a target
    when it is reached."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as file:
            if file.readline() == _FIRST_LINE and file.seekable():
                layout = _line_layout(path, file)
                if layout is not None:
                    return StreamedReport(
                        layout.scan, layout.summary, SCHEMA_VERSION, lambda: _streamed_targets(path, layout)
                    )
    except (OSError, UnicodeDecodeError) as error:
        raise ReportError(f"{path}: cannot read report: {_one_line(str(error))}", file=str(path)) from None
    return StreamedReport.of(load_report(path))


def load_report(path: Path | str) -> ReportDocument:
    """Read a saved report and validate it. Raises ``ReportError`` (one line) if the
    file cannot be read, is not JSON, or does not match the schema.

    A report as ``JsonReportWriter`` lays it out (one target per line) is read a line
    at a time, so only the typed targets stay in memory, not the text and every
    parsed dict besides; any other layout (1.0 and 1.1 reports, a hand-edited one)
    is read whole."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as file:
            first = file.readline()
            if first == _FIRST_LINE and file.seekable():
                document = _read_line_by_line(path, file)
                if document is not None:
                    return document
                file.seek(0)
                first = file.readline()
            text = first + file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise ReportError(f"{path}: cannot read report: {_one_line(str(error))}", file=str(path)) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReportError(
            f"{path}: not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}", file=str(path)
        ) from None
    del text
    problem = (
        validation_problem(document)
        or _unknown_certificate(document)
        or next(filter(None, (_like_problem(t, f"$.targets[{n}]") for n, t in enumerate(document["targets"]))), None)
    )
    if problem is not None:
        raise _not_a_report(path, problem)
    if document["schema_version"] == "1.0":
        _commands_out_of_evidence(document)
    try:
        return ReportDocument.from_dict(document)
    except ValueError as error:  # what the schema cannot say: a probe id that names no probe
        raise _not_a_report(path, _one_line(str(error))) from None


# How JsonReportWriter starts a report with targets, and what follows the last one.
_FIRST_LINE = f'{{"schema_version":{_dumps(SCHEMA_VERSION)},"targets":[\n'
_AFTER_TARGETS = '],"certificates":{'


def _read_line_by_line(path: Path, file: IO[str]) -> ReportDocument | None:
    """The report in ``file`` (just past its first line), or None when it is not laid
    out as the writer lays it out."""
    layout = _line_layout(path, file)
    if layout is None:
        return None
    try:
        targets = tuple(_targets_by_line(path, layout))
    except _NotLaidOut:
        return None  # the generic reader says where
    return ReportDocument(layout.scan, layout.summary, targets, SCHEMA_VERSION)


def _streamed_targets(path: Path, layout: _Layout) -> Iterator[TargetReport]:
    try:
        yield from _targets_by_line(path, layout)
    except _NotLaidOut as error:
        raise _not_a_report(path, f"at $.targets[{error.args[0]}]: not one JSON object per line") from None


class _NotLaidOut(Exception):
    """A target line that is not one JSON object after all."""


@dataclass(frozen=True)
class _Layout:
    """What follows a report's targets, which reading a target needs: the certificates
    table, the texts, and the scan (its check catalog gives the severities)."""

    scan: ScanInfo
    summary: Summary
    certificates: dict[str, CertificateSummary]
    texts: list[str]
    count: int  # target lines

    @property
    def severities(self) -> dict[str, Severity]:
        return self.scan.severities


def _line_layout(path: Path, file: IO[str]) -> _Layout | None:
    """First pass: the part after the targets (certificates, texts, scan, summary),
    validated, and how many target lines there are; None when the file is not laid
    out as the writer lays it out. The tables come after the targets, and a target
    needs them: the targets are read in a second pass."""
    count = 0
    for line in file:
        if line.startswith(_AFTER_TARGETS):
            break
        if not (line.startswith("{") and line.rstrip("\n").rstrip(",").endswith("}")):
            return None
        count += 1
    else:
        return None
    try:
        rest = json.loads("{" + line[len("],") :] + file.read())
    except json.JSONDecodeError:
        return None
    problem = validation_problem({"schema_version": SCHEMA_VERSION, "targets": [], **rest})
    if problem is not None:
        raise _not_a_report(path, problem)
    table = {
        sha256: CertificateSummary.from_dict({**entry, "sha256": sha256})
        for sha256, entry in rest["certificates"].items()
    }
    scan, summary = ScanInfo.from_dict(rest["scan"]), Summary.from_dict(rest["summary"])
    return _Layout(scan, summary, table, rest.get("texts") or [], count)


def _targets_by_line(path: Path, layout: _Layout) -> Iterator[TargetReport]:
    """Second pass: each target line, validated and typed, one at a time."""
    try:
        file = path.open(encoding="utf-8")
    except OSError as error:
        raise ReportError(f"{path}: cannot read report: {_one_line(str(error))}", file=str(path)) from None
    with file:
        file.readline()
        table, severities = layout.certificates, layout.severities
        for number in range(layout.count):
            try:
                target = json.loads(file.readline().rstrip("\n").rstrip(","))
            except json.JSONDecodeError:
                raise _NotLaidOut(number) from None
            problem = _problem(target, "target", f"$.targets[{number}]") or _like_problem(
                target, f"$.targets[{number}]"
            )
            if problem is not None:
                raise _not_a_report(path, problem)
            problem = _unknown_certificate({"targets": [target], "certificates": table})
            if problem is not None:
                raise _not_a_report(path, problem.replace("$.targets[0]", f"$.targets[{number}]", 1))
            try:
                yield TargetReport.from_dict(target, table, texts=layout.texts, severities=severities)
            except ValueError as error:
                raise _not_a_report(path, f"at $.targets[{number}]: {_one_line(str(error))}") from None


def _not_a_report(path: Path, problem: str) -> ReportError:
    return ReportError(f"{path}: not an mtls-audit {SCHEMA_VERSION} report: {problem}", file=str(path))


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
            evidence = finding.get("evidence") or {}
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


def _unknown_certificate(document: dict[str, Any]) -> str | None:
    """Where a target names a certificate the report's table does not hold (the one
    reference a JSON Schema cannot check), as one line; None when every name resolves."""
    table = document.get("certificates") or {}
    for number, target in enumerate(document["targets"]):
        for position, entry in enumerate(target["certificates"]):
            if isinstance(entry, str) and entry not in table:
                return f"at $.targets[{number}].certificates[{position}]: {entry} is not in the certificates table"
    return None


_LIKE_LISTS = (("probes", "probe", "probe"), ("identity_matrix", "matrixRow", "client"))


def _like_problem(target: dict[str, Any], root: str) -> str | None:
    """Where a probe or identity-matrix row written like an earlier one (1.3) is not
    a valid one once resolved, or names no earlier entry; None when all are. (The
    schema can only say that such an entry is an object with a ``like``.)"""
    for key, definition, name in _LIKE_LISTS:
        entries = target.get(key) or []
        if not any(LIKE in entry for entry in entries):
            continue
        try:
            resolved = like_decode(entries, dict, name)
        except ValueError as error:
            return f"at {root}.{key}: {_one_line(str(error))}"
        for number, (entry, whole) in enumerate(zip(entries, resolved, strict=True)):
            if LIKE in entry:
                problem = _problem(whole, definition, f"{root}.{key}[{number}]")
                if problem is not None:
                    return problem
    return None


def validation_problem(document: Any) -> str | None:
    """The first schema violation in ``document`` as one line, or None when it is valid."""
    return _problem(document)


def _problem(instance: Any, definition: str | None = None, root: str = "$") -> str | None:
    """The first violation of the schema (or of one of its ``$defs``) as one line.

    jsonschema-rs (compiled) answers "valid?" a few hundred times faster than the
    Python validator, which matters when merging 10,000 targets of shard reports;
    only for an invalid instance does the Python validator word the message, so
    messages stay those of ``best_match``."""
    if _fast_validator(definition).is_valid(instance):
        return None
    error = best_match(_validator(definition).iter_errors(instance))
    return None if error is None else _describe(error, root)


def _definition_schema(definition: str | None) -> dict[str, Any]:
    whole = schema()
    return whole if definition is None else {"$defs": whole["$defs"], "$ref": f"#/$defs/{definition}"}


@functools.cache
def _validator(definition: str | None = None) -> Draft202012Validator:
    """A validator for the whole report, or for one of its ``$defs`` (a target)."""
    return Draft202012Validator(_definition_schema(definition))


@functools.cache
def _fast_validator(definition: str | None = None) -> Any:
    return jsonschema_rs.Draft202012Validator(_definition_schema(definition))


def _describe(error: ValidationError, root: str = "$") -> str:
    where = root + error.json_path[1:] if error.path else root
    return _one_line(f"at {where}: {error.message}")


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
