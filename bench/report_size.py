"""How big is the JSON report per target, and how much memory does a scan hold with
every writer on? Prints its figures.

Runs the demo lab's endpoints in a child process (so the lab's CPU and memory are
not counted against the scanner) and scans N targets spread over them through the
command line, with every writer on: JSON, HTML, JUnit, SIEM (ECS), and SARIF when
this build has it. ``--mix plain`` (the default) gives each target the inventory's
trust and identity; ``--mix demo`` is the demo's inventory (the issuer's minted
copies, access rules on the authz endpoints). The scan runs in a process of its own,
so its peak RSS is the scanner's alone.

    .venv/bin/python bench/report_size.py [--targets 10000] [--mix plain|demo]
        [--workers N] [--no-sarif] [--concurrency 64]
        [--keep DIR]   # keep the reports (default: a temporary directory, removed)

Figures: report.json bytes per target (and the part that is the targets alone: the
lab's targets share a dozen server chains, a real inventory has a leaf per target),
each writer's file size, the scanner's peak RSS, wall time and exit code. The goals
(issue: 10,000 targets): at most 8 KB per target, peak RSS under 300 MB. With
--workers above 1 (scan's default on a multi-core machine for big inventories) the
peak is the process that merges the shards' reports.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
import yaml

CLI = [sys.executable, "-m", "mtls_audit.scanner.cli"]
PER_TARGET_GOAL = 8 * 1024
RSS_GOAL_MIB = 300


async def serve_lab(directory: Path) -> None:
    from mtls_audit.scanner.cli.demo import P12_PASSWORD_ENV, write_inventory
    from mtls_audit.scanner.lab.endpoints import demo_endpoints
    from mtls_audit.scanner.lab.pki import create_lab_pki
    from mtls_audit.scanner.lab.servers import running_lab

    pki = create_lab_pki()
    pki.write(directory / "pki", os.environ[P12_PASSWORD_ENV].encode())
    endpoints = demo_endpoints(pki)
    async with running_lab([e.server for e in endpoints]) as ports:
        write_inventory(directory / "lab.yaml", endpoints, ports)
        print("ready", flush=True)
        await trio.sleep_forever()


def inventory(directory: Path, count: int, mix: str) -> Path:
    """The demo's inventory with its targets repeated until there are ``count``.

    ``plain``: each target with the inventory's trust and client identity only (the
    probes of every scan: our identity per version, no certificate, rogue CA,
    self-signed). ``demo``: the demo's inventory as it is, with the issuer (five
    issuer-minted copies and a control per target) and the authz endpoints' access
    rules: about twice the probes per target."""
    document = yaml.safe_load((directory / "lab.yaml").read_text())
    if mix == "plain":
        del document["issuer"]
        document["identities"] = {"lab-client": document["identities"]["lab-client"]}
        for entry in document["targets"]:
            entry.pop("access", None)
    lab = document["targets"]
    document["targets"] = [
        # An inventory may not list one address and server name twice, and the lab has
        # a port per endpoint: the copies differ by server name, so san-match fails on
        # every one (a failing finding is the larger kind).
        entry | {"name": f"{entry['name']}-{i:05d}", "server_name": f"t{i:05d}.{entry['server_name']}"}
        for i, entry in ((i, lab[i % len(lab)]) for i in range(count))
    ]
    path = directory / "inventory.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def has_sarif(cli: list[str]) -> bool:
    completed = subprocess.run([*cli, "scan", "--help"], capture_output=True, text=True)
    return "--sarif" in completed.stdout


def scan(
    cli: list[str], inventory_path: Path, out: Path, concurrency: int, extra: list[str]
) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit code) of one `mtls-audit scan` command: the
    peak of its largest process (with --workers, of the scan's shard processes and
    the one merging their reports)."""
    argv = [
        *cli, "scan", str(inventory_path), "--quiet",
        "--json", str(out / "report.json"), "--html", str(out / "report.html"),
        "--junit", str(out / "junit.xml"), "--siem", "ecs", "--siem-out", str(out / "events.ecs.ndjson"),
        "--concurrency", str(concurrency), "--per-host", str(concurrency), "--post-handshake-wait", "1",
    ]  # fmt: skip
    argv += extra
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # a child of its own, so RUSAGE_CHILDREN below is this scan alone
        completed = subprocess.run(argv, stdout=subprocess.DEVNULL)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        (inventory_path.parent / "peak-kib").write_text(str(peak))
        os._exit(completed.returncode)
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - started
    return elapsed, int((inventory_path.parent / "peak-kib").read_text()) / 1024, os.waitstatus_to_exitcode(status)


