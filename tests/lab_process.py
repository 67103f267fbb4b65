"""Run the demo lab (plus misbehaving endpoints) in its own process, for tests that
drive the `mtls-audit` command line. Usage: python tests/lab_process.py DIR

Writes the lab PKI to DIR/pki, prints one JSON line {"name": port, ...} when the
servers listen, and serves until it is terminated (the tests stop it by PID).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import trio
from hostile_certificate import hostile_chain

from mtls_audit.scanner.lab.endpoints import demo_endpoints
from mtls_audit.scanner.lab.pki import create_lab_pki
from mtls_audit.scanner.lab.servers import ClientAuthMode, LabServerConfig, running_lab


async def main(directory: Path) -> None:
    pki = create_lab_pki()
    pki.write(directory / "pki")
    endpoints = demo_endpoints(pki)
    strict = endpoints[0].server
    extra = [
        LabServerConfig("silent", strict.chain, strict.private_key, ClientAuthMode.SILENT),
        LabServerConfig(
            "mute", strict.chain, strict.private_key, ClientAuthMode.MUTE_AFTER_HANDSHAKE, client_ca=strict.client_ca
        ),
    ]
    chain, key = hostile_chain(pki)
    extra.append(LabServerConfig("hostile", chain, key, ClientAuthMode.REQUIRED, client_ca=strict.client_ca))
    async with running_lab([e.server for e in endpoints] + extra) as ports:
        names = {e.name: e.server_name for e in endpoints}
        print(json.dumps({"ports": ports, "server_names": names}), flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]))
