"""Which reports a run writes, and the writers that produce them.

`scan`, `report` (re-rendering a saved JSON) and `demo` all describe their
outputs with one ``Outputs`` value, so every report is made the same way
whichever command asked for it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SIEM_FLAVORS = ("ecs", "ocsf")


@dataclass(frozen=True)
class Outputs:
    json: Path | None = None
    html: Path | None = None
    junit: Path | None = None
    siem: str | None = None  # "ecs" | "ocsf"
    siem_out: str | None = None  # a path, or "-" for stdout
    fail_on: str = "fail"  # JUnit: with "warn", warnings are failures too

    @property
    def siem_to_stdout(self) -> bool:
        return self.siem is not None and self.siem_out == "-"

    def problem(self) -> str | None:
        """A usage error in the combination of options, or None."""
        if (self.siem is None) != (self.siem_out is None):
            return "--siem and --siem-out go together (e.g. --siem ecs --siem-out findings.ndjson)"
        return None

    def writers(self, *, include_json: bool = True) -> list[Any]:
        from mtls_audit.reports.html.writer import HtmlReportWriter
        from mtls_audit.reports.json_report import JsonReportWriter
        from mtls_audit.reports.junit import JunitReportWriter
        from mtls_audit.reports.siem.writer import SiemWriter

        writers: list[Any] = []
        if include_json and self.json is not None:
            writers.append(JsonReportWriter(self.json))
        if self.html is not None:
            writers.append(HtmlReportWriter(self.html))
        if self.junit is not None:
            writers.append(JunitReportWriter(self.junit, fail_on=self.fail_on))
        if self.siem is not None and self.siem_out is not None:
            destination = sys.stdout if self.siem_out == "-" else Path(self.siem_out)
            writers.append(SiemWriter(destination, self.siem))
        return writers

    def written(self) -> list[tuple[str, str]]:
        """(kind, where) for each file written, for the closing lines of the console."""
        files = [("JSON", self.json), ("HTML", self.html), ("JUnit", self.junit)]
        listed = [(kind, str(path)) for kind, path in files if path is not None]
        if self.siem is not None and self.siem_out not in (None, "-"):
            listed.append((f"SIEM ({self.siem.upper()} NDJSON, appended)", str(self.siem_out)))
        return listed


def render_saved(document: dict[str, Any], outputs: Outputs) -> None:
    """Re-render a saved JSON report through the streaming writers, without the network."""
    writers = outputs.writers(include_json=False)
    for writer in writers:
        writer.start()
    for target in document["targets"]:
        for writer in writers:
            writer.add(target)
    for writer in writers:
        writer.finish(document["scan"], document["summary"])
