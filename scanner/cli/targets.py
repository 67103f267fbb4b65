"""What to scan: an inventory file (or one shard of it), or one HOST:PORT given with
--ca/--cert/--key."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtls_audit.scanner.inventory import load_inventory, target_from_command_line
from mtls_audit.scanner.inventory.shards import select_shard
from mtls_audit.scanner.model.errors import UserError
from mtls_audit.scanner.model.report import Shard
from mtls_audit.scanner.model.target import AppProtocol, Target


@dataclass(frozen=True)
class Selection:
    """The targets to scan and where they came from, as the report records it."""

    targets: list[Target]
    inventory: str | None  # the file, None for HOST:PORT
    inventory_sha256: str | None = None
    targets_in_inventory: int | None = None
    shard: Shard | None = None

    def scan_facts(self) -> dict[str, Any]:
        """The ScanInfo fields that say what was scanned."""
        return {
            "inventory_sha256": self.inventory_sha256,
            "targets_in_inventory": self.targets_in_inventory,
            "shard": self.shard,
        }


def selection_from(source: str, options: dict[str, Any], known_checks: list[str], shard: Shard | None) -> Selection:
    """The targets of ``source`` (the ``shard`` of them, if given)."""
    targets, inventory = targets_from(source, options, known_checks)
    if inventory is None:
        if shard is not None:
            raise UserError("--shard splits an inventory file, not one HOST:PORT target", field="--shard")
        return Selection(targets, None)
    digest = hashlib.sha256(Path(inventory).read_bytes()).hexdigest()
    chosen = select_shard(targets, shard) if shard is not None else targets
    return Selection(chosen, inventory, digest, len(targets), shard)


_ADHOC_FLAGS = ("ca", "cert", "key", "pkcs12", "server_name", "key_password_env", "probe")


def targets_from(source: str, options: dict[str, Any], known_checks: list[str]) -> tuple[list[Target], str | None]:
    """The targets, and the inventory file they came from (None for HOST:PORT)."""
    path = Path(source)
    adhoc = [flag for flag in _ADHOC_FLAGS if options.get(flag)]
    if path.is_file():
        if adhoc:
            names = ", ".join("--" + flag.replace("_", "-") for flag in adhoc)
            raise UserError(f"{names} apply to a HOST:PORT target, not to an inventory file ({source})")
        return list(load_inventory(path, known_checks=known_checks)), str(path)
    if options.get("ca") is None:
        if source.endswith((".yaml", ".yml", ".json")) or "/" in source:
            raise UserError(f"{source}: inventory file not found", file=source)
        raise UserError(f"{source}: not an inventory file; a HOST:PORT target needs --ca (and usually --cert/--key)")
    target = target_from_command_line(
        source,
        ca=options["ca"],
        cert=options.get("cert"),
        key=options.get("key"),
        pkcs12=options.get("pkcs12"),
        server_name=options.get("server_name"),
        password_env=options.get("key_password_env"),
        app_protocol=AppProtocol(options.get("probe") or AppProtocol.HTTP.value),
    )
    return [target], None
