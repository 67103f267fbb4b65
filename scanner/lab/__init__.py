"""A throwaway PKI and loopback TLS servers with known configurations, for
`mtls-audit demo` and the end-to-end tests."""
