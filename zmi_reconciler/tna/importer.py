"""Import of terminal export files (ZMI "Buchungsdaten aus Terminal holen", file based) into the tna store.

Formats (``format="auto"`` decides by the first data line: a tab means ATTLOG, else CSV):

- **ZKTeco ATTLOG** (``attlog.dat``), tab separated, in either field layout seen in the field:
  ``PIN<TAB>datetime<TAB>verify<TAB>state<TAB>workcode...`` or ``PIN<TAB>name<TAB>datetime<TAB>verify<TAB>state``.
  The layout is recognised per line (where the date/time is). PINs may carry leading blanks or zeros
  (:func:`~.store.normalize_pin`). ``state`` is the terminal's punch state: 0 check-in, 1 check-out,
  2 break-out, 3 break-in, 4 overtime-in, 5 overtime-out; read as come for 0/3/4 and go for 1/2/5.
- **CSV**: ``personnel_number,timestamp[,direction]`` (``,`` or ``;``), optional header line. ``direction``:
  ``come``/``in``/``k``/``kommen`` or ``go``/``out``/``g``/``gehen``, empty for unknown. The first column is the
  *personnel number* (not the PIN).

Timestamps ``YYYY-MM-DD HH:MM[:SS]`` (or ISO ``T``, or ``DD.MM.YYYY HH:MM[:SS]``) are local wall-clock times
of the store's zone, converted deterministically (:func:`~.store.local_to_utc`: an ambiguous time at the end
of DST is the first occurrence, a time in the DST gap is shifted forward by the gap). A timestamp with an
explicit UTC offset is taken as it is.

Rules:

- **Idempotent**: a booking's key is employee + instant; importing the same file twice adds nothing
  (second time: the kept lines count as duplicates, the double taps as collapsed again). Deleted bookings
  keep their key, so a re-import does not bring them back.
- **Double taps**: a tap within ``debounce_seconds`` (inclusive) of a booking already kept for the same
  employee (in this file or stored before, deleted ones included) collapses into it. Like a terminal's
  "duplicate punch period", the comparison is with the kept booking, not with the previous tap.
- **Direction**: from the file (ATTLOG state, CSV direction column) only when ``direction_from_file`` is set
  (many terminals record state 0 for every tap); otherwise, and for lines without one, come/go alternate per
  employee and local day, re-derived for the whole day when bookings arrive out of order (see
  :meth:`~.store.Store.add_bookings`).
- **Unknown PIN / personnel number**: the booking is kept as unassigned and attached when an employee with
  that PIN / number is created. The report names every unknown PIN / number of the file in
  ``unknown_pins`` (also on a re-import, when its bookings are duplicates of the stored unassigned ones);
  ``unknown`` and ``unassigned`` count only the unassigned bookings stored by this import.
- **Malformed lines** are reported with their line number and reason; the rest of the file imports. A year
  outside 1970..2100 (local or UTC) is malformed, also one that would overflow ``datetime`` on conversion.
  The first CSV line is taken as a header only when it looks like one (:func:`_is_csv_header`).
  Bookings in a month closed for the employee are rejected the same way (closed months are read-only).
"""

from __future__ import annotations

import csv
import re
from bisect import insort
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from zmi_reconciler.tna.store import (NewBooking, Store, UnassignedBooking, debounce_verdict, local_to_utc,
                                      normalize_pin)

FileFormat = Literal["auto", "attlog", "csv"]

#: ATTLOG punch states read as come / go when the file's direction is trusted.
ATTLOG_COME_STATES = frozenset({"0", "3", "4"})
ATTLOG_GO_STATES = frozenset({"1", "2", "5"})
_CSV_DIRECTIONS = {"come": "come", "in": "come", "k": "come", "kommen": "come",
                   "go": "go", "out": "go", "g": "go", "gehen": "go"}
_IDENT_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]*$")
_GERMAN_RE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?$")


class UnreadableFileError(Exception):
    """The file cannot be read at all (I/O or undecodable); per-line problems are reported instead."""


@dataclass(frozen=True)
class Rejected:
    """A line that was not imported: 1-based ``line`` number, ``reason``, and the line's text."""

    line: int
    reason: str
    text: str = ""


@dataclass(frozen=True)
class Tap:
    """One parsed terminal line: who (``ident_kind`` ``pin`` | ``personnel_number``), when (aware UTC),
    the file's direction (None: unknown or not trusted)."""

    line: int
    ident_kind: str
    ident: str
    at: datetime
    direction: str | None


