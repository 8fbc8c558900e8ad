"""``send_notifications`` ("Push Notifications versenden"): delivers the outbox over SMTP or into a folder.

Transport ``smtp`` (``settings.smtp.transport``, the default): ``settings.smtp`` (host, port, ``security``:
``plain`` | ``starttls`` | ``ssl``; login when ``username`` is set; ``ca_file`` adds a CA to the system trust
store; certificates are always verified). One SMTP connection per run, opened only when a message is due; a
dropped connection is reopened once per message.

Transport ``folder`` (a demo or first install without a mail server; ``ZMI_MAIL_TRANSPORT=folder``): each
message is written as an RFC 5322 ``.eml`` file (the same e-mail the SMTP path sends, CRLF line ends) into
``settings.mail_path`` (``<data_dir>/mail`` by default), named ``<UTC created>-outbox-<id>.eml``; written to a
temp file in that folder, fsynced, then renamed, so a reader never sees half a message; files are mode
0600 (they carry personal data). A folder that cannot be created or written counts as a failed delivery, like
an unreachable SMTP server.

Each due message (unsent, ``next_attempt_at`` reached, fewer than ``max_attempts`` attempts; oldest first, at
most ``batch``) is sent as a plain-text e-mail from ``smtp.sender``. On success it is marked sent (kept: the
``gdpr_retention`` task deletes sent messages later). On failure the attempt is counted, the error kept and the
next attempt set ``retry_seconds * 2 ** (attempts - 1)`` later (exponential backoff, at most
``retry_max_seconds``). A message whose attempts reach ``max_attempts`` is *parked*: still stored with its last
error, never deleted, not tried again unless ``max_attempts`` is raised. Nothing is lost.

The task fails (after trying every due message) when any delivery failed in this run, so a dead mail server
shows in the run status; the messages stay queued.
"""

from __future__ import annotations

import contextlib
import os
import smtplib
import ssl
import tempfile
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parsedate_to_datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskParams, TaskResult, TaskSpec


class Params(TaskParams):
    max_attempts: int = Field(default=5, ge=1, le=100, description="attempts per message before it is parked")
    batch: int = Field(default=500, ge=1, le=100_000, description="messages per run at most")
    retry_seconds: int = Field(default=60, ge=1, le=86_400,
                               description="wait after the first failed attempt; doubles with every further one")
    retry_max_seconds: int = Field(default=6 * 3600, ge=1, le=7 * 86_400, description="longest wait between attempts")


class Result(TaskResult):
    sent: int = 0
    failed: int = 0
    parked: int = 0
    remaining: int = 0
    #: Transport ``folder``: the absolute folder the ``.eml`` files went to; None for SMTP.
    folder: str | None = None


def backoff(attempts: int, params: Params) -> timedelta:
    """Wait after the ``attempts``-th failed attempt (1-based): ``retry_seconds * 2**(attempts-1)``, capped."""
    return timedelta(seconds=min(params.retry_seconds * 2 ** max(attempts - 1, 0), params.retry_max_seconds))


def build_email(message: Any, sender: str) -> EmailMessage:
    """An :class:`~zmi_reconciler.tna.store.OutboxMessage` as a plain-text e-mail."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = message.recipient
    mail["Subject"] = message.subject
    mail["Date"] = format_datetime(message.created_at)
    mail["Message-ID"] = make_msgid(idstring=f"outbox-{message.id}", domain=sender.rpartition("@")[2] or None)
    mail.set_content(message.body)
    return mail


class SmtpTransport:
    """A lazily opened SMTP connection with the server settings' security and login."""

    def __init__(self, smtp: Any) -> None:
        self.smtp = smtp
        self._client: smtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.smtp.ca_file:
            context.load_verify_locations(cafile=str(self.smtp.ca_file))
        return context

    def connect(self) -> smtplib.SMTP:
        s = self.smtp
        if s.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_seconds, context=self._context())
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
        try:
            client.ehlo()
            if s.security == "starttls":
                client.starttls(context=self._context())
                client.ehlo()
            if s.username:
                client.login(s.username, s.password or "")
        except BaseException:
            client.close()
            raise
        return client

    def send(self, mail: EmailMessage, outbox_id: int) -> None:
        """Send one e-mail; reconnects once when the server dropped the connection."""
        for attempt in (1, 2):
            if self._client is None:
                self._client = self.connect()
            try:
                self._client.send_message(mail)
                return
            except smtplib.SMTPServerDisconnected:
                self._client = None
                if attempt == 2:
                    raise

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.quit()
            except (smtplib.SMTPException, OSError):
                self._client.close()
            self._client = None


