"""Plans the probes, runs them under the limits, hands observations to the checks, streams results."""
