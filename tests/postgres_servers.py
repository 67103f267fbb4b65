"""A real PostgreSQL (15, Debian's /usr/lib/postgresql/<version>/bin) for the
"Beyond HTTP/1.1" checks: TLS after the SSLRequest of the PostgreSQL protocol
(``openssl s_client -starttls postgres``), with the client certificate checked by
pg_hba.conf.

`running_postgres` makes a cluster with ``initdb`` in a fresh temp dir, writes
postgresql.conf (127.0.0.1 on a free port, the socket in the temp dir, ssl=on with
the protocol PKI's server certificate and, except in ``trust-no-ca``, the client CA
as ssl_ca_file) and one of three pg_hba.conf variants (`HBA_VARIANTS`):

- ``cert``: ``hostssl all all 127.0.0.1/32 cert``. The certificate's CN must equal
  the user name (no pg_ident map); the role ``payment`` exists, so the ``payment``
  identity logs in as user ``payment`` and nobody else does.
- ``scram-verify-full``: ``hostssl all all 127.0.0.1/32 scram-sha-256
  clientcert=verify-full``: a certificate from the client CA whose CN is the user
  name, and the role's password (`PostgresServer.password`).
- ``trust-no-ca``: ``hostssl all all 127.0.0.1/32 trust`` and no ssl_ca_file: the
  server never asks for a certificate; anyone on TLS gets in as any role.

TLS as observed (OpenSSL 3.0 in the server): a HelloRetryRequest for a client
offering an X25519 key share first (ssl_ecdh_curve defaults to prime256v1); no
session ticket (TLS 1.2 or 1.3); with a client CA, a CertificateRequest in the
handshake; a certificate from another CA gets alert 48 right after the client's
Finished (a client that writes its StartupMessage before reading may see only EOF);
no certificate completes TLS and then FATAL 28000 "connection requires a valid
client certificate" answers the StartupMessage.

There is no ``host``/``hostnossl`` line, so a connection without TLS is refused in
every variant. The bootstrap superuser ``postgres`` may connect only over the Unix
socket (``local ... trust``), which the fixture uses to create the role.

Under root (CI) everything runs as ``nobody`` (``setpriv``, which execs, so the PID
is the postmaster's) from a temp dir owned by ``nobody``: PostgreSQL refuses to run
as root and wants its key file owned by the server user, mode 0600. Stopped by PID
(SIGINT, fast shutdown, then `ServerProcess.stop`).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from identity_servers import IdentityPKI
from protocol_servers import UNPRIVILEGED_USER, ProtocolServer, directory_for_unprivileged, running_as_root
from real_servers import ServerProcess, free_port, require_binary

HBA_VARIANTS = ("cert", "scram-verify-full", "trust-no-ca")
ROLE = "payment"  # the CN of the PKI's valid client identity

_HBA_LINES = {
    "cert": "hostssl all all 127.0.0.1/32 cert",
    "scram-verify-full": "hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full",
    "trust-no-ca": "hostssl all all 127.0.0.1/32 trust",
}


def postgres_bindir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin with initdb and postgres; when
    there is none, `require_binary` skips (or fails, with MTLS_AUDIT_REQUIRE_SERVERS=1)
    naming the Debian package."""
    candidates = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "postgres").exists() and (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not candidates:
        require_binary("postgresql")  # never on PATH under that name: skips or fails
    return candidates[-1]


@dataclass(frozen=True)
class PostgresServer(ProtocolServer):
    """Besides `ProtocolServer`: the ``hba`` variant, the role to log in as (``user``,
    the valid identity's CN), its ``password`` (needed by ``scram-verify-full``),
    ``dbname`` and the Unix socket directory (superuser ``postgres``, trust)."""

    hba: str = "cert"
    user: str = ROLE
    password: str = field(default="", repr=False)
    dbname: str = "postgres"
    socket_dir: Path = Path()
    bindir: Path = Path()

    def conninfo(self, *, cert: Path | None = None, key: Path | None = None, sslmode: str = "verify-full") -> str:
        """A libpq connection string to 127.0.0.1 (the server name checked against the
        certificate's IP SAN), presenting ``cert``/``key`` when given."""
        parts = [
            f"host={self.host}",
            f"port={self.port}",
            f"user={self.user}",
            f"dbname={self.dbname}",
            f"sslmode={sslmode}",
            f"sslrootcert={self.server_ca}",
            "connect_timeout=10",
        ]
        if cert is not None and key is not None:
            parts += [f"sslcert={cert}", f"sslkey={key}"]
        else:
            # libpq would otherwise try ~/.postgresql/postgresql.crt.
            parts += ["sslcert=/nonexistent/client.crt", "sslkey=/nonexistent/client.key"]
        return " ".join(parts)


def _as_server_user(argv: list[str]) -> list[str]:
    """``argv`` as the unprivileged user when root (setpriv execs: same PID)."""
    if not running_as_root():
        return argv
    return [
        "setpriv", f"--reuid={UNPRIVILEGED_USER}", f"--regid={pwd.getpwnam(UNPRIVILEGED_USER).pw_gid}",
        "--clear-groups", "--", *argv,
    ]  # fmt: skip


def _copy_for_server(source: Path, destination: Path, mode: int) -> Path:
    shutil.copyfile(source, destination)
    destination.chmod(mode)
    if running_as_root():
        account = pwd.getpwnam(UNPRIVILEGED_USER)
        os.chown(destination, account.pw_uid, account.pw_gid)
    return destination


def _server_env(home: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LC_ALL": "C", "LANG": "C"}


def _postgresql_conf(port: int, root: Path, *, with_client_ca: bool) -> str:
    client_ca = f"ssl_ca_file = '{root / 'client-ca.pem'}'" if with_client_ca else "# no ssl_ca_file"
    return f"""
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{root}'
max_connections = 20
shared_buffers = 16MB
fsync = off
ssl = on
ssl_cert_file = '{root / "server.pem"}'
ssl_key_file = '{root / "server.key"}'
{client_ca}
password_encryption = 'scram-sha-256'
log_connections = on
log_line_prefix = '%m [%p] %e '
log_destination = 'stderr'
logging_collector = off
"""


@contextmanager
def running_postgres(pki: IdentityPKI, workdir: Path, *, hba: str = "cert") -> Iterator[PostgresServer]:
    """PostgreSQL with the ``hba`` variant (`HBA_VARIANTS`) on a free loopback port,
    the role ``payment`` created (with a random password); stopped by PID.
    ``workdir`` holds the log (``server.log``) and initdb's output."""
    if hba not in HBA_VARIANTS:
        raise ValueError(f"hba must be one of {HBA_VARIANTS}, not {hba!r}")
    bindir = postgres_bindir()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    password = "pw-" + secrets.token_urlsafe(12)
    with directory_for_unprivileged("mtls-audit-postgres-", owned=True) as root:
        data = root / "data"
        env = _server_env(root)
        initdb = subprocess.run(
            _as_server_user(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ]
            ),  # fmt: skip
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        (workdir / "initdb.log").write_text(initdb.stdout + initdb.stderr)
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed ({initdb.returncode}): {initdb.stdout}{initdb.stderr}")
        _copy_for_server(pki.pem("server"), root / "server.pem", 0o644)
        _copy_for_server(pki.key("server"), root / "server.key", 0o600)
        with_client_ca = hba != "trust-no-ca"
        if with_client_ca:
            _copy_for_server(pki.pem("client-ca"), root / "client-ca.pem", 0o644)
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(_postgresql_conf(port, root, with_client_ca=with_client_ca))
        (data / "pg_hba.conf").write_text(f"local all postgres trust\n{_HBA_LINES[hba]}\n")

        server = ServerProcess(_as_server_user([str(bindir / "postgres"), "-D", str(data)]), port, workdir)
        try:
            created = subprocess.run(
                _as_server_user(
                    [
                        str(bindir / "psql"),
                        "-X",
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-h",
                        str(root),
                        "-p",
                        str(port),
                        "-U",
                        "postgres",
                        "-d",
                        "postgres",
                        "-c",
                        f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'",
                    ]
                ),  # fmt: skip
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            if created.returncode != 0:
                raise RuntimeError(f"creating role {ROLE} failed: {created.stdout}{created.stderr}")
            yield PostgresServer(
                "127.0.0.1", port, server.pid, pki, server.log,
                hba=hba, password=password, socket_dir=root, bindir=bindir,
            )  # fmt: skip
        finally:
            # Fast shutdown (SIGTERM would wait for sessions to end), then the usual stop.
            if server.process.poll() is None:
                os.kill(server.pid, signal.SIGINT)
                try:
                    server.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            server.stop()
