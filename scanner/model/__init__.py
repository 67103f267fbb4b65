"""The model: plain, immutable data every other layer shares (statuses, observations, targets, findings, the report document). No I/O."""
