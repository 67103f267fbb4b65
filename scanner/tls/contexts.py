"""Client contexts built once per credential, protocol version and ALPN offer, not once
per probe.

A probe used to build its own ``SSL.Context``: ``SSL_CTX_new`` (OpenSSL 3 fills in the
cipher and group lists, and asks the providers), then the certificate and the key
converted from ``cryptography`` objects and loaded, for every connection. On a
loopback scan that was about a quarter of a millisecond per connection, the largest
cost after the handshake itself (``bench/cpu_per_connection.py``).

What a context holds is decided by the protocol version and the credential alone:
the server is not verified here (``build_context``), so the trust anchors are not in
it, and neither is anything about one connection (the info callback dispatches to
each connection's own observer). Nothing changes a context after it is built, so one
context serves every probe that presents the same credential at the same version,
concurrently.

Credentials are shared objects: the inventory loads each identity once, and the
impostors and the issuer's copies are minted once per run. The cache is therefore
keyed by the credential object itself (and holds it, so its id cannot be reused
while it is cached): a lookup hashes no certificate. An equal credential loaded twice
costs one more context, never a wrong one. The cache is bounded (least recently used
credential out), so a scan presenting thousands of distinct credentials holds at most
``max_credentials`` of them at a time.
"""

from __future__ import annotations

from collections import OrderedDict

from cryptography.hazmat.primitives import hashes
from OpenSSL import SSL

from mtls_audit.scanner.model.observations import TLSVersion
from mtls_audit.scanner.model.target import ClientCredential
from mtls_audit.scanner.tls.client import build_context


class _CredentialContexts:
    """One credential's contexts, one per version, and its certificate's fingerprint."""

    __slots__ = ("by_version", "certificate_sha256", "credential")

    def __init__(self, credential: ClientCredential | None) -> None:
        self.credential = credential
        self.certificate_sha256 = (
            credential.certificate.fingerprint(hashes.SHA256()).hex() if credential is not None else None
        )
        self.by_version: dict[tuple[TLSVersion, tuple[bytes, ...]], SSL.Context] = {}


class ContextCache:
    """``SSL.Context`` per (credential, version, ALPN offer), built on first use."""

    def __init__(self, max_credentials: int = 256) -> None:
        if max_credentials < 1:
            raise ValueError("max_credentials must be at least 1")
        self.max_credentials = max_credentials
        self._entries: OrderedDict[int, _CredentialContexts] = OrderedDict()
        self.built = 0  # contexts built so far: what the cache saves is probes - built

    def context(
        self, version: TLSVersion, credential: ClientCredential | None, alpn: tuple[bytes, ...] = ()
    ) -> SSL.Context:
        """The context presenting ``credential`` (None: no certificate) at ``version``,
        offering the ``alpn`` protocols (gRPC needs ``h2``)."""
        entry = self._entry(credential)
        context = entry.by_version.get((version, alpn))
        if context is None:
            context = entry.by_version[(version, alpn)] = build_context(version, credential, alpn)
            self.built += 1
        return context

    def certificate_sha256(self, credential: ClientCredential | None) -> str | None:
        """The SHA-256 fingerprint (hex) of the credential's certificate, computed once."""
        return self._entry(credential).certificate_sha256

    def __len__(self) -> int:
        """Credentials held."""
        return len(self._entries)

    def _entry(self, credential: ClientCredential | None) -> _CredentialContexts:
        key = id(credential)
        entry = self._entries.get(key)
        if entry is not None and entry.credential is credential:
            self._entries.move_to_end(key)
            return entry
        entry = self._entries[key] = _CredentialContexts(credential)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_credentials:
            self._entries.popitem(last=False)
        return entry


# The prober's cache when it is given none: one per process, shared by every scan in
# it (the contexts depend on nothing else a scan could change).
SHARED_CONTEXTS = ContextCache()
