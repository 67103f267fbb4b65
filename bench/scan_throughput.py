"""How fast does a scan go, and how much memory does it hold? Prints its figures.

Runs the demo lab's nine loopback endpoints in a child process (so the lab's CPU
and memory are not counted against the scanner), then scans N targets spread over
them with every check enabled, streaming results the way `scan` does.

    .venv/bin/python bench/scan_throughput.py --targets 2000 --concurrency 64

Figures: wall time, targets/s, connections/s, the scanner's peak RSS, and whether
results left in inventory order. Loopback only; the child is stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

REPO = Path(__file__).resolve().parent.parent


async def serve_lab(directory: Path) -> None:
    from mtls_audit.scanner.lab.endpoints import demo_endpoints
    from mtls_audit.scanner.lab.pki import create_lab_pki
    from mtls_audit.scanner.lab.servers import running_lab

    pki = create_lab_pki()
    pki.write(directory / "pki")
    endpoints = demo_endpoints(pki)
    async with running_lab([e.server for e in endpoints]) as ports:
        names = {e.name: e.server_name for e in endpoints}
        print(json.dumps({"ports": ports, "server_names": names}), flush=True)
        await trio.sleep_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--per-host", type=int, default=32, help="all lab endpoints share 127.0.0.1")
    parser.add_argument("--serve-lab", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_lab:
        trio.run(serve_lab, arguments.serve_lab)
        return

    from mtls_audit.checks.registry import load_checks
    from mtls_audit.scanner.engine.engine import ScanOptions, scan
    from mtls_audit.scanner.inventory import target_from_command_line
    from mtls_audit.scanner.probe.prober import Timeouts

    directory = Path(tempfile.mkdtemp(prefix="mtls-audit-bench-"))
    lab = subprocess.Popen([sys.executable, __file__, "--serve-lab", str(directory)], stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(lab.stdout.readline())
        pki = directory / "pki"
        prototypes = [
            target_from_command_line(
                f"127.0.0.1:{port}",
                ca=pki / "ca.pem",
                cert=pki / "client.pem",
                key=pki / "client.key",
                server_name=info["server_names"][name],
            )
            for name, port in info["ports"].items()
        ]
        from dataclasses import replace

        targets = [
            replace(prototypes[i % len(prototypes)], name=f"target-{i:05d}", index=i) for i in range(arguments.targets)
        ]
        options = ScanOptions(
            timeouts=Timeouts(post_handshake=1.0), concurrency=arguments.concurrency, per_host=arguments.per_host
        )

        async def run() -> tuple[int, int, bool]:
            send, receive = trio.open_memory_channel(0)
            names, probes = [], 0
            async with trio.open_nursery() as nursery:
                nursery.start_soon(scan, targets, load_checks(), options, send)
                async for result in receive:
                    names.append(result.target.name)
                    probes += len(result.observations)
            return len(names), probes, names == [t.name for t in targets]

        started = time.perf_counter()
        done, probes, in_order = trio.run(run)
        elapsed = time.perf_counter() - started
    finally:
        os.kill(lab.pid, signal.SIGTERM)
        lab.wait(timeout=10)

    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"targets            {done}")
    print(f"connections        {probes}")
    print(f"concurrency        {arguments.concurrency} (per host {arguments.per_host})")
    print(f"wall time          {elapsed:.2f} s")
    print(f"targets/s          {done / elapsed:.1f}")
    print(f"connections/s      {probes / elapsed:.1f}")
    print(f"scanner peak RSS   {peak_kib / 1024:.1f} MiB")
    print(f"inventory order    {'kept' if in_order else 'NOT kept'}")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
