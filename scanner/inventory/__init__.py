"""The inventory: the YAML (or JSON) file of endpoints to audit, loaded into Targets.

Modules: ``loader`` (document to Targets), ``document`` (reading and parsing the
file), ``fields`` (the settings' parsers), ``addresses`` (``host:port`` and server
names), ``credential_cache`` (trust and identity files, each loaded once), ``keys``
(the keys allowed where), ``command_line`` (one target from flags), ``errors``.
"""

from mtls_audit.scanner.inventory.addresses import parse_address
from mtls_audit.scanner.inventory.command_line import target_from_command_line
from mtls_audit.scanner.inventory.errors import InventoryError
from mtls_audit.scanner.inventory.loader import load_inventory

__all__ = ["InventoryError", "load_inventory", "parse_address", "target_from_command_line"]
