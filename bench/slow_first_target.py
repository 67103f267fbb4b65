"""Does one slow target make the scanner hoard memory? Prints its figures.

Scans 5,000 fast targets twice through the command line with every writer on (JSON,
HTML, JUnit, SIEM): once as they are, once behind a first target that takes 20 s (a
server that accepts TCP and never answers, probed with --handshake-timeout 20).
Results leave in inventory order, so everything finished behind the slow target must
wait; the reorder window bounds how much. The lab runs in a child process, and each
scan in its own process, so each peak RSS is the scanner's alone.

    .venv/bin/python bench/slow_first_target.py [--targets 5000] [--slow-seconds 20]
        [--cli "/path/to/other/venv/bin/mtls-audit"]   # measure another build
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
import yaml

CLI = [sys.executable, "-m", "mtls_audit.scanner.cli"]


async def serve_lab(directory: Path) -> None:
    from mtls_audit.scanner.lab.endpoints import demo_endpoints
    from mtls_audit.scanner.lab.pki import create_lab_pki
    from mtls_audit.scanner.lab.servers import ClientAuthMode, LabServerConfig, running_lab

    pki = create_lab_pki()
    pki.write(directory / "pki")
    strict = demo_endpoints(pki)[0].server
    silent = LabServerConfig("silent", strict.chain, strict.private_key, ClientAuthMode.SILENT)
    async with running_lab([strict, silent]) as ports:
        print(json.dumps(ports), flush=True)
        await trio.sleep_forever()


def inventory(path: Path, ports: dict[str, int], count: int, slow_first: bool) -> None:
    targets = [
        {"name": f"fast-{i:05d}", "address": f"127.0.0.1:{ports['strict']}", "server_name": f"t{i}.mtls-lab.test"}
        for i in range(count)
    ]
    if slow_first:
        targets.insert(0, {"name": "slow", "address": f"127.0.0.1:{ports['silent']}", "server_name": "slow.test"})
    document = {
        "defaults": {"trust": "pki/ca.pem", "identity": {"cert": "pki/client.pem", "key": "pki/client.key"}},
        "targets": targets,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def scan(cli: list[str], directory: Path, name: str, slow_seconds: float, concurrency: int) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit code) of one `mtls-audit scan` process."""
    out = directory / name
    out.mkdir()
    argv = [
        *cli, "scan", str(directory / f"{name}.yaml"), "--quiet",
        "--json", str(out / "report.json"), "--html", str(out / "report.html"),
        "--junit", str(out / "junit.xml"), "--siem", "ecs", "--siem-out", str(out / "events.ndjson"),
        "--concurrency", str(concurrency), "--per-host", str(concurrency),
        "--handshake-timeout", str(slow_seconds), "--post-handshake-wait", "1",
    ]  # fmt: skip
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # a child of its own, so RUSAGE_CHILDREN below is this scan alone
        completed = subprocess.run(argv, stdout=subprocess.DEVNULL)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        (out / "peak-kib").write_text(str(peak))
        os._exit(completed.returncode)
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - started
    return elapsed, int((out / "peak-kib").read_text()) / 1024, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=5000)
    parser.add_argument("--slow-seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--cli", help="the scanner command to measure (default: this checkout's)")
    parser.add_argument("--serve-lab", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_lab:
        trio.run(serve_lab, arguments.serve_lab)
        return

    directory = Path(tempfile.mkdtemp(prefix="mtls-audit-bench-"))
    lab = subprocess.Popen([sys.executable, __file__, "--serve-lab", str(directory)], stdout=subprocess.PIPE, text=True)
    try:
        assert lab.stdout is not None
        ports = json.loads(lab.stdout.readline())
        inventory(directory / "fast.yaml", ports, arguments.targets, slow_first=False)
        inventory(directory / "slow-first.yaml", ports, arguments.targets, slow_first=True)
        cli = shlex.split(arguments.cli) if arguments.cli else CLI
        figures = {
            name: scan(cli, directory, name, arguments.slow_seconds, arguments.concurrency)
            for name in ("fast", "slow-first")
        }
    finally:
        os.kill(lab.pid, signal.SIGTERM)
        lab.wait(timeout=10)

    print(f"targets              {arguments.targets} fast (+1 taking {arguments.slow_seconds:g} s first)")
    print(f"concurrency          {arguments.concurrency}; writers: JSON, HTML, JUnit, SIEM (ECS)")
    for name, (elapsed, peak, code) in figures.items():
        print(f"{name:<20} wall {elapsed:6.1f} s   peak RSS {peak:6.1f} MiB   exit {code}")
    fast, slow = figures["fast"][1], figures["slow-first"][1]
    print(f"peak RSS ratio       {slow / fast:.3f} (slow-first / fast)")
    for name in figures:
        sizes = {p.name: p.stat().st_size for p in (directory / name).iterdir() if p.name != "peak-kib"}
        print(f"{name:<20} " + "  ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(sizes.items())))


if __name__ == "__main__":
    main()
