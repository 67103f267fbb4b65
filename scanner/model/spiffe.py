"""SPIFFE IDs (``spiffe://trust-domain/path``): parsing and comparison.

Neither ``service-identity`` nor cryptography's verifier matches URI SANs, and a
substring or prefix test would let ``spiffe://svc/payment-evil`` pass for
``spiffe://svc/payment``. The rules are the SPIFFE ID standard's (section 2): a
trust domain of ``[a-z0-9.-_]``, path segments of ``[A-Za-z0-9.-_]``, no empty, ``.``
or ``..`` segment, no trailing slash, no port, user info, query or fragment. Scheme
and trust domain compare case-insensitively (they are DNS-like), the path exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SCHEME = "spiffe://"
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
MAX_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class SpiffeId:
    trust_domain: str  # lowercased
    path: str  # "" or "/seg/seg"

    def __str__(self) -> str:
        return f"spiffe://{self.trust_domain}{self.path}"

    def child(self, path: str) -> SpiffeId:
        """An ID in the same trust domain with another path."""
        return SpiffeId(self.trust_domain, path)


def parse_spiffe_id(text: str) -> SpiffeId:
    """The SPIFFE ID ``text`` names; ValueError saying what is wrong with it."""
    if len(text) > MAX_LENGTH:
        raise ValueError(f"longer than {MAX_LENGTH} characters")
    if text[: len(_SCHEME)].lower() != _SCHEME:
        raise ValueError("must start with spiffe://")
    rest = text[len(_SCHEME) :]
    if any(ch in rest for ch in "?#"):
        raise ValueError("must not have a query or fragment")
    domain, slash, path = rest.partition("/")
    domain = domain.lower()
    if not domain:
        raise ValueError("has no trust domain")
    if "@" in domain or ":" in domain:
        raise ValueError("the trust domain must not carry user info or a port")
    if not _TRUST_DOMAIN.fullmatch(domain):
        raise ValueError(f"trust domain {domain!r} may hold only letters, digits, '.', '-' and '_'")
    if not slash:
        return SpiffeId(domain, "")
    for segment in path.split("/"):
        if not segment:
            raise ValueError("has an empty path segment (a '//' or a trailing '/')")
        if segment in (".", ".."):
            raise ValueError("has a '.' or '..' path segment")
        if not _SEGMENT.fullmatch(segment):
            raise ValueError(f"path segment {segment!r} may hold only letters, digits, '.', '-' and '_'")
    return SpiffeId(domain, "/" + path)


def spiffe_id_or_none(text: str) -> SpiffeId | None:
    try:
        return parse_spiffe_id(text)
    except ValueError:
        return None


def same_spiffe_id(presented: str, expected: SpiffeId) -> bool:
    """``presented`` (a URI SAN as the certificate holds it) names ``expected``."""
    parsed = spiffe_id_or_none(presented)
    return parsed is not None and parsed == expected
