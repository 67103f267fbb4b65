"""`openssl s_server` that sends KeyUpdate(update_requested) after every TLS 1.3
handshake and again before it answers, with the client certificate optional; run as
``python tests/keyupdate_server.py OPENSSL PKI_DIR``. Prints ``{"port": N}`` when it
listens; stopped by PID (it stops its s_server child on SIGTERM).

s_server takes commands on stdin: a line ``K`` sends a KeyUpdate that requests one
back, any other line is sent to the client as is. This wrapper types them.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"


def main(openssl: str, pki: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            openssl,
            "s_server",
            "-accept",
            f"127.0.0.1:{port}",
            "-tls1_3",
            "-verify",
            "1",
            "-cert",
            str(pki / "server-leaf.pem"),
            "-key",
            str(pki / "server.key"),
            "-cert_chain",
            str(pki / "intermediate.pem"),
            "-CAfile",
            str(pki / "ca.pem"),
        ],  # fmt: skip
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    signal.signal(signal.SIGTERM, lambda *_: (server.kill(), sys.exit(0)))
    assert server.stdin is not None and server.stdout is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    print(json.dumps({"port": port}), flush=True)
    for line in server.stdout:
        if line.startswith(b"CIPHER is"):  # a handshake just completed
            server.stdin.write(b"K\n")
        elif line.startswith(b"GET "):  # the request line: update keys again, then answer
            server.stdin.write(b"K\n")
            server.stdin.flush()
            time.sleep(0.02)
            server.stdin.write(RESPONSE)
        server.stdin.flush()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
