"""Loading X.509 material from disk with ``cryptography``.

Every failure becomes a :class:`CredentialError` whose message is one line naming the
file and the reason. Messages never quote file contents, so a private key or its
password can't end up in a log or a report.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from mtls_audit.scanner.model.errors import UserError
from mtls_audit.scanner.model.target import ClientCredential, SigningKey

_SIGNING_KEY_TYPES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)

_PEM_MARKER = b"-----BEGIN "
# A "path" this long made of nothing but the base64 alphabet (no dot, dash or
# underscore anywhere) is key or bundle data pasted in, such as a Kubernetes secret's value.
_INLINE_BASE64 = re.compile(r"[A-Za-z0-9+/=]{100,}")


class CredentialError(UserError):
    """A certificate or key file that can't be used; the message is one safe line."""


def load_certificates(path: Path, *, display: str | None = None) -> tuple[x509.Certificate, ...]:
    """Every certificate in a PEM file (in file order), or the one in a DER file.

    ``display`` is how the file is named in error messages (default: ``str(path)``).
    """
    name = _display(path, display)
    data = _read(path, name)
    if _PEM_MARKER in data:
        try:
            certificates = tuple(x509.load_pem_x509_certificates(data))
        except ValueError:
            raise CredentialError(_no_certificate_reason(data, name)) from None
        if not certificates:  # defensive: cryptography raises rather than returning []
            raise CredentialError(f"{name} holds no PEM or DER certificate")
        return certificates
    try:
        return (x509.load_der_x509_certificate(data),)
    except ValueError:
        raise CredentialError(f"{name} holds no PEM or DER certificate") from None


def load_private_key(path: Path, password: bytes | None, *, display: str | None = None) -> SigningKey:
    """A private key that can sign a TLS handshake (RSA, EC, Ed25519 or Ed448).

    PEM (PKCS#8 or traditional OpenSSL, possibly after other PEM blocks such as the
    certificate) or DER. ``password`` is used only when the key is encrypted.
    """
    name = _display(path, display)
    data = _read(path, name)
    if _PEM_MARKER in data:
        loader = serialization.load_pem_private_key
    else:
        loader = serialization.load_der_private_key
    try:
        key = loader(data, None)
    except TypeError:  # "Password was not given but private key is encrypted"
        key = _load_encrypted(loader, data, password, name)
    except UnsupportedAlgorithm:
        raise CredentialError(f"{name} holds a private key of an unsupported type") from None
    except ValueError:
        raise CredentialError(_no_key_reason(data, name)) from None
    if not isinstance(key, _SIGNING_KEY_TYPES):
        kind = type(key).__name__.removesuffix("PrivateKey") or "unknown"
        raise CredentialError(
            f"{name} holds a key of type {kind}, which cannot sign a TLS handshake (expected RSA, EC, Ed25519 or Ed448)"
        )
    return key


def load_client_credential(
    cert_path: Path,
    key_path: Path,
    password: bytes | None,
    *,
    cert_display: str | None = None,
    key_display: str | None = None,
) -> ClientCredential:
    """The client certificate (leaf first, then its chain) and the matching key."""
    certificates = load_certificates(cert_path, display=cert_display)
    key = load_private_key(key_path, password, display=key_display)
    return make_client_credential(
        certificates,
        key,
        cert_display=_display(cert_path, cert_display),
        key_display=_display(key_path, key_display),
    )


def load_pkcs12_credential(path: Path, password: bytes | None, *, display: str | None = None) -> ClientCredential:
    """The key, certificate and chain of a PKCS#12 bundle (a Java keystore export, a
    Spring Boot ``.p12``). The leaf is the certificate that matches the key; the
    bundle's other certificates are its chain, in bundle order."""
    name = _display(path, display)
    data = _read(path, name)
    if _PEM_MARKER in data:
        raise CredentialError(f"{name} is PEM, not PKCS#12: give it as cert and key instead")
    try:
        key, leaf, extra = pkcs12.load_key_and_certificates(data, password)
    except UnsupportedAlgorithm:
        raise CredentialError(f"{name} is encrypted with an unsupported algorithm") from None
    except (ValueError, TypeError):
        # cryptography says only "Invalid password or PKCS12 data": both are possible.
        if password is None:
            raise CredentialError(
                f"{name} could not be opened without a password (or is not PKCS#12); "
                "set password_env to the name of an environment variable holding its password"
            ) from None
        raise CredentialError(f"wrong password for {name}, or it is not a PKCS#12 file") from None
    if key is None:
        raise CredentialError(f"{name} holds no private key")
    if leaf is None:
        raise CredentialError(f"{name} holds no certificate for its key")
    if not isinstance(key, _SIGNING_KEY_TYPES):
        raise CredentialError(
            f"{name} holds a key that cannot sign a TLS handshake (expected RSA, EC, Ed25519 or Ed448)"
        )
    return make_client_credential([leaf, *extra], key, cert_display=name, key_display=name)


