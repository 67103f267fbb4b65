"""The sans-I/O TLS client: bytes in, events out."""
