"""Progress while a scan runs, on stderr so stdout keeps the summary.

On a terminal: one live bar (targets done / total, failing so far, ETA). Not on a
terminal (CI logs): one plain line per finished target. With --quiet: nothing.
"""

from __future__ import annotations

import sys
from typing import TextIO

from mtls_audit.scanner.model.report import TargetDigest
from mtls_audit.scanner.model.status import Status
from mtls_audit.scanner.model.text import printable

_FAILING = (Status.FAIL, Status.ERROR)


class ScanProgress:
    def __init__(self, total: int, *, quiet: bool, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.failing = 0
        self._stream = stream or sys.stderr
        self._mode = "off" if quiet else ("bar" if self._stream.isatty() else "lines")
        self._bar = None
        if self._mode == "bar":
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("scanning"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("targets, [red]{task.fields[failing]}[/red] failing"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=self._stream),
                transient=True,
            )
            self._task = self._bar.add_task("scan", total=total, failing=0)
            self._bar.start()

    def target_done(self, digest: TargetDigest) -> None:
        self.done += 1
        if digest.status in _FAILING:
            self.failing += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, failing=self.failing)
        elif self._mode == "lines":
            problems = [f"{f.check} ({f.status.value})" for f in digest.findings if f.status.failing]
            detail = f": {', '.join(problems)}" if problems else ""
            if digest.error:
                detail = f": could not be scanned: {digest.error}"
            line = f"[{self.done}/{self.total}] {digest.name} {digest.address} {digest.status.value.upper()}{detail}"
            print(printable(line), file=self._stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
