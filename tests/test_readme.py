"""The README's examples must stay true: its inventory loads, its commands exist."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from mtls_audit.scanner.inventory import load_inventory
from mtls_audit.scanner.model.target import AppProtocol, ClientAuthExpectation

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_readme_inventory_example_loads(tmp_path: Path, lab_pki, monkeypatch):
    example = re.search(r"```yaml\n(defaults:.*?)```", README, re.S).group(1)
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.pem").write_bytes(lab_pki.root.certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "pki" / "client.pem").write_bytes(lab_pki.client.certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "pki" / "client.key").write_bytes(
        lab_pki.client.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"readme-password"),
        )
    )
    (tmp_path / "inventory.yaml").write_text(example)
    monkeypatch.setenv("CLIENT_KEY_PASSWORD", "readme-password")
    targets = load_inventory(tmp_path / "inventory.yaml")
    names = [t.name for t in targets]
    assert names == ["payments-api", "127.0.0.1:9443", "public-docs", "ledger-grpc", "ledger-db"]
    docs = targets[2]
    assert docs.client_auth is ClientAuthExpectation.NONE
    assert docs.app_protocol is AppProtocol.NONE
    assert docs.disabled_checks == frozenset({"expiry-soon"})
    assert targets[0].identity is not None and targets[0].tags == ("staging",)
    grpc, postgres = targets[3:]
    assert (grpc.app_protocol, grpc.grpc_service) == (AppProtocol.GRPC, "bank.Ledger")
    assert (postgres.app_protocol, postgres.postgres_user, postgres.postgres_database) == (
        AppProtocol.POSTGRES,
        "ledger",
        "ledger",
    )


def test_readme_setup_commands_match_ci():
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    test_command = re.search(r"Run the tests.*?```sh\n(.*?)\n```", README, re.S).group(1)
    assert test_command in ci
    assert "mtls-audit demo" in re.search(r"```sh\n(.*?)\n```", README, re.S).group(1)


def test_readme_shows_the_siem_mapping_table_the_code_uses():
    from mtls_audit.reports.siem.writer import mapping_table_markdown

    assert mapping_table_markdown() in README


def test_readme_screenshot_exists():
    assert "docs/report.png" in README
    assert (Path(__file__).parent.parent / "docs" / "report.png").stat().st_size > 10_000


def test_readme_waivers_example_loads(tmp_path: Path):
    from mtls_audit.scanner.triage.waivers import load_waivers

    example = re.search(r"```yaml\n(waivers:.*?)```", README, re.S).group(1)
    (tmp_path / "waivers.yaml").write_text(example)
    waivers = load_waivers(tmp_path / "waivers.yaml", known_checks=["tls13-only"])
    assert waivers.report(date(2027, 1, 1)).unused[0].target == "legacy-*"


def test_readme_plugin_example_is_a_working_check(tmp_path: Path, monkeypatch):
    """The plugin in the README, written to a module of its own and judged on
    hand-built observations: it imports only the documented API."""
    from observation_builders import accepted_with_ticket, evidence, make_target, spec, version_refused

    from mtls_audit.checks import Check, Presented, Status, TLSVersion

    source = re.search(r"```python\n(# my_checks/no_tls12.py.*?)```", README, re.S).group(1)
    imports = {line for line in source.splitlines() if line.startswith(("from ", "import "))}
    assert imports == {line for line in imports if line.startswith("from mtls_audit.checks import ")}
    (tmp_path / "readme_no_tls12.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    import readme_no_tls12

    check = readme_no_tls12.CHECK
    assert isinstance(check, Check) and check.id == "no-tls12"
    speaks_12 = evidence(make_target(), accepted_with_ticket(spec(Presented.VALID, TLSVersion.TLS1_2)))
    refuses_12 = evidence(make_target(), version_refused(spec(Presented.VALID, TLSVersion.TLS1_2)))
    assert check.evaluate(speaks_12).status is Status.FAIL
    assert check.evaluate(refuses_12).status is Status.PASS


def test_readme_identities_example_loads(tmp_path: Path, monkeypatch):
    """The "Who gets in" inventory, with real files behind every path."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import pkcs12

    from mtls_audit.scanner.credentials.factory import CLIENT_AUTH, common_name, issue
    from mtls_audit.scanner.model.target import Expect

    example = re.search(r"```yaml\n(identities:.*?)```", README, re.S).group(1)
    pki = tmp_path / "pki"
    pki.mkdir()
    ca = issue(common_name("issuing CA"), is_ca=True)

    def client(name: str, path: str) -> None:
        issued = issue(
            common_name(name),
            issuer=ca,
            subject_alternative_names=[x509.UniformResourceIdentifier(f"spiffe://svc/{name}")],
            extended_key_usages=[CLIENT_AUTH],
        )
        (pki / f"{path}.pem").write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))
        (pki / f"{path}.key").write_bytes(_pem_key(issued.private_key))

    client("payment", "payment")
    client("payment", "payment-revoked")
    web = issue(common_name("web"), issuer=ca, extended_key_usages=[CLIENT_AUTH])
    (pki / "web.p12").write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"web", web.private_key, web.certificate, None, serialization.BestAvailableEncryption(b"p12-pw")
        )
    )
    (pki / "issuing-ca.pem").write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    (pki / "issuing-ca.key").write_bytes(_pem_key(ca.private_key))
    (pki / "ca.pem").write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "inventory.yaml").write_text(example)
    monkeypatch.setenv("WEB_P12_PASSWORD", "p12-pw")

    (ledger,) = load_inventory(tmp_path / "inventory.yaml")
    assert ledger.server_identity == "spiffe://svc/ledger" and not ledger.match_server_name
    assert ledger.identity is not None and ledger.identity.name == "payment"
    assert ledger.issuer is not None and ledger.issuer.certificate == ca.certificate
    assert [(r.name, r.request, r.expect) for r in ledger.access] == [
        ("payment", "POST /transfer", Expect.ALLOW),
        ("web", "POST /transfer", Expect.DENY),
        ("retired-payment", None, Expect.DENY),
    ]
    assert ledger.access[1].identity.pkcs12


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
