"""Texts and routing of the messages the tasks queue in the outbox (delivered by ``send_notifications``).

Messages are plain text e-mails in German (the ZMI Server's users are; the error codes stay in the text so
support can search for them). Every message has a ``dedup_key`` (unique in the outbox), so a recurring task
queues it once, not on every run:

- day error (``calculate_days``): ``day-error:<employee id>:<YYYY-MM-DD>:<sorted codes>:<recipient>``: one
  message per recipient for each (employee, day, error set). A changed error set (MISSING_GO becomes
  MISSING_COME after an edit) is a new message; the same set again is not.
- deadline alert (``alive_check`` ``expect``): ``deadline:<schedule>:<local date>:<HH:MM>:<recipient>``,
  one per schedule, day and deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Iterable

ERROR_TEXTS = {
    "MISSING_GO": "Gehen-Buchung fehlt (MISSING_GO)",
    "MISSING_COME": "Kommen-Buchung fehlt (MISSING_COME)",
    "NO_BOOKINGS": "keine Buchungen an einem Arbeitstag (NO_BOOKINGS)",
}


@dataclass(frozen=True)
class Message:
    """One message to queue: ``recipient`` (e-mail address), ``subject``, ``body`` (plain text), ``dedup_key``."""

    recipient: str
    subject: str
    body: str
    dedup_key: str


def _error_lines(errors: Iterable[str]) -> list[str]:
    return [f"- {ERROR_TEXTS.get(code, code)}" for code in errors]


def day_error_messages(*, employee_id: int, personnel_number: str, name: str, day: date, errors: Iterable[str],
                       employee_email: str | None, supervisor_email: str | None) -> list[Message]:
    """Messages for one final day with errors: to the employee and, if set, the supervisor (one each;
    none when neither has an address). ``day`` is the local date."""
    codes = sorted(set(errors))
    key = f"day-error:{employee_id}:{day.isoformat()}:{','.join(codes)}"
    who = f"{name} ({personnel_number})" if name else personnel_number
    when = day.strftime("%d.%m.%Y")
    messages = []
    if employee_email:
        body = "\n".join([
            f"Hallo {name or personnel_number},", "",
            f"Ihre Buchungen vom {when} sind unvollständig:", *_error_lines(codes), "",
            "Bitte korrigieren Sie den Tag oder wenden Sie sich an Ihre Zeiterfassung.", "",
            "-- zmi-reconciler"])
        messages.append(Message(employee_email, f"Zeiterfassung: Buchungsfehler am {when}", body,
                                f"{key}:{employee_email}"))
    if supervisor_email and supervisor_email != employee_email:
        body = "\n".join([
            f"Die Buchungen von {who} am {when} sind unvollständig:", *_error_lines(codes), "",
            "-- zmi-reconciler"])
        messages.append(Message(supervisor_email, f"Zeiterfassung: Buchungsfehler {who} am {when}", body,
                                f"{key}:{supervisor_email}"))
    return messages


def deadline_alert(*, recipient: str, schedule_id: str, local_day: date, by: str, zone: str,
                   last_success: str | None) -> Message:
    """Alert that ``schedule_id`` has not succeeded on ``local_day`` by ``by`` (HH:MM in ``zone``);
    ``last_success`` is the last success as text (or None: never)."""
    when = local_day.strftime("%d.%m.%Y")
    body = "\n".join([
        f"Der Zeitplan '{schedule_id}' ist am {when} bis {by} Uhr ({zone}) nicht erfolgreich gelaufen.",
        f"Letzter erfolgreicher Lauf: {last_success or 'keiner'}.", "",
        "Bitte prüfen Sie das Journal (zmi-reconciler) und die Berechnung.", "", "-- zmi-reconciler"])
    return Message(recipient, f"zmi-reconciler: '{schedule_id}' bis {by} nicht erfolgreich ({when})", body,
                   f"deadline:{schedule_id}:{local_day.isoformat()}:{by}:{recipient}")
