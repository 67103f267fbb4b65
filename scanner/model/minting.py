"""What the issuer-minted variants of a target's identity are, and which of them a
target's identity allows. The minting itself (with the issuer's key) is the
credentials package's; the checks use this to say why a variant was not probed."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from mtls_audit.scanner.model.observations import Presented
from mtls_audit.scanner.model.spiffe import SpiffeId, parse_spiffe_id, spiffe_id_or_none
from mtls_audit.scanner.model.target import Target

# What each copy differs in, for reports ("minted certificates are reported by
# fingerprint and their defect").
DEFECTS: dict[Presented, str] = {
    Presented.MINTED: "none: the identity re-issued by the issuer (the control)",
    Presented.EXPIRED: "expired: notAfter in the past",
    Presented.NOT_YET_VALID: "not yet valid: notBefore in the future",
    Presented.SERVER_AUTH_ONLY: "extendedKeyUsage serverAuth only, no clientAuth",
    Presented.CN_ONLY: "no subjectAltName: the identity only in the subject CN",
    Presented.UNKNOWN_SPIFFE_ID: "a SPIFFE ID no rule names (same trust domain, fresh path)",
}

UNKNOWN_PATH_PREFIX = "/mtls-audit/unknown-"

# Copies that name no known identity: only where access rules say who may get in is
# refusing them the policy (without rules, any certificate from the CA may be meant to).
ONLY_WITH_ACCESS_RULES = (Presented.CN_ONLY, Presented.UNKNOWN_SPIFFE_ID)


def subject_alternative_names(certificate: x509.Certificate | None) -> list[x509.GeneralName]:
    if certificate is None:
        return []
    try:
        return list(certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except (x509.ExtensionNotFound, ValueError):
        return []


def name_for_common_name(certificate: x509.Certificate) -> str | None:
    """What the cn-only copy puts in its CN: the identity's CN if it has one, else its
    first SAN that is a name (DNS, URI, e-mail, IP); None if it has neither."""
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        return str(names[0].value)
    for name in subject_alternative_names(certificate):
        if isinstance(name, x509.DNSName | x509.UniformResourceIdentifier | x509.RFC822Name | x509.IPAddress):
            return str(name.value)[:64]  # ub-common-name (RFC 5280)
    return None


def spiffe_ids(certificate: x509.Certificate | None) -> list[SpiffeId]:
    found = []
    for name in subject_alternative_names(certificate):
        if isinstance(name, x509.UniformResourceIdentifier):
            parsed = spiffe_id_or_none(name.value)
            if parsed is not None:
                found.append(parsed)
    return found


def trust_domain_for(target: Target) -> SpiffeId | None:
    """The SPIFFE trust domain (as an ID with an empty path) a fresh identity for
    ``target`` belongs to: its client identity's, else its server's."""
    own = spiffe_ids(target.identity.credential.certificate if target.identity else None)
    if own:
        return own[0].child("")
    if target.server_identity:
        return parse_spiffe_id(target.server_identity).child("")
    return None


def unavailable_variants(target: Target) -> dict[Presented, str]:
    """The variants that cannot be minted for ``target``, with why."""
    reasons: dict[Presented, str] = {}
    identity = target.identity.credential.certificate if target.identity else None
    if identity is None:
        reasons[Presented.CN_ONLY] = "the target has no client identity to copy"
    elif not subject_alternative_names(identity):
        reasons[Presented.CN_ONLY] = "the target's identity has no subjectAltName to drop"
    elif name_for_common_name(identity) is None:
        reasons[Presented.CN_ONLY] = "the target's identity has no CN and no SAN that is a name to put in one"
    if trust_domain_for(target) is None:
        reasons[Presented.UNKNOWN_SPIFFE_ID] = (
            "no SPIFFE trust domain known (neither the target's identity nor its server_identity is a SPIFFE ID)"
        )
    return reasons
