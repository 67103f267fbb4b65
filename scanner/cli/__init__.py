"""The `mtls-audit` command line: the only place that wires the scanner together."""

from mtls_audit.scanner.cli.commands import main

__all__ = ["main"]
