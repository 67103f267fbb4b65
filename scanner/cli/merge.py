"""Merging the reports of a sharded scan (``scan --shard K/N``) into the report an
unsharded scan of the same inventory would have written.

Every target is judged on its own, so the merged findings are the shards' findings;
what merging adds is refusal: shards of different inventories, option sets, tools or
shard counts, a shard given twice, or a shard missing, are one clear line each and
never a silently partial report.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mtls_audit.reports.json_report import StreamedReport
from mtls_audit.scanner.model.errors import UserError
from mtls_audit.scanner.model.report import BaselineReport, ScanInfo, TargetReport, WaiverReport

# Options that differ between the shards of one scan by design.
_PER_SHARD_OPTIONS = frozenset({"shard", "workers"})


class MergeError(UserError):
    """Shard reports that do not make up one scan."""


@dataclass(frozen=True)
class ShardReport:
    source: str  # how messages name it: the file given on the command line
    report: StreamedReport

    @property
    def scan(self) -> ScanInfo:
        return self.report.scan


@dataclass(frozen=True)
class MergedScan:
    """The merged scan, and its targets to stream to the writers in inventory order
    (one target per shard in memory at a time)."""

    scan: ScanInfo
    targets: Iterator[TargetReport]


def merge_shards(shards: Sequence[ShardReport]) -> MergedScan:
    """One scan from the reports of every shard of one scan, targets in inventory order."""
    if not shards:
        raise MergeError("merge needs the shard reports to merge")
    for shard in shards:
        if shard.scan.shard is None:
            raise MergeError(
                f"{shard.source}: not a shard report (its scan has no shard); merge takes the JSON reports "
                "of `mtls-audit scan INVENTORY --shard K/N`"
            )
    first = shards[0]
    for shard in shards[1:]:
        _same_scan(first, shard)
    count = _shard_count(first)
    by_index: dict[int, ShardReport] = {}
    for shard in shards:
        index = _shard_index(shard)
        if index in by_index:
            raise MergeError(f"shard {index}/{count} given twice: {by_index[index].source} and {shard.source}")
        by_index[index] = shard
    missing = [index for index in range(count) if index not in by_index]
    if missing:
        names = ", ".join(f"{index}/{count}" for index in missing)
        have = ", ".join(f"{index}/{count} ({by_index[index].source})" for index in sorted(by_index))
        raise MergeError(f"shard {names} missing (given: {have}); merge needs all {count} shards of the scan")

    scans = [shard.scan for shard in shards]
    scan = replace(
        first.scan,
        started=min(s.started for s in scans),
        finished=max((s.finished for s in scans if s.finished is not None), default=None),
        options={k: v for k, v in first.scan.options.items() if k not in _PER_SHARD_OPTIONS},
        shard=None,
        waivers=_merged_waivers(scans),
        baseline=_merged_baseline(scans),
    )
    return MergedScan(scan, _counted(_in_inventory_order(shards), first.scan.targets_in_inventory))


def _shard_count(shard: ShardReport) -> int:
    assert shard.scan.shard is not None  # checked by merge_shards
    return shard.scan.shard.count


def _shard_index(shard: ShardReport) -> int:
    assert shard.scan.shard is not None  # checked by merge_shards
    return shard.scan.shard.index


def _same_scan(first: ShardReport, other: ShardReport) -> None:
    """Refuse ``other`` unless it is a shard of the same scan as ``first``."""

    def differ(what: str, mine: Any, theirs: Any) -> MergeError:
        return MergeError(
            f"{other.source} is not a shard of the same scan as {first.source}: {what} differ ({theirs} vs {mine})"
        )

    a, b = first.scan, other.scan
    if _shard_count(first) != _shard_count(other):
        raise differ("shard counts", _shard_count(first), _shard_count(other))
    if a.inventory_sha256 != b.inventory_sha256:
        raise differ("inventories", _short(a.inventory_sha256), _short(b.inventory_sha256))
    if a.tool_version != b.tool_version:
        raise differ("mtls-audit versions", a.tool_version, b.tool_version)
    if first.report.schema_version != other.report.schema_version:
        raise differ("report schema versions", first.report.schema_version, other.report.schema_version)
    mine = {k: v for k, v in a.options.items() if k not in _PER_SHARD_OPTIONS}
    theirs = {k: v for k, v in b.options.items() if k not in _PER_SHARD_OPTIONS}
    if mine != theirs:
        changed = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        name = changed[0]
        raise differ(f"options ({', '.join(changed)})", f"{name}={mine.get(name)!r}", f"{name}={theirs.get(name)!r}")
    if [c.id for c in a.checks] != [c.id for c in b.checks]:
        raise differ("checks", ",".join(c.id for c in a.checks), ",".join(c.id for c in b.checks))


def _short(digest: str | None) -> str:
    return f"inventory sha256 {digest[:12]}…" if digest else "no inventory digest"


def _in_inventory_order(shards: Sequence[ShardReport]) -> Iterator[TargetReport]:
    # Each shard is in inventory order already: merge, don't sort.
    return heapq.merge(*(shard.report.targets() for shard in shards), key=lambda target: target.index)


def _counted(targets: Iterator[TargetReport], expected: int | None) -> Iterator[TargetReport]:
    count = 0
    for target in targets:
        count += 1
        yield target
    if expected is not None and count != expected:
        raise MergeError(
            f"the shards hold {count} targets, but their inventory has {expected}: "
            "were they scanned from different versions of it?"
        )


def _merged_waivers(scans: Sequence[ScanInfo]) -> WaiverReport | None:
    """Expired anywhere is expired; unused means unused by every shard (a waiver one
    shard did not need may have matched a target of another)."""
    reports = [s.waivers for s in scans if s.waivers is not None]
    if not reports:
        return None
    expired = {w: None for r in reports for w in r.expired}
    unused = [w for w in reports[0].unused if all(w in r.unused for r in reports[1:])]
    return WaiverReport(reports[0].file, tuple(expired), tuple(unused))


def _merged_baseline(scans: Sequence[ScanInfo]) -> BaselineReport | None:
    """A baseline target is missing from the scan only if every shard missed it."""
    reports = [s.baseline for s in scans if s.baseline is not None]
    if not reports:
        return None
    missing = [t for t in reports[0].missing_targets if all(t in r.missing_targets for r in reports[1:])]
    return BaselineReport(reports[0].file, tuple(missing))
