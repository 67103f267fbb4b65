"""The fast paths in inventory.addresses give exactly what the step-by-step checks give."""

from __future__ import annotations

import ipaddress
import random

import pytest

from mtls_audit.scanner.inventory import addresses

TRICKY = [
    "api.internal:8443",
    "API.Internal.:443",
    "a..b:443",
    "a.:1",
    ".a:1",
    "-a:1",
    "a-:1",
    "_a_:1",
    "host:0",
    "host:00443",
    "host:000443",
    "host:65535",
    "host:65536",
    "host:99999",
    "host:",
    ":443",
    "host:4x3",
    "host:१२",
    "10.0.0.1:443",
    "010.0.0.1:443",
    "[::1]:443",
    "[::1]443",
    "::1:443",
    "host:443\n",
    " host:443",
    "hö st:443",
    "höst:443",
    "http://host:443",
    "",
]


def outcome(function, value):
    try:
        return ("ok", function(value))
    except ValueError as error:
        return ("error", str(error))


def random_strings(alphabet: str, count: int, seed: int) -> list[str]:
    generator = random.Random(seed)
    return ["".join(generator.choice(alphabet) for _ in range(generator.randint(0, 12))) for _ in range(count)]


def host_port_strings(count: int, seed: int) -> list[str]:
    """Mostly well-formed: a host from name characters, a colon, a port of 0-6 digits."""
    generator = random.Random(seed)
    return [
        "".join(generator.choice("aZ1.-_") for _ in range(generator.randint(0, 8)))
        + ":"
        + "".join(generator.choice("0123456789") for _ in range(generator.randint(0, 6)))
        for _ in range(count)
    ]


CANDIDATES = TRICKY + random_strings("ab1.:-_[]0 /x9", 2000, seed=1) + host_port_strings(2000, seed=4)


@pytest.mark.parametrize("chunk", range(4))
def test_parse_address_fast_path_matches_the_checks(chunk: int) -> None:
    for text in CANDIDATES[chunk::4]:
        step_by_step = outcome(addresses._parse_address_step_by_step, text)
        assert outcome(addresses.parse_address, text) == step_by_step, text


def test_check_server_name_fast_path_matches_the_checks() -> None:
    def step_by_step(value):
        # the checks as they were before the fast path
        if not isinstance(value, str) or not value:
            raise ValueError("bad")
        if any(ch.isspace() for ch in value) or "/" in value or (":" in value and not addresses._is_ipv6(value)):
            raise ValueError("bad")
        return value

    for value in [*CANDIDATES, "::1", "2001:db8::1", "a:b", None, 5]:
        expected = outcome(step_by_step, value)
        got = outcome(addresses.check_server_name, value)
        assert got[0] == expected[0], value
        if got[0] == "ok":
            assert got[1] == value


def test_normal_host_matches_parsing_every_host() -> None:
    def by_parsing(host: str) -> str:
        try:
            return ipaddress.ip_address(host).compressed
        except ValueError:
            return host.lower().rstrip(".")

    hosts = [
        "10.0.0.1",
        "010.0.0.1",
        "1.2.3.4.",
        "256.1.1.1",
        "1.2.3",
        "::1",
        "2001:DB8::1",
        "0:0::0:1",
        "::ffff:1.2.3.4",
        "Host.Example.",
        *random_strings("0123456789.", 2000, seed=2),
        *random_strings("0123456789abcdefABCDEF:.", 2000, seed=3),
    ]
    for host in hosts:
        assert addresses.normal_host(host) == by_parsing(host), host