def json_figures(path: Path) -> dict[str, float]:
    """Bytes per target of the report, of the targets alone and of their parts, and the
    certificate table."""
    text = path.read_bytes()
    document = json.loads(text)
    count = max(len(document["targets"]), 1)

    def size(value: object) -> int:
        return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())

    parts: dict[str, int] = {}
    for target in document["targets"]:
        for key, value in target.items():
            parts[key] = parts.get(key, 0) + len(key) + 4 + size(value)
    table = document.get("certificates") or {}
    first = next(iter(table.values()), None)  # the first target's leaf
    return {
        "targets": len(document["targets"]),
        "per_target": len(text) / count,
        "targets_part": sum(size(t) + 2 for t in document["targets"]) / count,
        **{f"part {key}": value / count for key, value in parts.items()},
        "certificates": len(table),
        "certificate_table": size(table),
        "certificate_entry": size(first) + 68 if first else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument(
        "--mix", choices=("plain", "demo"), default="plain", help="what each target is (see inventory())"
    )
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, help="passed on to scan (default: scan's own default)")
    parser.add_argument("--no-sarif", action="store_true", help="leave SARIF out even when this build has it")
    parser.add_argument("--cli", help="the scanner command to measure (default: this checkout's)")
    parser.add_argument("--keep", type=Path, help="write the reports here and keep them")
    parser.add_argument("--serve-lab", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_lab:
        trio.run(serve_lab, arguments.serve_lab)
        return

    from mtls_audit.scanner.cli.demo import P12_PASSWORD_ENV

    directory = Path(tempfile.mkdtemp(prefix="mtls-audit-bench-"))
    os.environ[P12_PASSWORD_ENV] = secrets.token_urlsafe(16)  # the lab child and the scan read it
    out = arguments.keep or directory / "reports"
    out.mkdir(parents=True, exist_ok=True)
    lab = subprocess.Popen([sys.executable, __file__, "--serve-lab", str(directory)], stdout=subprocess.PIPE, text=True)
    try:
        assert lab.stdout is not None
        lab.stdout.readline()  # "ready": the inventory is written, the endpoints listen
        inventory_path = inventory(directory, arguments.targets, arguments.mix)
        cli = shlex.split(arguments.cli) if arguments.cli else CLI
        extra = ["--workers", str(arguments.workers)] if arguments.workers else []
        if has_sarif(cli) and not arguments.no_sarif:
            extra += ["--sarif", str(out / "report.sarif")]
        elapsed, peak, code = scan(cli, inventory_path, out, arguments.concurrency, extra)
    finally:
        os.kill(lab.pid, signal.SIGTERM)
        lab.wait(timeout=10)

    try:
        if not (out / "report.json").exists():
            print(f"scan exited {code} after {elapsed:.1f} s without a report.json (peak RSS {peak:.1f} MiB)")
            return
        figures = json_figures(out / "report.json")
        print(f"targets              {figures['targets']:.0f} ({arguments.mix} mix of the demo lab's endpoints)")
        workers = arguments.workers or "scan's default"
        print(f"concurrency          {arguments.concurrency}; workers {workers}; wall {elapsed:.1f} s; exit {code}")
        for path in sorted(out.iterdir()):
            print(
                f"  {path.name:<22} {path.stat().st_size / 1e6:9.2f} MB  {path.stat().st_size / arguments.targets:8.0f} B/target"
            )
        per_target = figures["per_target"]
        print(
            f"report.json          {per_target:.0f} B/target ({'within' if per_target <= PER_TARGET_GOAL else 'OVER'} 8 KB)"
        )
        print(f"  targets alone      {figures['targets_part']:.0f} B/target, of which:")
        parts = sorted(((k[5:], v) for k, v in figures.items() if k.startswith("part ")), key=lambda kv: -kv[1])
        rest = sum(value for _, value in parts[5:])
        print("    " + ", ".join(f"{key} {value:.0f}" for key, value in parts[:5]) + f", the rest {rest:.0f}")
        print(
            f"  certificate table  {figures['certificates']:.0f} distinct, {figures['certificate_table']:.0f} B;"
            f" a leaf of its own per target would add ~{figures['certificate_entry']:.0f} B/target"
        )
        print(f"scanner peak RSS     {peak:.1f} MiB ({'under' if peak < RSS_GOAL_MIB else 'NOT under'} 300 MB)")
    finally:
        if arguments.keep is None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