@dataclass
class ImportReport:
    """What an import did. ``lines`` counts data lines (blank lines and a CSV header excluded); every line
    is exactly one of ``new``, ``duplicates``, ``collapsed``, ``unassigned`` or ``rejected``.
    ``unknown`` maps each unknown PIN / personnel number to its number of unassigned bookings stored *now*;
    ``unknown_pins`` maps every PIN / personnel number of the file that matches no employee to its number of
    bookings in the file (taps after collapsing double taps; 0 when every tap collapsed into a stored one),
    whether stored now or already stored as unassigned by an earlier import: all of them are still
    unassigned. ``still_unassigned`` is their sum.
    ``days`` is the number of (employee, local date) days that got new bookings."""

    file: str
    format: str = ""
    lines: int = 0
    new: int = 0
    duplicates: int = 0
    collapsed: int = 0
    unassigned: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    unknown: dict[str, int] = field(default_factory=dict)
    days: int = 0
    unknown_pins: dict[str, int] = field(default_factory=dict)
    still_unassigned: int = 0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["rejected"] = [asdict(r) for r in self.rejected]
        return data

    def to_text(self) -> str:
        """A human-readable summary, one rejected line per row."""
        out = [f"{self.file} ({self.format}): {self.lines} lines, {self.new} new, {self.duplicates} duplicates, "
               f"{self.collapsed} collapsed double taps, {self.unassigned} unassigned, "
               f"{len(self.rejected)} rejected"]
        what = "personnel numbers" if self.format == "csv" else "PINs"
        if self.unknown_pins:
            out.append(f"unknown {what} (still unassigned; bookings in this file): "
                       + ", ".join(f"{k} ({n})" for k, n in sorted(self.unknown_pins.items())))
        out += [f"  line {r.line}: {r.reason}" for r in self.rejected]
        if self.still_unassigned:
            out.append(self.unassigned_hint())
        return "\n".join(out)

    def unassigned_hint(self) -> str:
        """What to do about ``still_unassigned`` bookings (the last line of :meth:`to_text`)."""
        n = self.still_unassigned
        what = "personnel numbers" if self.format == "csv" else "PINs"
        return (f"{n} {'booking' if n == 1 else 'bookings'} of unknown {what} {'is' if n == 1 else 'are'} kept "
                "unassigned; add the employees to the master data (zmi-reconciler masterdata FILE) and they "
                "attach automatically")


# --- parsing --------------------------------------------------------------------------------------------


#: Plausible booking years (local and UTC); a timestamp outside is rejected as a line, never raised.
MIN_YEAR = 1970
MAX_YEAR = 2100


def parse_timestamp(text: str, zone: ZoneInfo) -> datetime:
    """A terminal timestamp (local unless it has an offset) -> aware UTC. Raises ValueError, also for a year
    outside :data:`MIN_YEAR`..:data:`MAX_YEAR` (local or UTC) and for a time that cannot be converted to UTC
    (e.g. ``0001-01-01 00:00`` east of UTC, which would overflow ``datetime``)."""
    text = text.strip()
    m = _GERMAN_RE.match(text)
    try:
        if m:
            d, mo, y, h, mi, s = m.groups()
            naive = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0))
        else:
            if len(text) < 16 or text[10] not in " T":
                raise ValueError(f"expected a date and time like 2026-10-09 17:08:59, got {text!r}")
            naive = datetime.fromisoformat(text).replace(microsecond=0)
        if not MIN_YEAR <= naive.year <= MAX_YEAR:
            raise ValueError(f"year {naive.year} out of range ({MIN_YEAR}..{MAX_YEAR}) in {text!r}")
        at = local_to_utc(naive, zone)
    except (OverflowError, OSError) as exc:
        raise ValueError(f"timestamp {text!r} cannot be converted to UTC: {exc}") from None
    if not MIN_YEAR <= at.year <= MAX_YEAR:
        raise ValueError(f"year {at.year} (UTC) out of range ({MIN_YEAR}..{MAX_YEAR}) in {text!r}")
    return at


def detect_format(text: str) -> str:
    """``attlog`` when the first non-blank line contains a tab, else ``csv``."""
    for line in text.splitlines():
        if line.strip():
            return "attlog" if "\t" in line else "csv"
    return "attlog"


