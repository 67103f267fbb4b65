"""The one error an inventory raises, and the field-level error its parsers raise."""

from __future__ import annotations

from mtls_audit.scanner.model.errors import UserError


class InventoryError(UserError):
    """A problem in the inventory, as one line: file, target, field, reason."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        target: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message, file=source, target=target, field=field)
        self.source = source


class FieldError(Exception):
    """A problem with one field; the loader turns it into an InventoryError naming the
    file and the target."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason
