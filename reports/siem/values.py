"""Value conversions the SIEM modules share: times written the way ECS and OCSF store them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if value is not None}


def aware(moment: datetime) -> datetime:
    """A time without a zone is taken as UTC (the report's times always carry one)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    """UTC, millisecond precision, "Z" suffix: what Elasticsearch's date type expects."""
    return aware(moment).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_date(day: date) -> str:
    """A calendar date as an ECS date: its midnight, UTC."""
    return iso(datetime.combine(day, time(0), tzinfo=UTC))


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, truncated like ``iso`` (exact integer arithmetic)."""
    return (aware(moment) - _EPOCH) // timedelta(milliseconds=1)
