"""NDJSON for a SIEM, in ECS or OCSF."""
