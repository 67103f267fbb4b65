"""Finding the checks: every ``Check`` registered under the entry-point group
``mtls_audit.checks``, the built-ins included (see pyproject.toml), so a plugin
package adds a check exactly the way the built-ins are added."""

from __future__ import annotations

from importlib.metadata import entry_points

from mtls_audit.checks.base import ENTRY_POINT_GROUP, Check
from mtls_audit.scanner.model.errors import UserError

BUILTIN_ORDER = (
    "client-cert-required",
    "wrong-ca-rejected",
    "tls13-only",
    "chain-complete",
    "san-match",
    "expiry-soon",
    "access-rules",
    "client-cert-validity",
    "unknown-identity-rejected",
    "cert-lifetime",
)


class RegistryError(UserError):
    """A registered check cannot be loaded or clashes with another."""


def load_checks() -> tuple[Check, ...]:
    """All registered checks: built-ins in their documented order, then plugins by id."""
    found: dict[str, Check] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            check = entry_point.load()
        except Exception as error:  # a broken plugin must not be skipped silently
            raise RegistryError(
                f"check plugin {entry_point.name!r} ({entry_point.value}) failed to load: "
                f"{error.__class__.__name__}: {error}"
            ) from None
        if not isinstance(check, Check):
            raise RegistryError(
                f"check plugin {entry_point.name!r} ({entry_point.value}) is a {type(check).__name__}, not a Check"
            )
        if check.id in found and found[check.id] is not check:
            raise RegistryError(f"two checks claim the id {check.id!r}")
        found[check.id] = check
    missing = [check_id for check_id in BUILTIN_ORDER if check_id not in found]
    if missing:
        raise RegistryError(
            f"built-in checks not registered: {', '.join(missing)} (is mtls-audit installed? run `pip install .`)"
        )

    def order(check: Check) -> tuple[int, str]:
        return (BUILTIN_ORDER.index(check.id) if check.id in BUILTIN_ORDER else len(BUILTIN_ORDER), check.id)

    return tuple(sorted(found.values(), key=order))
