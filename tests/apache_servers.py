"""Apache httpd asking for the client certificate only under ``/secure``: with TLS 1.3
by post-handshake authentication (PHA), with TLS 1.2 by renegotiation.

The server answers ``/`` to anyone and asks for a certificate only when a request
for ``/secure`` arrives (``SSLVerifyClient require`` in a ``<Location>``, none at
server level), so a scanner that only looks at the handshake sees no
CertificateRequest at all:

- TLS 1.3 (``protocol="TLSv1.3"``): a client that did not offer PHA
  (``post_handshake_auth`` extension) gets ``403`` for ``/secure``, whoever it is;
  one that did gets a CertificateRequest after the request, then ``200`` with a
  certificate from the client CA, alert 116 (certificate_required) without one,
  alert 48 (unknown_ca) with one from another CA.
- TLS 1.2 (``protocol="TLSv1.2"``): ``GET /secure`` makes the server send a
  HelloRequest; in the renegotiation handshake it sends a CertificateRequest, then
  answers ``200`` to a certificate from the client CA, alert 40
  (handshake_failure) to an empty Certificate and alert 48 (unknown_ca) to one from
  another CA, each after the client's Finished of the renegotiation; a client that
  refuses to renegotiate (``no_renegotiation`` warning) gets alert 40.

What the gRPC and PostgreSQL fixtures share with it is in `protocol_servers`.
"""

from __future__ import annotations

import pwd
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from identity_servers import IdentityPKI
from protocol_servers import UNPRIVILEGED_USER, ProtocolServer, directory_for_unprivileged, running_as_root
from real_servers import SERVER_NAME, ServerProcess, free_port, require_binary

APACHE_MODULES = Path("/usr/lib/apache2/modules")

# -- Apache httpd ----------------------------------------------------------------------

APACHE_PROTOCOLS = ("TLSv1.3", "TLSv1.2")


def apache_config(pki: IdentityPKI, workdir: Path, docroot: Path, port: int, *, protocol: str) -> Path:
    """Write ``workdir/httpd.conf`` (ServerRoot, PidFile, logs, runtime files all in
    ``workdir``; documents in ``docroot``) and return its path."""
    if protocol not in APACHE_PROTOCOLS:
        raise ValueError(f"protocol must be one of {APACHE_PROTOCOLS}, not {protocol!r}")
    (docroot / "index.html").write_text("ok\n")
    (docroot / "secure").write_text("secure ok\n")
    for document in (docroot / "index.html", docroot / "secure"):
        document.chmod(0o644)
    if running_as_root():
        account = pwd.getpwnam(UNPRIVILEGED_USER)
        group = f"#{account.pw_gid}"
        user_lines = f"User {UNPRIVILEGED_USER}\nGroup {group}"
    else:
        user_lines = ""
    modules = {
        "mpm_event_module": "mod_mpm_event.so",
        "authz_core_module": "mod_authz_core.so",
        "dir_module": "mod_dir.so",
        "mime_module": "mod_mime.so",
        "socache_shmcb_module": "mod_socache_shmcb.so",
        "ssl_module": "mod_ssl.so",
    }
    load = "\n".join(f"LoadModule {name} {APACHE_MODULES / so}" for name, so in modules.items())
    config = workdir / "httpd.conf"
    config.write_text(
        f"""
ServerRoot {workdir}
DefaultRuntimeDir {workdir}
PidFile {workdir}/httpd.pid
{load}
{user_lines}
ServerName {SERVER_NAME}
Listen 127.0.0.1:{port}
ErrorLog {workdir}/error.log
LogLevel info ssl:info
LogFormat "%h %t \\"%r\\" %>s %{{SSL_PROTOCOL}}x %{{SSL_CLIENT_S_DN}}x" mtls
CustomLog {workdir}/access.log mtls
StartServers 1
ServerLimit 1
ThreadsPerChild 8
MaxRequestWorkers 8
MinSpareThreads 1
MaxSpareThreads 16
Timeout 10
KeepAlive Off
TypesConfig /dev/null
DocumentRoot {docroot}
DirectoryIndex index.html
SSLSessionCache shmcb:{workdir}/ssl_scache(512000)
<Directory />
    Require all denied
</Directory>
<Directory {docroot}>
    Require all granted
</Directory>
<VirtualHost 127.0.0.1:{port}>
    ServerName {SERVER_NAME}
    SSLEngine on
    SSLProtocol -all +{protocol}
    SSLCertificateFile {pki.pem("server")}
    SSLCertificateKeyFile {pki.key("server")}
    SSLCACertificateFile {pki.pem("client-ca")}
    # No SSLVerifyClient here: only /secure asks for a certificate.
    <Location /secure>
        SSLVerifyClient require
        SSLVerifyDepth 2
    </Location>
</VirtualHost>
"""
    )
    return config


@contextmanager
def running_apache(pki: IdentityPKI, workdir: Path, *, protocol: str = "TLSv1.3") -> Iterator[ProtocolServer]:
    """Apache httpd (``/usr/sbin/apache2 -DFOREGROUND``) on a free loopback port,
    TLS pinned to ``protocol`` ("TLSv1.3": PHA, or "TLSv1.2": renegotiation), ``/``
    open to anyone, ``/secure`` behind ``SSLVerifyClient require``. Stopped by PID."""
    binary = require_binary("apache2")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with directory_for_unprivileged("mtls-audit-apache-") as docroot:
        config = apache_config(pki, workdir, docroot, port, protocol=protocol)
        server = ServerProcess([binary, "-DFOREGROUND", "-f", str(config)], port, workdir)
        try:
            yield ProtocolServer("127.0.0.1", port, server.pid, pki, workdir / "error.log")
        finally:
            server.stop()
