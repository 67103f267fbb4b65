"""The one kind of error a user fixes: bad input, named by file, target and field.

Everything the user hands the scanner (inventory, certificates, keys, waivers, a
baseline, flags, output paths) fails with a ``UserError`` subclass whose message
is one line. The command line turns any of them into that line and exit code 2
in one place; messages never carry key material or passwords.
"""

from __future__ import annotations


class UserError(Exception):
    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        target: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.file = file
        self.target = target
        self.field = field
