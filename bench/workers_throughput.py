"""Targets per second for one scan process and for `--workers N`. Prints its figures.

Starts one nginx (C, cheap per handshake, so the server is not what is measured)
on a loopback port, requiring client certificates on TLS 1.3, with a PKI made for
the run; writes an inventory of N targets (distinct server names on that port);
then runs `mtls-audit scan` as a child process once per worker count and prints
wall time, targets/s, connections, the scan's CPU seconds (all its processes) and
CPU ms per connection.

    .venv/bin/python bench/workers_throughput.py --targets 2000 --workers 1 2

Loopback only; nginx is stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


def write_inventory(directory: Path, port: int, count: int) -> Path:
    import yaml

    targets = [
        {"name": f"svc-{i:05d}", "address": f"127.0.0.1:{port}", "server_name": f"svc-{i:05d}.mtls.test"}
        for i in range(count)
    ]
    document = {
        "defaults": {
            "trust": str(directory / "pki" / "ca.pem"),
            "identity": {"cert": str(directory / "pki" / "client.pem"), "key": str(directory / "pki" / "client.key")},
        },
        "targets": targets,
    }
    path = directory / "inventory.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def run_scan(inventory: Path, workers: int, out: Path, concurrency: int) -> dict[str, float]:
    argv = [
        str(REPO / ".venv" / "bin" / "mtls-audit"), "scan", str(inventory), "--quiet", "--workers", str(workers),
        "--json", str(out), "--concurrency", str(concurrency), "--per-host", str(concurrency),
        "--post-handshake-wait", "0.5",
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode not in (0, 1, 3):
        raise SystemExit(f"scan failed ({completed.returncode}): {completed.stderr[-500:]}")
    document = json.loads(out.read_text())
    connections = sum(len(target["probes"]) for target in document["targets"])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"targets": len(document["targets"]), "wall": wall, "cpu": cpu, "connections": connections}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, default=64)
    arguments = parser.parse_args()
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        raise SystemExit("nginx is not installed (Debian: apt-get install nginx)")

    from real_servers import ServerProcess, free_port, nginx_serving, write_test_pki

    directory = Path(tempfile.mkdtemp(prefix="mtls-audit-workers-bench-"))
    pki = write_test_pki(directory / "pki")
    port = free_port()
    (directory / "nginx").mkdir()
    argv = nginx_serving(
        directory / "nginx",
        port,
        certificate=pki.path("server-fullchain.pem"),
        key=pki.path("server.key"),
        client_ca=pki.path("ca.pem"),
    )
    # nginx_serving writes a test-sized config; a bench needs more connections.
    config = directory / "nginx" / "nginx.conf"
    config.write_text(config.read_text().replace("worker_connections 64;", "worker_connections 4096;"))
    server = ServerProcess(argv, port, directory / "nginx")
    try:
        inventory = write_inventory(directory, port, arguments.targets)
        rows = []
        for workers in arguments.workers:
            rows.append((workers, run_scan(inventory, workers, directory / f"w{workers}.json", arguments.concurrency)))
    finally:
        server.stop()
    print(f"{arguments.targets} targets on one nginx port (TLS 1.3, client certificate required), "
          f"--concurrency {arguments.concurrency}, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'workers':>8} {'wall s':>8} {'targets/s':>10} {'connections':>12} {'CPU s':>8} {'CPU ms/conn':>12}")
    for workers, row in rows:
        print(
            f"{workers:>8} {row['wall']:>8.1f} {row['targets'] / row['wall']:>10.1f} {row['connections']:>12} "
            f"{row['cpu']:>8.1f} {1000 * row['cpu'] / row['connections']:>12.2f}"
        )


if __name__ == "__main__":
    main()
