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
    assert [t.name for t in targets] == ["payments-api", "127.0.0.1:9443", "public-docs"]
    docs = targets[2]
    assert docs.client_auth is ClientAuthExpectation.NONE
    assert docs.app_protocol is AppProtocol.NONE
    assert docs.disabled_checks == frozenset({"expiry-soon"})
    assert targets[0].identity is not None and targets[0].tags == ("staging",)


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
