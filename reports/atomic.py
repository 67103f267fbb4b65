"""Report files that appear under their final name only when complete.

A crash or Ctrl-C mid-scan must never leave a truncated report where a CI job or
a dashboard would read it, so every writer fills a hidden temporary file in the
same directory and renames it into place (atomic on POSIX).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


class AtomicFile:
    def __init__(self, path: Path, *, binary: bool = False) -> None:
        self.path = Path(path)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent)
        # mkstemp makes 0600; a report is no secret, so give it the usual mode.
        os.fchmod(fd, 0o666 & ~_umask())
        self._temp = Path(name)
        self.file: IO = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="\n")

    def commit(self) -> Path:
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self._temp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        self._temp.unlink(missing_ok=True)


def write_atomically(path: Path, data: str | bytes) -> Path:
    target = AtomicFile(path, binary=isinstance(data, bytes))
    try:
        target.file.write(data)
    except BaseException:
        target.abort()
        raise
    return target.commit()
