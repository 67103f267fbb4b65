"""X.509 material: loading certificates and keys, and minting impostors in memory."""
