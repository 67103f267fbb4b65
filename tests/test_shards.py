"""Shards: `scan --shard K/N` scans part of an inventory, `merge` joins the shard
reports into what an unsharded scan writes, and `scan --workers N` does both on one
machine. The equivalence tests run real shard processes side by side against the
lab and compare with one unsharded scan of the same inventory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from test_cli import assert_one_line_error, run_cli

from mtls_audit.reports.json_report import StreamedReport
from mtls_audit.scanner.cli.merge import MergeError, ShardReport, merge_shards
from mtls_audit.scanner.inventory.shards import parse_shard, select_shard, shard_of
from mtls_audit.scanner.model.report import ReportDocument, ScanInfo, Shard, Summary
from mtls_audit.scanner.model.target import Target

# The lab endpoints whose verdicts do not depend on timing, and the hosts that reach
# them: each endpoint twice (as 127.0.0.1 and as localhost), so shards are not tiny.
ENDPOINTS = ["strict", "optional", "no-client-auth", "any-ca", "tls12-allowed", "leaf-only", "wrong-san", "authz-cn"]


def _target(name: str, index: int = 0) -> Target:
    return Target(name=name, host="127.0.0.1", port=1, server_name="x", index=index)


# -- choosing shards ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [("0/1", Shard(0, 1)), ("2/7", Shard(2, 7)), (" 6 / 7 ", Shard(6, 7))])
def test_parse_shard(text: str, expected: Shard) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("7/7", "shard 7 does not exist in 7 shards"), ("1/0", "the shard count must be"), ("x", "expected K/N")],
)
def test_parse_shard_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_shard(text)


def test_every_target_is_in_exactly_one_shard_and_stays_there_when_others_come_and_go() -> None:
    names = [f"service-{i}.internal:8443" for i in range(500)]
    targets = [_target(name, i) for i, name in enumerate(names)]
    shards = [select_shard(targets, Shard(k, 7)) for k in range(7)]
    assert sorted(t.name for shard in shards for t in shard) == sorted(names)
    assert all(40 < len(shard) < 105 for shard in shards)  # the hash spreads them (71 each on average)
    before = {name: shard_of(name, 7) for name in names}
    grown = [*names[:100], "a-new-service:443", *names[100:]]
    assert {name: shard_of(name, 7) for name in grown if name in before} == before
    assert [t.index for t in shards[3]] == sorted(t.index for t in shards[3])  # inventory order


# -- merge refuses what is not one scan ----------------------------------------------


def _shard_document(index: int, count: int, names: list[str], **scan_changes) -> ReportDocument:
    start = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
    scan = ScanInfo(
        started=start + timedelta(minutes=index),
        finished=start + timedelta(minutes=10 + index),
        tool_version="1.0",
        inventory="inventory.yaml",
        options={"rounds": 2, "fail_on": "fail", "checks": ["tls13-only"]},
        inventory_sha256="ab" * 32,
        shard=Shard(index, count),
        targets_in_inventory=None,
    )
    scan = replace(scan, **scan_changes)
    return ReportDocument(scan=scan, summary=Summary(0, {}, {}), targets=())


def test_merge_refuses_a_report_that_is_not_a_shard() -> None:
    whole = replace(_shard_document(0, 1, []), scan=replace(_shard_document(0, 1, []).scan, shard=None))
    with pytest.raises(MergeError, match="whole.json: not a shard report"):
        merge_shards([ShardReport("whole.json", StreamedReport.of(whole))])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"inventory_sha256": "cd" * 32}, "inventories differ"),
        ({"options": {"rounds": 3, "fail_on": "fail", "checks": ["tls13-only"]}}, r"options \(rounds\) differ"),
        ({"tool_version": "2.0"}, "mtls-audit versions differ"),
        ({"shard": Shard(1, 3)}, "shard counts differ"),
    ],
)
def test_merge_refuses_shards_of_different_scans(change: dict, message: str) -> None:
    shards = [
        ShardReport("a.json", StreamedReport.of(_shard_document(0, 2, []))),
        ShardReport("b.json", StreamedReport.of(_shard_document(1, 2, [], **change))),
    ]
    with pytest.raises(MergeError, match=f"b.json is not a shard of the same scan as a.json: {message}"):
        merge_shards(shards)


def test_merge_names_the_missing_and_the_duplicate_shard() -> None:
    with pytest.raises(MergeError, match=r"shard 1/3 missing \(given: 0/3 \(a.json\), 2/3 \(c.json\)\)"):
        merge_shards(
            [
                ShardReport("a.json", StreamedReport.of(_shard_document(0, 3, []))),
                ShardReport("c.json", StreamedReport.of(_shard_document(2, 3, []))),
            ]
        )
    with pytest.raises(MergeError, match="shard 0/2 given twice: a.json and again.json"):
        merge_shards(
            [
                ShardReport("a.json", StreamedReport.of(_shard_document(0, 2, []))),
                ShardReport("again.json", StreamedReport.of(_shard_document(0, 2, []))),
            ]
        )


def test_merged_scan_spans_the_shards() -> None:
    merged = merge_shards([ShardReport(f"{k}.json", StreamedReport.of(_shard_document(k, 3, []))) for k in (2, 0, 1)])
    assert merged.scan.shard is None
    assert merged.scan.started == datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
    assert merged.scan.finished == datetime(2026, 12, 2, 3, 12, tzinfo=UTC)


# -- the real thing: shard processes side by side against the lab --------------------


def lab_inventory(path: Path, lab) -> Path:
    targets = []
    for endpoint in ENDPOINTS:
        port = lab.ports[endpoint]
        for host in ("127.0.0.1", "localhost"):
            targets.append(
                {"name": f"{host}/{endpoint}", "address": f"{host}:{port}", "server_name": lab.server_names[endpoint]}
            )
    inventory = {
        "defaults": {
            "trust": str(lab.directory / "pki" / "ca.pem"),
            "identity": {
                "cert": str(lab.directory / "pki" / "client.pem"),
                "key": str(lab.directory / "pki" / "client.key"),
            },
        },
        "targets": targets,
    }
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


_TIMING = re.compile(r"\d+(\.\d+)? ms")


def verdicts(report_path: Path) -> dict[str, dict[str, tuple[str, str]]]:
    """target -> check -> (status, summary without timings)."""
    document = json.loads(report_path.read_text())
    texts = document.get("texts", [])  # a summary findings repeat is an index there (1.3)

    def summary(finding: dict) -> str:
        text = finding["summary"]
        return _TIMING.sub("N ms", texts[text] if isinstance(text, int) else text)

    return {t["name"]: {f["check"]: (f["status"], summary(f)) for f in t["findings"]} for t in document["targets"]}


SCAN_FLAGS = ("--post-handshake-wait", "0.5", "--rounds", "1")


@pytest.fixture(scope="module")
def unsharded(lab_process, tmp_path_factory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("unsharded")
    inventory = lab_inventory(directory / "inventory.yaml", lab_process)
    result = run_cli("scan", str(inventory), "--json", str(directory / "all.json"), "--workers", "1", *SCAN_FLAGS)
    assert result.returncode == 1, result.stderr  # the lab has failing endpoints
    return inventory, directory / "all.json"


@pytest.mark.parametrize("count", [3, 7])
def test_merged_shards_equal_the_unsharded_scan(count: int, unsharded, tmp_path: Path) -> None:
    inventory, whole = unsharded
    names = [t["name"] for t in yaml.safe_load(inventory.read_text())["targets"]]
    sizes = [sum(1 for name in names if shard_of(name, count) == k) for k in range(count)]
    if count == 7:
        assert 0 in sizes, sizes  # the inventory was chosen so that one shard is empty
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mtls_audit.scanner.cli",
                "scan",
                str(inventory),
                "--shard",
                f"{k}/{count}",
                "--json",
                str(tmp_path / f"shard-{k}.json"),
                "--quiet",
                *SCAN_FLAGS,
            ],
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for k in range(count)
    ]
    for k, process in enumerate(processes):
        _, stderr = process.communicate(timeout=300)
        expected = 0 if sizes[k] == 0 else None
        assert process.returncode in (0, 1), stderr
        if expected is not None:
            assert process.returncode == expected, stderr
    for k in range(count):
        shard = json.loads((tmp_path / f"shard-{k}.json").read_text())
        assert shard["scan"]["shard"] == {"index": k, "count": count}
        assert len(shard["targets"]) == sizes[k]
    shard_files = [str(tmp_path / f"shard-{k}.json") for k in reversed(range(count))]  # any order
    result = run_cli("merge", *shard_files, "--json", str(tmp_path / "merged.json"), "--junit", str(tmp_path / "j.xml"))
    assert result.returncode == 1, result.stderr  # as the unsharded scan exits
    assert verdicts(tmp_path / "merged.json") == verdicts(whole)
    merged, reference = json.loads((tmp_path / "merged.json").read_text()), json.loads(whole.read_text())
    assert [t["name"] for t in merged["targets"]] == [t["name"] for t in reference["targets"]]  # inventory order
    assert merged["summary"] == reference["summary"]
    assert "shard" not in merged["scan"]
    assert "mtls-audit summary" in result.stdout


def test_merge_cli_refuses_a_missing_shard_in_one_line(unsharded, tmp_path: Path) -> None:
    inventory, _ = unsharded
    for k in (0, 2):
        result = run_cli(
            "scan", str(inventory), "--shard", f"{k}/3", "--json", str(tmp_path / f"{k}.json"), "-q", *SCAN_FLAGS
        )
        assert result.returncode in (0, 1), result.stderr
    result = run_cli("merge", str(tmp_path / "0.json"), str(tmp_path / "2.json"), "--json", str(tmp_path / "m.json"))
    assert_one_line_error(result, "shard 1/3 missing")
    assert not (tmp_path / "m.json").exists()


def test_workers_give_the_unsharded_verdicts(unsharded, tmp_path: Path) -> None:
    inventory, whole = unsharded
    result = run_cli("scan", str(inventory), "--workers", "2", "--json", str(tmp_path / "w.json"), *SCAN_FLAGS)
    assert result.returncode == 1, result.stderr
    assert verdicts(tmp_path / "w.json") == verdicts(whole)
    assert "[shard 1/2] done" in result.stderr
    # every target's progress line, passed on from its shard process
    progress = [line for line in result.stderr.splitlines() if re.match(r"\[shard [01]/2\] \[\d+/\d+\] ", line)]
    assert len(progress) == len(verdicts(whole)), result.stderr


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["--shard", "3/3"], "--shard: shard 3 does not exist in 3 shards"),
        (["--shard", "0/2", "--workers", "2"], "--shard and --workers: give one"),
    ],
)
def test_bad_shard_flags_are_one_line(unsharded, arguments: list[str], fragment: str) -> None:
    inventory, _ = unsharded
    assert_one_line_error(run_cli("scan", str(inventory), *arguments), fragment)


def test_shard_of_a_host_port_target_is_refused(tmp_path: Path, lab_process) -> None:
    result = run_cli(
        "scan", lab_process.address("strict"), "--ca", str(lab_process.directory / "pki" / "ca.pem"), "--shard", "0/2"
    )
    assert_one_line_error(result, "--shard splits an inventory file")


def test_default_workers_stay_within_cpus_targets_and_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    from mtls_audit.scanner.cli import workers

    monkeypatch.setattr(workers.os, "cpu_count", lambda: 64)
    assert workers.workers_for(None, 10_000, per_host=4) == 4  # no more connections per host than asked
    assert workers.workers_for(None, 10_000, per_host=256) == 64  # one per CPU
    assert workers.workers_for(None, 120, per_host=256) == 2  # 50 targets per worker at least
    assert workers.workers_for(None, 30, per_host=4) == 1
    assert workers.workers_for(8, 10_000, per_host=4) == 8  # asked for: as asked
    assert workers.workers_for(8, 3, per_host=4) == 3  # never more than the targets