class FolderTransport:
    """Writes each e-mail as an ``.eml`` file into ``folder`` (created when missing): temp file, fsync, rename.

    Raises :class:`OSError` when the folder cannot be created or written.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def file_name(self, mail: EmailMessage, outbox_id: int) -> str:
        """``<UTC created>-outbox-<id>.eml``: sorts by creation, unique per outbox message."""
        created = parsedate_to_datetime(mail["Date"]).astimezone(timezone.utc)
        return f"{created:%Y%m%dT%H%M%SZ}-outbox-{outbox_id}.eml"

    def send(self, mail: EmailMessage, outbox_id: int) -> Path:
        """Write one e-mail (RFC 5322, CRLF line ends); returns the file. A retried message that was written
        before but not marked sent replaces its earlier file (same name)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / self.file_name(mail, outbox_id)
        data = mail.as_bytes(policy=mail.policy.clone(linesep="\r\n"))
        fd, tmp_name = tempfile.mkstemp(dir=self.folder, prefix=f".outbox-{outbox_id}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        return target

    def close(self) -> None:
        pass


#: Failures that concern one message (the server answered); anything else means the server is unusable.
MESSAGE_ERRORS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError,
                  smtplib.SMTPNotSupportedError)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "recipient refused: " + "; ".join(f"{r}: {code} {msg.decode(errors='replace')}"
                                                  for r, (code, msg) in exc.recipients.items())
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{type(exc).__name__}: {exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"
    return f"{type(exc).__name__}: {exc}"


def run(ctx: TaskContext, params: Params) -> Result:
    """Deliver the due outbox messages (see the module doc); returns the counts. Raises
    :class:`TaskFailed` (with the counts) when a delivery failed, :class:`TaskCancelled` between messages."""
    result = Result()
    errors: list[str] = []
    store = ctx.store()
    smtp = ctx.settings.smtp
    transport: SmtpTransport | FolderTransport
    if smtp.transport == "folder":
        transport = FolderTransport(ctx.settings.mail_path)
        result.folder = str(ctx.settings.mail_path)
    else:
        transport = SmtpTransport(smtp)
    try:
        due = store.due_messages(ctx.clock(), limit=params.batch, max_attempts=params.max_attempts)
        server_error: str | None = None  # once the server/folder is unusable, the rest of the batch fails with it
        for message in due:
            ctx.check_cancelled()
            error = server_error
            if error is None:
                try:
                    transport.send(build_email(message, smtp.sender), message.id)
                except MESSAGE_ERRORS as exc:
                    error = _error_text(exc)
                except (smtplib.SMTPException, OSError) as exc:
                    error = server_error = _error_text(exc)
                    transport.close()
            if error is None:
                store.mark_sent(message.id, ctx.clock())
                result.sent += 1
                continue
            attempts = message.attempts + 1
            retry_at: datetime = ctx.clock() + backoff(attempts, params)
            store.mark_failed(message.id, error, retry_at)
            result.failed += 1
            errors.append(error)
            ctx.log(f"message {message.id} to {message.recipient}: attempt {attempts} failed: {error}; "
                    + ("parked (max_attempts reached)" if attempts >= params.max_attempts
                       else f"next attempt at {retry_at:%Y-%m-%dT%H:%M:%SZ}"),
                    level="warning", message_id=message.id)
        counts = store.outbox_counts(params.max_attempts)
        result.parked, result.remaining = counts["parked"], counts["queued"]
    finally:
        transport.close()
        store.close()
    if result.folder is not None:
        ctx.log(f"wrote {result.sent} message{'' if result.sent == 1 else 's'} to {result.folder} (transport folder)",
                folder=result.folder)
    ctx.log(f"{result.sent} sent, {result.failed} failed, {result.remaining} queued, {result.parked} parked")
    if result.failed:
        raise TaskFailed(f"{result.failed} of {result.sent + result.failed} message(s) not delivered "
                         f"(first error: {errors[0]}); they stay queued", result)
    return result


SPEC = TaskSpec(
    name="send_notifications",
    zmi_name="Push Notifications versenden",
    description="Delivers queued messages (e-mail over SMTP); failures stay queued with their attempt count.",
    params_model=Params, result_model=Result, run=run,
)
