"""SPIFFE IDs: what parses (and how it is normalized), what is refused, and that
comparison is exact, never a substring or prefix test."""

from __future__ import annotations

import pytest

from mtls_audit.scanner.model.spiffe import (
    MAX_LENGTH,
    SpiffeId,
    parse_spiffe_id,
    same_spiffe_id,
    spiffe_id_or_none,
)

# -- accepted -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "trust_domain", "path"),
    [
        ("spiffe://example.org", "example.org", ""),
        ("spiffe://svc", "svc", ""),
        ("spiffe://example.org/payment", "example.org", "/payment"),
        ("spiffe://example.org/ns/prod/sa/payment", "example.org", "/ns/prod/sa/payment"),
        ("spiffe://my_domain-1.example/a.b-c_d", "my_domain-1.example", "/a.b-c_d"),
        # Dots inside a segment are fine; only "." and ".." as a whole segment are not.
        ("spiffe://example.org/...", "example.org", "/..."),
        ("spiffe://example.org/.hidden", "example.org", "/.hidden"),
        # The path keeps its case.
        ("spiffe://example.org/Payment/V2", "example.org", "/Payment/V2"),
        # Scheme and trust domain are case-insensitive and come back lowercased.
        ("SPIFFE://Example.ORG/Payment", "example.org", "/Payment"),
        ("Spiffe://EXAMPLE.org", "example.org", ""),
    ],
)
def test_valid_ids_parse_and_normalize(text: str, trust_domain: str, path: str) -> None:
    parsed = parse_spiffe_id(text)
    assert parsed == SpiffeId(trust_domain, path)
    assert parsed.trust_domain == trust_domain
    assert parsed.path == path
    assert str(parsed) == f"spiffe://{trust_domain}{path}"
    assert spiffe_id_or_none(text) == parsed


def test_str_round_trips_through_parse() -> None:
    parsed = parse_spiffe_id("SPIFFE://Example.Org/ns/Prod")
    assert str(parsed) == "spiffe://example.org/ns/Prod"
    assert parse_spiffe_id(str(parsed)) == parsed


def test_child_keeps_the_trust_domain() -> None:
    parsed = parse_spiffe_id("spiffe://example.org/payment")
    assert parsed.child("") == SpiffeId("example.org", "")
    assert str(parsed.child("/other")) == "spiffe://example.org/other"


def test_length_limit_is_inclusive() -> None:
    prefix = "spiffe://example.org/"
    at_limit = prefix + "a" * (MAX_LENGTH - len(prefix))
    assert len(at_limit) == MAX_LENGTH == 2048
    assert parse_spiffe_id(at_limit).path == "/" + "a" * (MAX_LENGTH - len(prefix))
    with pytest.raises(ValueError, match="longer than 2048"):
        parse_spiffe_id(at_limit + "a")


# -- refused --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "must start with spiffe://"),
        ("example.org/payment", "must start with spiffe://"),
        ("//example.org/payment", "must start with spiffe://"),
        ("http://example.org/payment", "must start with spiffe://"),
        ("https://example.org/payment", "must start with spiffe://"),
        ("spiffe:/example.org/payment", "must start with spiffe://"),
        ("spiffe:example.org", "must start with spiffe://"),
        (" spiffe://example.org/payment", "must start with spiffe://"),
        ("spiffe://", "no trust domain"),
        ("spiffe:///payment", "no trust domain"),
        ("spiffe://example.org:8443/payment", "user info or a port"),
        ("spiffe://example.org:8443", "user info or a port"),
        ("spiffe://user@example.org/payment", "user info or a port"),
        ("spiffe://user:pw@example.org/payment", "user info or a port"),
        ("spiffe://example.org/payment?x=1", "query or fragment"),
        ("spiffe://example.org?x=1", "query or fragment"),
        ("spiffe://example.org/payment#frag", "query or fragment"),
        ("spiffe://example.org#frag", "query or fragment"),
        ("spiffe://example.org/", "empty path segment"),
        ("spiffe://example.org/payment/", "empty path segment"),
        ("spiffe://example.org//payment", "empty path segment"),
        ("spiffe://example.org/a//b", "empty path segment"),
        ("spiffe://example.org/.", "'.' or '..'"),
        ("spiffe://example.org/..", "'.' or '..'"),
        ("spiffe://example.org/a/./b", "'.' or '..'"),
        ("spiffe://example.org/a/../b", "'.' or '..'"),
        ("spiffe://example.org/pay%20ment", "path segment 'pay%20ment'"),
        ("spiffe://example.org/pay%2Fment", "path segment"),
        ("spiffe://example.org/pay ment", "path segment"),
        ("spiffe://example.org/pay+ment", "path segment"),
        ("spiffe://example.org/paymént", "path segment"),
        ("spiffe://example.org/pay\nment", "path segment"),
        ("spiffe://example.org/payment\n", "path segment"),
        ("spiffe://exa mple.org/payment", "trust domain 'exa mple.org'"),
        ("spiffe://exa%41mple.org", "trust domain"),
        ("spiffe://exämple.org/payment", "trust domain"),
        ("spiffe://example.org\n", "trust domain"),
        ("spiffe://[::1]/payment", "user info or a port"),
    ],
)
def test_invalid_ids_are_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_spiffe_id(text)
    assert why in str(raised.value)
    assert spiffe_id_or_none(text) is None


def test_overlong_id_refused_before_anything_else() -> None:
    text = "spiffe://example.org/" + "a" * MAX_LENGTH
    with pytest.raises(ValueError, match="longer than 2048 characters"):
        parse_spiffe_id(text)
    assert spiffe_id_or_none(text) is None


# -- comparison -----------------------------------------------------------------------

PAYMENT = parse_spiffe_id("spiffe://svc/payment")


@pytest.mark.parametrize(
    "presented",
    [
        "spiffe://svc/payment",
        "SPIFFE://svc/payment",
        "spiffe://SVC/payment",
        "Spiffe://Svc/payment",
    ],
)
def test_same_id_ignores_case_of_scheme_and_trust_domain(presented: str) -> None:
    assert same_spiffe_id(presented, PAYMENT) is True


@pytest.mark.parametrize(
    "presented",
    [
        # The path is case-sensitive.
        "spiffe://svc/Payment",
        "spiffe://svc/PAYMENT",
        # Substring and prefix traps.
        "spiffe://svc/payment-evil",
        "spiffe://svc/paymentx",
        "spiffe://svc/payment/x",
        "spiffe://svc/payment.evil",
        "spiffe://svc.evil/payment",
        "spiffe://evil.svc/payment",
        "spiffe://svc/pay",
        "spiffe://svc",
        "spiffe://svc/x/payment",
        # Malformed versions of the right ID never match.
        "spiffe://svc/payment/",
        "spiffe://svc//payment",
        "spiffe://svc/./payment",
        "spiffe://svc/payment?x",
        "spiffe://svc/payment#x",
        "spiffe://svc:443/payment",
        "spiffe://u@svc/payment",
        "http://svc/payment",
        "svc/payment",
        " spiffe://svc/payment",
        "spiffe://svc/payment ",
        "",
    ],
)
def test_other_or_malformed_ids_are_not_the_same(presented: str) -> None:
    assert same_spiffe_id(presented, PAYMENT) is False


def test_trust_domain_only_id_does_not_match_a_path() -> None:
    domain = parse_spiffe_id("spiffe://svc")
    assert same_spiffe_id("spiffe://svc", domain) is True
    assert same_spiffe_id("spiffe://svc/payment", domain) is False
    assert same_spiffe_id("spiffe://svc/", domain) is False
