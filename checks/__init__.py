"""Built-in checks: one module per check, each a pure function of observations."""
