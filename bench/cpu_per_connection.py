"""Client CPU per TLS connection: mtls-audit, sslyze and `openssl s_time`, side by side.

    .venv/bin/python bench/cpu_per_connection.py [--targets 200] [--ports 10] [--s-time-seconds 10]
        [--repeat 5]                               # every tool 5 times, interleaved; medians
        [--cli "/other/venv/bin/mtls-audit"]      # measure another build
        [--baseline-cli "..."]                     # ...or one more build, in the same table
        [--sslyze PATH | --no-sslyze]              # default: see "sslyze" below
        [--profile scan.prof]                      # also one scan under cProfile (CPU clock)

One nginx process (Debian's `nginx`, `master_process off`, one worker, so one
process does all the server work) listens on ``--ports`` loopback ports with a
certificate from a PKI made at run time (EC P-256, like the scanner's own
credentials) and requires client certificates from a client CA (``ssl_verify_client
on``, TLS 1.2 and 1.3). The three tools run one after the other against it:

- **mtls-audit**: ``mtls-audit scan inventory.yaml --json ... --quiet --workers 1``
  over ``--targets`` targets spread across the ports, every check on, the real
  identity in the inventory (so: impostors, no certificate, TLS 1.0-1.3, HTTP probe).
- **sslyze** (the ``bench`` extra): ``--cert/--key`` for client auth, ``--certinfo``
  and every protocol-version scan command (SSL 2.0 to TLS 1.3, which enumerate the
  cipher suites), ``--mozilla_config disable``, against ``--sslyze-targets`` ports.
- **openssl s_time**: ``s_time -new -cert -key -time N`` (a full handshake per
  connection, no resumption), once with the default version (TLS 1.3: the reference
  for the ratios) and once with ``-tls1_2``.

CPU is the client's user + system time, from ``os.wait4`` on the tool's process
(its waited children included; nginx's time is not in it), for the whole run:
start-up, inventory, reports. Connections are counted on the server side, the same
way for all three tools: nginx's ``stub_status`` ``accepts`` counter (TCP accepts,
whatever the handshake did), read before and after each tool on a separate plain
HTTP port (the reading's own connection is subtracted). mtls-audit's count is
cross-checked against the probes in its JSON report that connected, s_time's against
the count it prints. The server's CPU per connection (from ``/proc``) is printed
too, to show how much work a connection was: most of sslyze's connections are cipher
suite probes the server turns down after the ClientHello (cheap for both sides), an
eighth of mtls-audit's are TLS 1.0/1.1 probes refused the same way, and s_time's
are all full handshakes with a client certificate.

On a shared machine CPU time is noisy (other processes evict caches): use
``--repeat`` and compare rows of the same run, not figures from different runs.
``nginx`` with ``ssl_verify_client on`` completes the handshake without a client
certificate and refuses at the HTTP layer (README, "How a server says no"), so
sslyze reports its client authentication as ``DISABLED``.

**sslyze** pins ``cryptography<47``, older than this project's, so it is not
installed next to mtls-audit: ``--sslyze PATH`` names its executable; without it
the script uses ``sslyze`` beside this interpreter if the ``bench`` extra is
installed, else a separate venv at ``--sslyze-venv`` (created with
``pip install 'sslyze>=6'`` on first use).

Loopback only. Every process started here is stopped by its PID.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtls_audit.reports.json_report import load_report

SERVER_NAME = "bench.mtls-lab.test"
CLI = [sys.executable, "-m", "mtls_audit.scanner.cli"]
DEFAULT_SSLYZE_VENV = Path(tempfile.gettempdir()) / "mtls-audit-bench-sslyze"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- PKI ------------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
    eku: list[x509.ObjectIdentifier] | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=3650 if ca else 200))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        usage = dict.fromkeys(
            ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement"),
            False,
        )
        builder = builder.add_extension(
            x509.KeyUsage(**usage, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True,
        )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signing_key, hashes.SHA256()), key


def write_pki(directory: Path) -> None:
    """server-ca.pem anchors the server; client-ca.pem is what nginx trusts for clients."""
    directory.mkdir(parents=True)
    server_ca = _issue("bench server CA", None, ca=True)
    client_ca = _issue("bench client CA", None, ca=True)
    server = _issue(
        SERVER_NAME,
        server_ca,
        ca=False,
        eku=[ExtendedKeyUsageOID.SERVER_AUTH],
        sans=[
            x509.DNSName(SERVER_NAME),
            x509.DNSName(f"*.{SERVER_NAME}"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ],
    )
    client = _issue(
        "bench-client",
        client_ca,
        ca=False,
        eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
        sans=[x509.UniformResourceIdentifier("spiffe://bench.test/client")],
    )

    def pem(*certificates: x509.Certificate) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    files = {
        "server-ca.pem": pem(server_ca[0]),
        "client-ca.pem": pem(client_ca[0]),
        "server.pem": pem(server[0]),
        "server.key": key_pem(server[1]),
        "client.pem": pem(client[0]),
        "client.key": key_pem(client[1]),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
        if name.endswith(".key"):
            (directory / name).chmod(0o600)


# -- the server -----------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Nginx:
    """One nginx process, no master: its PID is the process doing the TLS work."""

    def __init__(self, workdir: Path, pki: Path, ports: list[int], status_port: int) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            sys.exit("bench: needs nginx (Debian: apt-get install nginx)")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (workdir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        listens = "\n".join(f"        listen 127.0.0.1:{port} ssl;" for port in ports)
        (workdir / "nginx.conf").write_text(
            f"""
