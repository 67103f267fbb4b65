"""Splitting an inventory into shards that separate processes (a Kubernetes
Indexed Job, a CI matrix, ``--workers``) scan independently.

A target's shard is a stable hash of its name, not its position: adding or removing
one target moves no other target to another shard, so shard reports stay
comparable from night to night.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from mtls_audit.scanner.model.report import Shard
from mtls_audit.scanner.model.target import Target

_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
MAX_SHARDS = 10_000


def parse_shard(text: str) -> Shard:
    """``"2/7"`` -> Shard(2, 7): shard 2 (0-based) of 7. ValueError says what is wrong."""
    match = _SPEC.fullmatch(text)
    if not match:
        raise ValueError(f"expected K/N such as 0/3 (shard K, counted from 0, of N), got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= count <= MAX_SHARDS:
        raise ValueError(f"the shard count must be 1 to {MAX_SHARDS}, got {count}")
    if index >= count:
        raise ValueError(f"shard {index} does not exist in {count} shards (they are 0 to {count - 1})")
    return Shard(index, count)


def shard_of(name: str, count: int) -> int:
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select_shard(targets: Sequence[Target], shard: Shard) -> list[Target]:
    """The targets of ``shard``, in inventory order."""
    return [target for target in targets if shard_of(target.name, shard.count) == shard.index]