def parse(text: str, zone: ZoneInfo, file_format: FileFormat = "auto", direction_from_file: bool = False
          ) -> tuple[str, int, list[Tap], list[Rejected]]:
    """Parse an export -> ``(format, data line count, taps, rejected lines)``. Never raises for content."""
    fmt = detect_format(text) if file_format == "auto" else file_format
    parser = _parse_attlog_line if fmt == "attlog" else _parse_csv_line
    taps: list[Tap] = []
    rejected: list[Rejected] = []
    lines = 0
    delimiter = ";" if fmt == "csv" and _csv_delimiter(text) == ";" else ","
    first = True
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        if fmt == "csv" and first and _is_csv_header(raw, delimiter):
            first = False
            continue
        first = False
        lines += 1
        try:
            taps.append(parser(number, raw, zone, direction_from_file, delimiter))
        except (ValueError, OverflowError, OSError) as exc:  # one bad line never aborts the file
            rejected.append(Rejected(number, str(exc) or type(exc).__name__, raw.strip()[:200]))
    return fmt, lines, taps, rejected


def _ident(text: str, what: str) -> str:
    text = text.strip()
    if not _IDENT_RE.match(text):
        raise ValueError(f"invalid {what} {text!r}")
    return text


def _parse_attlog_line(number: int, raw: str, zone: ZoneInfo, direction_from_file: bool, _: str) -> Tap:
    fields = [f.strip() for f in raw.split("\t")]
    for ts_col, state_col in ((1, 3), (2, 4)):  # PIN, datetime, ... | PIN, name, datetime, ...
        if len(fields) > ts_col:
            try:
                at = parse_timestamp(fields[ts_col], zone)
            except ValueError:
                continue
            break
    else:
        raise ValueError("no date/time in column 2 or 3 (expected PIN<TAB>datetime or PIN<TAB>name<TAB>datetime)")
    pin = normalize_pin(_ident(fields[0], "PIN"))
    state = fields[state_col] if len(fields) > state_col else ""
    direction = None
    if direction_from_file:
        direction = "come" if state in ATTLOG_COME_STATES else "go" if state in ATTLOG_GO_STATES else None
    return Tap(number, "pin", pin, at, direction)


def _parse_csv_line(number: int, raw: str, zone: ZoneInfo, direction_from_file: bool, delimiter: str) -> Tap:
    row = next(csv.reader([raw], delimiter=delimiter))
    if len(row) < 2 or len(row) > 3:
        raise ValueError(f"expected personnel_number{delimiter}timestamp[{delimiter}direction], "
                         f"got {len(row)} fields")
    ident = _ident(row[0], "personnel number")
    try:
        at = parse_timestamp(row[1], zone)
    except ValueError as exc:
        raise ValueError(f"bad timestamp: {exc}") from None
    word = row[2].strip().lower() if len(row) == 3 else ""
    if word and word not in _CSV_DIRECTIONS:
        raise ValueError(f"unknown direction {row[2].strip()!r} (come/go, in/out, K/G)")
    direction = _CSV_DIRECTIONS.get(word) if direction_from_file else None
    return Tap(number, "personnel_number", ident, at, direction)


