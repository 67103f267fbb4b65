"""The HTML report for the security team."""
