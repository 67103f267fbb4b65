"""Per-target data parked on disk until a report can be assembled.

An HTML page or a JUnit file can only be written once every target is known (the
page's header counts them, the JUnit root wraps them), but a scan of 10,000 targets
must not hold 10,000 reports in memory until then. A writer appends one record per
target to a ``SpillFile`` as the target arrives, keeps only small aggregates itself,
and reads the records back, in order, while it assembles the final file.

The spill file is a hidden temporary file in the destination's directory (the same
place ``AtomicFile`` puts the report itself, so it is on a disk the report fits on),
readable only by its owner, and ``discard()`` removes it. A record is any JSON value
(an XML fragment as a string, a target as a dict), stored as one line of ASCII JSON:
newlines, line separators and lone surrogates in attacker-controlled text are
escaped on the way out and come back exactly as they were.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class SpillFile:
    def __init__(self, destination: Path) -> None:
        destination = Path(destination)
        fd, name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".spill", dir=destination.parent)
        self.path = Path(name)
        self._file = os.fdopen(fd, "w+", encoding="utf-8", newline="\n")
        self.records = 0

    def append(self, record: Any) -> None:
        """Park one record at the end."""
        self._file.write(json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n")
        self.records += 1

    def __iter__(self) -> Iterator[Any]:
        """Every record in the order it was appended; reading again starts over."""
        self._file.flush()
        with open(self.path, encoding="ascii", newline="\n") as reader:
            for line in reader:
                yield json.loads(line)

    def discard(self) -> None:
        """Close and delete the file; safe to call more than once."""
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


class SpillingWriter:
    """The lifecycle shared by the writers that park targets in a ``SpillFile``:
    ``start`` opens it, ``add`` and ``finish`` need it open, ``finish`` and ``abort``
    delete it, and nothing is ever written under ``path`` before ``finish``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._spill: SpillFile | None = None
        self._done = False

    def _open_spill(self) -> None:
        if self._spill is not None or self._done:
            raise RuntimeError(f"{type(self).__name__}.start() called twice")
        self._spill = SpillFile(self.path)

    def _parked(self) -> SpillFile:
        if self._spill is None:
            state = "finished or aborted" if self._done else "not started"
            raise RuntimeError(f"{type(self).__name__} is {state}")
        return self._spill

    def abort(self) -> None:
        """Drop the parked targets."""
        self._close()

    def _close(self) -> None:
        if self._spill is not None:
            self._spill.discard()
            self._spill = None
        self._done = True