daemon off;
master_process off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log crit;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/tmp/body;
    proxy_temp_path {workdir}/tmp/proxy;
    fastcgi_temp_path {workdir}/tmp/fastcgi;
    uwsgi_temp_path {workdir}/tmp/uwsgi;
    scgi_temp_path {workdir}/tmp/scgi;
    server {{
{listens}
        server_name .{SERVER_NAME};
        ssl_certificate {pki}/server.pem;
        ssl_certificate_key {pki}/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_client_certificate {pki}/client-ca.pem;
        ssl_verify_client on;
        location / {{ return 200 "ok\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{status_port};
        location / {{ stub_status; }}
    }}
}}
"""
        )
        self.status_port = status_port
        self._log = (workdir / "nginx.out").open("wb")
        self.process = subprocess.Popen(
            [binary, "-e", str(workdir / "startup.log"), "-p", str(workdir), "-c", str(workdir / "nginx.conf")],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            if self.process.poll() is not None:
                sys.exit(f"bench: nginx exited: {(workdir / 'startup.log').read_text(errors='replace')}")
            try:
                self.accepts()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    sys.exit("bench: nginx did not come up within 10 s")
                time.sleep(0.05)

    def accepts(self) -> int:
        """nginx's accepted-connections counter, this reading's own connection included."""
        with socket.create_connection(("127.0.0.1", self.status_port), timeout=5) as connection:
            connection.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := connection.recv(4096):
                data += chunk
        match = re.search(rb"server accepts handled requests\s+(\d+)", data)
        if not match:
            raise OSError(f"unexpected stub_status answer: {data!r}")
        return int(match.group(1))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


# -- measuring ------------------------------------------------------------------------


@dataclass
class Run:
    tool: str
    wall: float
    user: float
    system: float
    connections: int
    server_cpu: float
    note: str = ""

    @property
    def cpu(self) -> float:
        return self.user + self.system

    @property
    def cpu_ms_per_connection(self) -> float:
        return 1000 * self.cpu / self.connections if self.connections else float("nan")

    @property
    def server_ms_per_connection(self) -> float:
        return 1000 * self.server_cpu / self.connections if self.connections else float("nan")


def measured(
    argv: list[str], output: Path, cwd: Path, env: dict[str, str] | None = None
) -> tuple[float, float, float, int]:
    """Run to completion: (wall s, user s, sys s of it and its waited children, exit code)."""
    with output.open("wb") as sink:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return wall, usage.ru_utime, usage.ru_stime, process.returncode


def run_tool(
    tool: str, argv: list[str], nginx: Nginx, workdir: Path, ok_codes: tuple[int, ...] = (0,)
) -> tuple[Run, Path]:
    output = workdir / f"{re.sub(r'[^a-z0-9]+', '-', tool.lower())}.out"
    before, server_before = nginx.accepts(), nginx.cpu_seconds()
    wall, user, system, code = measured(argv, output, workdir)
    after, server_after = nginx.accepts(), nginx.cpu_seconds()
    if code not in ok_codes:
        tail = output.read_text(errors="replace")[-3000:]
        sys.exit(f"bench: {tool} exited with {code}: {shlex.join(argv)}\n{tail}")
    return Run(tool, wall, user, system, after - before - 1, server_after - server_before), output


def write_inventory(arguments: argparse.Namespace, ports: list[int], workdir: Path) -> None:
    # Distinct names (the inventory refuses duplicates), all covered by the wildcard.
    targets = [
        {"name": f"t{i:04d}", "address": f"127.0.0.1:{ports[i % len(ports)]}", "server_name": f"t{i}.{SERVER_NAME}"}
        for i in range(arguments.targets)
    ]
    inventory = {
        "defaults": {"trust": "pki/server-ca.pem", "identity": {"cert": "pki/client.pem", "key": "pki/client.key"}},
        "targets": targets,
    }
    (workdir / "inventory.yaml").write_text(json.dumps(inventory, indent=1))  # JSON is YAML


def scan_options(arguments: argparse.Namespace, report: Path) -> list[str]:
    return [
        "--json",
        str(report),
        "--quiet",
        "--concurrency",
        str(arguments.concurrency),
        "--per-host",
        str(arguments.concurrency),  # every target is 127.0.0.1
        "--workers",
        str(arguments.workers),
    ]


def mtls_audit_run(tool: str, cli: list[str], arguments: argparse.Namespace, nginx: Nginx, workdir: Path) -> Run:
    report = workdir / "report.json"
    argv = [*cli, "scan", "inventory.yaml", *scan_options(arguments, report)]
    run, _ = run_tool(tool, argv, nginx, workdir, ok_codes=(0, 1))
    # Through the loader: from 1.3 a probe may be "like" an earlier one and leave out
    # what it shares with it (connected included).
    document = load_report(report)
    probes = [p for t in document.targets for p in t.probes]
    connected = sum(1 for p in probes if p.connected)
    statuses = sorted({t.status.value for t in document.targets})
    run.note = f"{len(document.targets)} targets, {len(probes)} probes ({connected} connected), status {statuses}"
    if connected != run.connections:
        run.note += f"; MISMATCH: nginx counted {run.connections}"
    return run


# cProfile on the process's CPU clock: its default wall clock would charge the time a
# busy machine spends running other processes to whatever function was on the stack.
# argv: the profile's output file, then the scan's arguments.
_PROFILED_SCAN = """
import cProfile, runpy, sys, time
output, sys.argv = sys.argv[1], ["mtls-audit", *sys.argv[2:]]
profile = cProfile.Profile(time.process_time)
try:
    profile.runcall(runpy.run_module, "mtls_audit.scanner.cli", run_name="__main__")
