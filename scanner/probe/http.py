"""The HTTP/1.1 request the prober makes after the handshake, and reading its answer."""

from __future__ import annotations

from dataclasses import dataclass

from mtls_audit.scanner.model.target import Target

MAX_HTTP_HEAD = 16384  # enough for any status line; we read nothing more


@dataclass(frozen=True, slots=True)
class HttpRequest:
    path: str
    host_header: str
    method: str = "GET"

    @classmethod
    def for_target(cls, target: Target, request: str | None = None) -> HttpRequest:
        """The target's probe request, or an access rule's ``METHOD /path``."""
        if request is None:
            return cls(target.http_path, target.host_header)
        method, _, path = request.partition(" ")
        return cls(path, target.host_header, method)

    @property
    def request_line(self) -> str:
        return f"{self.method} {self.path} HTTP/1.1"

    def encode(self) -> bytes:
        # An empty body, declared: a POST without Content-Length is a 411 on nginx.
        body = "" if self.method in ("GET", "HEAD") else "Content-Length: 0\r\n"
        return (
            f"{self.request_line}\r\nHost: {self.host_header}\r\nUser-Agent: mtls-audit\r\n"
            f"Accept: */*\r\n{body}Connection: close\r\n\r\n"
        ).encode("ascii")


def parse_status_line(head: bytes) -> tuple[int, str] | None:
    """``HTTP/1.1 400 Bad Request`` -> (400, "Bad Request"); None if it is not HTTP."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not (parts[1].isdigit() and len(parts[1]) == 3):
        return None
    return int(parts[1]), (parts[2] if len(parts) > 2 else "")
