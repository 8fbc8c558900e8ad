"""The task registry: task name -> :class:`~zmi_reconciler.tasks.base.TaskSpec` (SPEC section 6).

Adding a task touches one new module in this package and one line in ``_MODULES``. Tasks that need ZMI
modules we do not have are listed with ``available=False`` and a reason; validation rejects them.
"""

from __future__ import annotations

import importlib

from zmi_reconciler.tasks.base import TaskSpec

_MODULES = (
    "import_bookings", "calculate_days", "calculate_months", "backup_database", "send_notifications",
    "alive_check", "export_data", "gdpr_retention", "run_command",
)

_TERMINAL = "needs the ZMI terminal communication module, which zmi-reconciler does not have"
_UNAVAILABLE: tuple[tuple[str, str, str], ...] = (
    ("terminal_set_time", "Terminal Uhrzeit stellen", _TERMINAL),
    ("terminal_send_master_data", "Stammdaten an Terminal senden", _TERMINAL),
    ("terminal_send_accounts", "Kontenstände an Terminal senden", _TERMINAL),
    ("terminal_send_access_data", "Zutrittsdaten an Terminal senden", _TERMINAL),
    ("terminal_fetch_bookings", "Buchungen direkt vom Terminal holen",
     _TERMINAL + "; use import_bookings with the terminal's export files"),
    ("calculate_orders", "Aufträge berechnen", "needs the ZMI order/project module"),
    ("vehicle_logbook", "Fahrtenbuch", "needs the ZMI vehicle module"),
    ("send_sms", "SMS versenden", "needs an SMS gateway module"),
    ("licence_check", "Führerscheinkontrolle", "needs the ZMI licence check module"),
    ("vaccination_check", "Impfstatus prüfen", "needs the ZMI vaccination check module"),
    ("geodata_import", "Geodaten importieren", "needs the ZMI mobile/geodata module"),
    ("analytics_refresh", "Auswertungen aktualisieren", "needs the ZMI analytics module"),
)


def _build() -> dict[str, TaskSpec]:
    registry: dict[str, TaskSpec] = {}
    for module_name in _MODULES:
        spec: TaskSpec = importlib.import_module(f"zmi_reconciler.tasks.{module_name}").SPEC
        registry[spec.name] = spec
    for name, zmi_name, reason in _UNAVAILABLE:
        registry[name] = TaskSpec(name=name, zmi_name=zmi_name, description=f"Not available: {reason}.",
                                  available=False, unavailable_reason=reason)
    return registry


#: Read-only after import.
REGISTRY: dict[str, TaskSpec] = _build()


def get(name: str) -> TaskSpec:
    """The spec of task ``name``; raises ``KeyError`` with the valid names when unknown."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; valid tasks: {', '.join(available_names())}") from None


def available_names() -> list[str]:
    """Names of tasks that can run, sorted."""
    return sorted(n for n, s in REGISTRY.items() if s.available)