except SystemExit:
    pass
profile.dump_stats(output)
"""


def profile_scan(arguments: argparse.Namespace, workdir: Path) -> None:
    profiled = [sys.executable, "-c", _PROFILED_SCAN, str(arguments.profile.resolve()), "scan", "inventory.yaml"]
    profiled += scan_options(arguments, workdir / "profiled.json")
    measured(profiled, workdir / "profiled.out", workdir)
    print(f"profile of one scan written to {arguments.profile} (python -m pstats {arguments.profile})")


def sslyze_executable(arguments: argparse.Namespace) -> str:
    if arguments.sslyze:
        return arguments.sslyze
    beside = Path(sys.executable).parent / "sslyze"
    if beside.exists():
        return str(beside)
    venv = arguments.sslyze_venv
    executable = venv / "bin" / "sslyze"
    if not executable.exists():
        print(f"creating a venv for sslyze at {venv} (sslyze pins an older cryptography)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "sslyze>=6"], check=True)
    return str(executable)


def sslyze_run(arguments: argparse.Namespace, nginx: Nginx, ports: list[int], workdir: Path) -> Run:
    executable = sslyze_executable(arguments)
    servers = [f"{SERVER_NAME}:{port}{{127.0.0.1}}" for port in ports[: arguments.sslyze_targets]]
    pki = workdir / "pki"
    argv = [executable, "--cert", str(pki / "client.pem"), "--key", str(pki / "client.key")]
    argv += ["--certinfo", "--certinfo_ca_file", str(pki / "server-ca.pem")]
    argv += ["--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2", "--tlsv1_3"]
    argv += ["--mozilla_config", "disable", "--json_out", str(workdir / "sslyze.json"), "--quiet", *servers]
    run, _ = run_tool("sslyze", argv, nginx, workdir)
    document = json.loads((workdir / "sslyze.json").read_text())
    results = document.get("server_scan_results") or []
    auth = sorted({str((r.get("connectivity_result") or {}).get("client_auth_requirement")) for r in results})
    accepted = sorted(
        {
            name
            for r in results
            for name, attempt in (r.get("scan_result") or {}).items()
            if name.endswith("_cipher_suites") and (attempt.get("result") or {}).get("accepted_cipher_suites")
        }
    )
    run.note = f"{len(results)} servers, client auth {auth}, versions accepted {accepted}"
    return run


def s_time_run(
    arguments: argparse.Namespace, nginx: Nginx, port: int, workdir: Path, tool: str, version: str | None
) -> Run:
    pki = workdir / "pki"
    argv = ["openssl", "s_time", "-new", "-connect", f"127.0.0.1:{port}"]
    argv += ["-cert", str(pki / "client.pem"), "-key", str(pki / "client.key")]
    argv += ["-time", str(arguments.s_time_seconds)] + ([version] if version else [])
    run, output = run_tool(tool, argv, nginx, workdir)
    text = output.read_text(errors="replace")
    counts = [int(m) for m in re.findall(r"(\d+) connections in [\d.]+ real seconds", text)]
    printed = sum(counts)
    run.note = f"s_time printed {printed} connections" + ("" if printed == run.connections else " (MISMATCH)")
    return run


def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda run: run.cpu_ms_per_connection)[len(runs) // 2]


def print_table(runs_by_tool: dict[str, list[Run]], reference_tool: str) -> None:
    reference = median_run(runs_by_tool[reference_tool])
    header = (
        f"{'tool':<20} {'wall s':>7} {'CPU s':>7} {'user s':>7} {'sys s':>7} {'connections':>11} "
        f"{'CPU ms/conn':>11} {'(range)':>13} {'vs s_time':>9} {'server ms/conn':>14}"
    )
    print(header)
    print("-" * len(header))
    for tool, runs in runs_by_tool.items():
        run = median_run(runs)
        spread = [r.cpu_ms_per_connection for r in runs]
        ratio = run.cpu_ms_per_connection / reference.cpu_ms_per_connection
        span = f"{min(spread):.2f}-{max(spread):.2f}" if len(runs) > 1 else ""
        print(
            f"{tool:<20} {run.wall:>7.2f} {run.cpu:>7.2f} {run.user:>7.2f} {run.system:>7.2f} "
            f"{run.connections:>11} {run.cpu_ms_per_connection:>11.3f} {span:>13} {ratio:>8.2f}x "
            f"{run.server_ms_per_connection:>14.3f}"
        )
    print()
    for tool, runs in runs_by_tool.items():
        note = median_run(runs).note
        if note:
            print(f"{tool}: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=200, help="mtls-audit inventory size")
    parser.add_argument("--ports", type=int, default=10, help="nginx listening ports (targets spread over them)")
    parser.add_argument("--concurrency", type=int, default=32, help="mtls-audit --concurrency (and --per-host)")
    parser.add_argument("--workers", type=int, default=1, help="mtls-audit --workers (1: one process)")
    parser.add_argument("--cli", help="the mtls-audit command to measure (default: this interpreter's)")
    parser.add_argument("--baseline-cli", help="another mtls-audit command, measured alongside (e.g. an older build)")
    parser.add_argument("--repeat", type=int, default=1, help="run every tool this often; the median is shown")
    parser.add_argument("--s-time-seconds", type=int, default=10)
    parser.add_argument("--sslyze", help="the sslyze executable (default: beside this Python, or --sslyze-venv)")
    parser.add_argument("--sslyze-venv", type=Path, default=DEFAULT_SSLYZE_VENV)
    parser.add_argument("--sslyze-targets", type=int, default=2, help="ports sslyze scans")
    parser.add_argument("--no-sslyze", action="store_true")
    parser.add_argument("--profile", type=Path, help="also run the scan once under cProfile, writing this file")
    arguments = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="mtls-audit-cpu-bench-"))
    write_pki(workdir / "pki")
    *ports, status_port = free_ports(arguments.ports + 1)
    write_inventory(arguments, ports, workdir)
    nginx = Nginx(workdir / "nginx", workdir / "pki", ports, status_port)
    runs: dict[str, list[Run]] = {}
    clis = {"mtls-audit": shlex.split(arguments.cli) if arguments.cli else CLI}
    if arguments.baseline_cli:
        clis["mtls-audit baseline"] = shlex.split(arguments.baseline_cli)
    try:
        for _ in range(arguments.repeat):  # interleaved, so a busy moment hits every tool alike
            for tool, cli in clis.items():
                runs.setdefault(tool, []).append(mtls_audit_run(tool, cli, arguments, nginx, workdir))
            if not arguments.no_sslyze:
                runs.setdefault("sslyze", []).append(sslyze_run(arguments, nginx, ports, workdir))
            for label, version in (("s_time (TLS 1.3)", None), ("s_time -tls1_2", "-tls1_2")):
                runs.setdefault(label, []).append(s_time_run(arguments, nginx, ports[0], workdir, label, version))
        if arguments.profile:
            profile_scan(arguments, workdir)
    finally:
        nginx.stop()
    print(
        f"CPU = user + sys of the tool's process; connections = nginx accepts; {os.cpu_count()} CPUs; "
        f"median of {arguments.repeat}; load average {os.getloadavg()[0]:.1f}"
    )
    print_table(runs, "s_time (TLS 1.3)")
    print(f"work directory: {workdir}")


if __name__ == "__main__":
    main()
