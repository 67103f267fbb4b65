"""One TLS connection per probe, over trio: the only network code."""
