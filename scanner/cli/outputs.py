"""Which reports a run writes, the writers that produce them, and whether they can be
written at all, checked before the first connection.

`scan`, `report` (re-rendering a saved JSON) and `demo` all describe their outputs
with one ``Outputs`` value, so every report is made the same way whichever command
asked for it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mtls_audit.reports.html.writer import HtmlReportWriter
from mtls_audit.reports.json_report import JsonReportWriter
from mtls_audit.reports.junit import JunitReportWriter
from mtls_audit.reports.sarif import SarifReportWriter
from mtls_audit.reports.siem.writer import SiemWriter
from mtls_audit.reports.writer import ReportWriter
from mtls_audit.scanner.model.errors import UserError

SIEM_FLAVORS = ("ecs", "ocsf")


class OutputPathError(UserError):
    """A report path that cannot be written; found before anything is scanned."""


@dataclass(frozen=True)
class Report:
    """A writer and the report it makes, named as the user asked for it."""

    kind: str  # "JSON", "HTML", "JUnit", "SIEM (ECS NDJSON, appended)"
    where: str  # the path given, or "stdout"
    writer: ReportWriter


@dataclass(frozen=True)
class Outputs:
    json: Path | None = None
    html: Path | None = None
    junit: Path | None = None
    siem: str | None = None  # "ecs" | "ocsf"
    siem_out: str | None = None  # a path, or "-" for stdout
    fail_on: str = "fail"  # JUnit: with "warn", warnings are failures too
    sarif: Path | None = None

    @property
    def siem_to_stdout(self) -> bool:
        return self.siem is not None and self.siem_out == "-"

    def files(self) -> list[tuple[str, Path]]:
        """(flag, path) of every file this run writes."""
        files = [("--json", self.json), ("--html", self.html), ("--junit", self.junit), ("--sarif", self.sarif)]
        listed = [(flag, path) for flag, path in files if path is not None]
        if self.siem is not None and self.siem_out not in (None, "-"):
            listed.append(("--siem-out", Path(str(self.siem_out))))
        return listed

    def check(self) -> None:
        """Raise OutputPathError for the first output that cannot be written: a report
        that fails after an hour of scanning is an hour lost, and a half-written set
        of reports misleads whoever reads them."""
        if (self.siem is None) != (self.siem_out is None):
            raise OutputPathError("--siem and --siem-out go together (e.g. --siem ecs --siem-out findings.ndjson)")
        seen: dict[Path, str] = {}
        for flag, path in self.files():
            # resolve(): `r.json`, `./sub/../r.json` and a symlinked directory are one file.
            resolved = path.resolve()
            if resolved in seen:
                raise OutputPathError(f"{flag} {path}: the same file as {seen[resolved]}", field=flag)
            seen[resolved] = flag
            problem = unwritable(path, append=flag == "--siem-out")
            if problem:
                raise OutputPathError(f"{flag} {path}: {problem}", file=str(path), field=flag)

    def reports(self, *, include_json: bool = True) -> list[Report]:
        reports: list[Report] = []
        if include_json and self.json is not None:
            reports.append(Report("JSON", str(self.json), JsonReportWriter(self.json)))
        if self.html is not None:
            reports.append(Report("HTML", str(self.html), HtmlReportWriter(self.html)))
        if self.junit is not None:
            reports.append(Report("JUnit", str(self.junit), JunitReportWriter(self.junit, fail_on=self.fail_on)))
        if self.sarif is not None:
            reports.append(Report("SARIF", str(self.sarif), SarifReportWriter(self.sarif)))
        if self.siem is not None and self.siem_out is not None:
            kind = f"SIEM ({self.siem.upper()} NDJSON, appended)"
            if self.siem_out == "-":
                reports.append(Report(kind, "stdout", SiemWriter(sys.stdout, self.siem)))
            else:
                reports.append(Report(kind, self.siem_out, SiemWriter(Path(self.siem_out), self.siem)))
        return reports


def unwritable(path: Path, *, append: bool = False) -> str | None:
    """Why a report cannot be written at ``path``, or None. Nothing is left behind.

    ``append``: the report is appended to the file in place (SIEM events); the others
    are written beside it and renamed over it, so they need a regular file or none.
    """
    parent = path.parent  # "." for a bare file name
    try:
        if path.is_dir():
            return "is a directory; give a file name"
        blocking = _first_file_in(parent)
        if blocking is not None:
            return f"{blocking} is a file, not a directory"
        if not parent.exists():
            return f"directory {parent} does not exist"
        if not append and path.exists() and not path.is_file():
            # Renaming a report over /dev/null or a FIFO would replace the device.
            return "is not a regular file; give a file name"
    except OSError as error:  # a directory on the way that may not be searched
        return f"cannot look at {error.filename or path}: {error.strerror or error}"
    # Reports are written to a temporary file beside the destination and renamed
    # into place, so what matters is whether the directory takes a new file.
    try:
        with tempfile.TemporaryFile(dir=parent, prefix=".mtls-audit-check."):
            pass
    except OSError as error:
        return f"cannot write in directory {parent}: {error.strerror or error}"
    if append and path.exists() and not os.access(path, os.W_OK):
        return "exists and cannot be appended to (permission denied)"
    return None


def _first_file_in(parent: Path) -> Path | None:
    """The first component of ``parent`` that is a file (``a/b.txt`` in ``a/b.txt/c``)."""
    for candidate in reversed((parent, *parent.parents)):
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return None
