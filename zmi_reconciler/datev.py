"""DATEV LODAS ASCII import file ("ASCII-Import LODAS") for movement data: hours per employee and wage type.

Format, as used here (pure text, no I/O in this module):

```
[Allgemein]
Ziel=LODAS
Version_SST=1.0
BeraterNr=<consultant number>
MandantenNr=<client number>
Feldtrennzeichen=;
Zahlenkomma=,
Datumsformat=TT/MM/JJJJ
Kommentarzeichen=*

[Satzbeschreibung]
10;u_lod_bwd_buchung_standard;abrechnung_zeitraum#bwd;pnr#bwd;la_eigene#bwd;bs_nr#bwd;bs_wert_butab#bwd;

[Bewegungsdaten]
10;01/09/2026;1001;1000;1;168,00;
```

- ``[Allgemein]`` names the target (``Ziel=LODAS``), the interface version (``Version_SST=1.0``), the DATEV
  consultant (``BeraterNr``) and client (``MandantenNr``) numbers and how the data lines are written (field
  separator ``;``, decimal comma, date format ``TT/MM/JJJJ``, ``*`` starts a comment line).
- ``[Satzbeschreibung]`` declares record type 10 as table ``u_lod_bwd_buchung_standard`` (standard movement
  data booking) with the fields in line order: ``abrechnung_zeitraum`` (payroll period, given as the first day
  of the month), ``pnr`` (personnel number), ``la_eigene`` (the client's own wage type, "Lohnart"),
  ``bs_nr`` (processing key "Bearbeitungsschlüssel": 1 = hours) and ``bs_wert_butab`` (the value: hours with
  two decimals and a decimal comma).
- ``[Bewegungsdaten]``: one line per employee and mapped value (zero values are left out); lines end with
  ``;``. The file is written with CRLF line ends in Windows-1252 (ANSI), which LODAS reads.

Sources checked (search corpus, 2026-11): DATEV's own description "LODAS ASCII-Import" (help-center.apps.datev.de,
document st81064830359671307, 94th edition, June 2026) as summarised in a public requirements document (sections
``[Allgemein]``/``[Satzbeschreibung]``/``[Bewegungsdaten]``, ``Ziel=LODAS``, ``Version_SST=1.0``, consultant and
client numbers, ``Datumsformat=TT/MM/JJJJ``; ``u_lod_bwd_buchung_standard`` with payroll period, value,
processing key, own wage type and personnel number; version entries optional); the Lobster data platform's
"DatevLodasIU" documentation (www.lobster-world.com/online/_data/docs/46/de/DatevLodasIU.html: ``[Allgemein]``
and ``[Satzbeschreibung]`` mandatory, at least one of ``[Stammdaten]``/``[Bewegungsdaten]``); and several
public LODAS exporters that write the same header keys (``Feldtrennzeichen``, ``Zahlenkomma``,
``Kommentarzeichen``) and ``bs_nr`` 1 for hours. The wage types (Lohnarten) are the client's own and must be
agreed with the tax consultant; nothing is guessed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

RECORD_TYPE = 10
TABLE = "u_lod_bwd_buchung_standard"
FIELDS = ("abrechnung_zeitraum", "pnr", "la_eigene", "bs_nr", "bs_wert_butab")
#: Bearbeitungsschlüssel (processing key) for a number of hours.
BS_HOURS = 1
ENCODING = "cp1252"


@dataclass(frozen=True)
class Movement:
    """One movement data line: ``personnel_number`` (digits), ``wage_type`` (DATEV Lohnart), ``minutes``."""

    personnel_number: str
    wage_type: int
    minutes: int


def hours_text(minutes: int) -> str:
    """Minutes -> hours with two decimals and a decimal comma (``7460`` -> ``124,33``; rounded half up
    on whole cents of an hour, sign kept)."""
    sign = "-" if minutes < 0 else ""
    hundredths = (abs(minutes) * 100 * 2 + 60) // 120  # round half up
    return f"{sign}{hundredths // 100},{hundredths % 100:02d}"


def lodas_text(*, consultant_number: int, client_number: int, year: int, month: int,
               movements: Iterable[Movement], comment: str | None = None) -> str:
    """The LODAS import file (CRLF line ends) for ``year``-``month``; zero movements are left out.
    Raises ValueError for a personnel number that is not 1..7 digits (LODAS personnel numbers are numeric)."""
    lines = ["[Allgemein]", "Ziel=LODAS", "Version_SST=1.0", f"BeraterNr={consultant_number}",
             f"MandantenNr={client_number}", "Feldtrennzeichen=;", "Zahlenkomma=,", "Datumsformat=TT/MM/JJJJ",
             "Kommentarzeichen=*", ""]
    if comment:
        lines += [f"* {line}" for line in comment.splitlines()] + [""]
    lines += ["[Satzbeschreibung]", f"{RECORD_TYPE};{TABLE};" + "".join(f"{f}#bwd;" for f in FIELDS), "",
              "[Bewegungsdaten]"]
    period = f"01/{month:02d}/{year:04d}"
    for m in movements:
        if not (m.personnel_number.isdigit() and 1 <= len(m.personnel_number) <= 7):
            raise ValueError(f"personnel number {m.personnel_number!r} is not numeric (1..7 digits) as LODAS needs")
        if m.minutes == 0:
            continue
        lines.append(f"{RECORD_TYPE};{period};{int(m.personnel_number)};{m.wage_type};{BS_HOURS};"
                     f"{hours_text(m.minutes)};")
    return "\r\n".join(lines) + "\r\n"
