"""Value conversions the SIEM modules share.

The report's dicts are read tolerantly (a missing or mistyped field gives an empty text,
a zero count, no time) and times are written the way ECS and OCSF store them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def as_text(value: Any) -> str:
    return "" if value is None else str(value)


def drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if value is not None}


def as_count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def as_counts(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(key): as_count(count) for key, count in value.items()}


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    """UTC, millisecond precision, "Z" suffix: what Elasticsearch's date type expects."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, truncated like ``iso`` (exact integer arithmetic)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)