def make_client_credential(
    certificates: Sequence[x509.Certificate],
    key: SigningKey,
    *,
    cert_display: str,
    key_display: str,
    owner: str = "the client's own",
) -> ClientCredential:
    """Pair already-loaded material, checking the key belongs to the leaf (the first
    cert); ``owner`` says whose certificate comes first, for the message."""
    if not certificates:
        raise CredentialError(f"{cert_display} holds no certificate")
    leaf, *chain = certificates
    if _spki(key.public_key()) != _spki(leaf.public_key()):
        raise CredentialError(
            f"key {key_display} does not match certificate {cert_display} "
            f"(the first certificate in the file must be {owner})"
        )
    return ClientCredential(certificate=leaf, chain=tuple(chain), private_key=key)


def _load_encrypted(loader, data: bytes, password: bytes | None, name: str) -> SigningKey:
    if password is None:
        raise CredentialError(
            f"{name} is encrypted; set password_env to the name of an environment variable holding its password"
        )
    if not password:
        raise CredentialError(f"{name} is encrypted and the password given is empty")
    try:
        return loader(data, password)
    except UnsupportedAlgorithm:
        raise CredentialError(f"{name} is encrypted with an unsupported algorithm") from None
    except (ValueError, TypeError):
        raise CredentialError(f"wrong password for {name}") from None


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _read(path: Path, name: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise CredentialError(f"cannot read {name}: {_os_reason(error)}") from None
    if not data.strip():
        raise CredentialError(f"{name} is empty")
    return data


def _os_reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def _pem_labels(data: bytes) -> set[str]:
    """The labels of the PEM blocks (``CERTIFICATE``, ``PRIVATE KEY``...): only the
    armour lines are looked at, never the base64 payload."""
    labels = set()
    for line in data.splitlines():
        line = line.strip()
        if line.startswith(b"-----BEGIN ") and line.endswith(b"-----"):
            labels.add(line[len(b"-----BEGIN ") : -len(b"-----")].decode("ascii", "replace"))
    return labels


def _no_certificate_reason(data: bytes, name: str) -> str:
    labels = _pem_labels(data)
    if any(label.endswith("PRIVATE KEY") for label in labels) and not any("CERTIFICATE" in label for label in labels):
        return f"{name} holds a private key, not a certificate"
    if "CERTIFICATE" in labels:
        return f"{name} holds a malformed PEM certificate"
    return f"{name} holds no PEM or DER certificate"


def _no_key_reason(data: bytes, name: str) -> str:
    labels = _pem_labels(data)
    if labels and not any(label.endswith("PRIVATE KEY") for label in labels):
        if any("CERTIFICATE" in label for label in labels):
            return f"{name} holds a certificate, not a private key"
    elif any(label.endswith("PRIVATE KEY") for label in labels):
        return f"{name} holds a malformed PEM private key"
    return f"{name} holds no PEM or DER private key"


def looks_like_inline_data(value: str) -> bool:
    """``value`` holds PEM text or base64 (a pasted key, a Kubernetes secret's
    bundle) instead of a file path: it must never be echoed."""
    return (
        "-----BEGIN" in value or "\n" in value or any(_INLINE_BASE64.fullmatch(segment) for segment in value.split("/"))
    )


def _display(path: Path, display: str | None) -> str:
    text = display if display is not None else str(path)
    if "-----BEGIN" in text or _INLINE_BASE64.fullmatch(text.strip()):
        return "<inline key or certificate data, not a file path>"
    return text.replace("\r", "\\r").replace("\n", "\\n")