def _csv_delimiter(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return ";" if line.count(";") > line.count(",") else ","
    return ","


#: Words that mark a CSV header line (English and German column names seen in terminal exports).
_HEADER_WORDS = ("personnel", "number", "pin", "timestamp", "time", "date", "direction", "personal", "nummer",
                 "zeit", "datum", "richtung", "buchung", "id", "employee", "mitarbeiter", "name")


def _is_csv_header(raw: str, delimiter: str) -> bool:
    """The first CSV line is a header only when its timestamp column is not timestamp-like (contains no digit
    and does not parse) and the line looks like a header: a cell names a known column (``personnel_number``,
    ``pin``, ``timestamp``, ``time``, ``date``, ``direction``, German ``Zeit``/``Datum``/``Richtung`` ...) or
    the line has no digits at all. Anything else is a data line (imported or rejected with its number)."""
    row = next(csv.reader([raw], delimiter=delimiter))
    if len(row) < 2:
        return False
    if any(c.isdigit() for c in row[1]):
        return False
    try:
        parse_timestamp(row[1], ZoneInfo("UTC"))
        return False
    except ValueError:
        pass
    if not any(c.isdigit() for c in raw):
        return True
    words = {w for cell in row for w in re.split(r"[^a-z]+", cell.strip().lower()) if w}
    return any(w in words for w in _HEADER_WORDS)


# --- importing ------------------------------------------------------------------------------------------


def import_text(store: Store, text: str, filename: str = "<text>", *, file_format: FileFormat = "auto",
                debounce_seconds: int = 60, direction_from_file: bool = False) -> ImportReport:
    """Import one export's text into ``store`` in one transaction; returns the :class:`ImportReport`.

    ``filename`` names the source (``terminal:<filename>``) and the report. Raises only for store
    failures (``sqlite3`` errors); content problems are reported as rejected lines.
    """
    fmt, lines, taps, rejected = parse(text, store.zone, file_format, direction_from_file)
    report = ImportReport(file=filename, format=fmt, lines=lines, rejected=rejected)
    source = f"terminal:{Path(filename).name}"
    window = timedelta(seconds=debounce_seconds)
    with store.transaction():
        by_pin, by_number, closed = _employee_index(store)
        groups: dict[tuple[str, str], list[Tap]] = defaultdict(list)
        for tap in taps:
            groups[(tap.ident_kind, tap.ident)].append(tap)
        resolved = {key: (by_pin if key[0] == "pin" else by_number).get(key[1]) for key in groups}
        if taps:
            lo = min(t.at for t in taps) - window
            hi = max(t.at for t in taps) + window
            known = store.known_instants({e for e in resolved.values() if e is not None}, lo, hi)
            known_unassigned = store.known_unassigned([k for k, e in resolved.items() if e is None], lo, hi)
        new: list[NewBooking] = []
        unassigned: list[UnassignedBooking] = []
        days: set[tuple[int, date]] = set()
        for key, group in groups.items():
            emp = resolved[key]
            instants = known[emp] if emp is not None else known_unassigned[key]
            if emp is None:
                report.unknown_pins.setdefault(key[1], 0)
            for tap in sorted(group, key=lambda t: (t.at, t.line)):
                verdict = debounce_verdict(instants, tap.at, window)
                if verdict == "duplicate":
                    report.duplicates += 1
                    if emp is None:  # already stored as unassigned by an earlier import
                        report.unknown_pins[key[1]] += 1
                    continue
                if verdict == "collapsed":
                    report.collapsed += 1
                    continue
                if emp is None:
                    insort(instants, tap.at)
                    unassigned.append(UnassignedBooking(key[0], key[1], tap.at, tap.direction, source))
                    report.unknown[key[1]] = report.unknown.get(key[1], 0) + 1
                    report.unknown_pins[key[1]] += 1
                    continue
                day = tap.at.astimezone(store.zone).date()
                if emp in closed and f"{day:%Y-%m}" <= closed[emp]:
                    report.rejected.append(Rejected(
                        tap.line, f"{day:%Y-%m} is closed for {key[1]} (closed through {closed[emp]})", ""))
                    continue
                insort(instants, tap.at)
                new.append(NewBooking(emp, tap.at, tap.direction, source))
                days.add((emp, day))
        store.add_bookings(new)
        store.add_unassigned(unassigned)
    report.new = len(new)
    report.unassigned = len(unassigned)
    report.days = len(days)
    report.unknown_pins = dict(sorted(report.unknown_pins.items()))
    report.still_unassigned = sum(report.unknown_pins.values())
    report.rejected.sort(key=lambda r: r.line)
    return report


def import_file(store: Store, path: str | Path, *, file_format: FileFormat = "auto", debounce_seconds: int = 60,
                direction_from_file: bool = False) -> ImportReport:
    """Read ``path`` (UTF-8, else Latin-1: terminals write names in either) and :func:`import_text` it.
    Raises :class:`UnreadableFileError` when the file cannot be read."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UnreadableFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if b"\x00" in data[:4096]:
        raise UnreadableFileError(f"{path}: binary file, not a terminal export")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return import_text(store, text, str(path), file_format=file_format, debounce_seconds=debounce_seconds,
                       direction_from_file=direction_from_file)


def _employee_index(store: Store) -> tuple[dict[str, int], dict[str, int], dict[int, str]]:
    by_pin: dict[str, int] = {}
    by_number: dict[str, int] = {}
    closed: dict[int, str] = {}
    for e in store.employees():
        assert e.id is not None
        if e.pin:
            by_pin[e.pin] = e.id
        by_number[e.personnel_number] = e.id
        if e.closed_through:
            closed[e.id] = e.closed_through
    return by_pin, by_number, closed

