"""Bring the tna store in line with its configured sources: the master data file and the holiday region.

``serve`` calls :func:`sync_store` at start; ``zmi-reconciler masterdata`` calls it on demand. A broken
master data file never changes the store (the last good master data stays), like a broken schedule file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from zmi_reconciler.config import Settings
from zmi_reconciler.tna.masterdata import ApplyResult, MasterData, apply_masterdata, load_masterdata
from zmi_reconciler.tna.store import Store


@dataclass
class SyncResult:
    """What :func:`sync_store` did. ``masterdata`` is None when no master data file exists."""

    masterdata: ApplyResult | None = None
    holidays_added: dict[int, int] = field(default_factory=dict)


def region_holidays(region: str, years: list[int]) -> list[tuple[date, str, int]]:
    """Public holidays of ``region`` (``DE-BY``: ISO country and optional subdivision, ``holidays`` package)
    as ``(date, name, category 1)``, sorted. Raises ``ValueError`` for an unknown region."""
    import holidays as holidays_lib  # lazy (~25 ms at start): serve needs it only for a year without holidays

    country, _, subdiv = region.partition("-")
    try:
        table = holidays_lib.country_holidays(country, subdiv=subdiv or None, years=years)
    except NotImplementedError as exc:
        raise ValueError(f"unknown holiday region {region!r} (setting holiday_region): {exc}") from None
    return sorted((d, name, 1) for d, name in table.items())


def ensure_holidays(store: Store, region: str, years: list[int]) -> dict[int, int]:
    """Fill the holidays of every year in ``years`` that has none yet; years with holidays (possibly edited
    by hand, e.g. half days on 24 and 31 December) are left alone. Returns {year: holidays written}."""
    written: dict[int, int] = {}
    for year in years:
        if store.holidays_between(date(year, 1, 1), date(year, 12, 31)):
            continue
        written[year] = store.replace_holidays(region, region_holidays(region, [year]), [year])
    return written


def sync_store(settings: Settings, store: Store, today: date, masterdata: MasterData | None = None) -> SyncResult:
    """Apply ``masterdata`` (default: ``settings.masterdata_path`` when it exists) and fill holidays for
    ``today``'s and the next year.

    Raises :class:`~zmi_reconciler.tna.masterdata.MasterDataError` (file:line:col of every problem) for an
    invalid master data file, before anything is written; ``ValueError`` for an unknown holiday region.
    """
    result = SyncResult()
    path = settings.masterdata_path
    if masterdata is None and path.exists():
        masterdata = load_masterdata(path)
    if masterdata is not None:
        result.masterdata = apply_masterdata(store, masterdata, debounce_seconds=settings.debounce_seconds)
    result.holidays_added = ensure_holidays(store, settings.holiday_region, [today.year, today.year + 1])
    return result
