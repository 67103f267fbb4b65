"""The inventory: the YAML (or JSON) file of endpoints to audit, loaded into Targets."""

from mtls_audit.scanner.inventory.loader import InventoryError, load_inventory, parse_address, target_from_command_line

__all__ = ["InventoryError", "load_inventory", "parse_address", "target_from_command_line"]
