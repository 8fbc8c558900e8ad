"""send_notifications against a real SMTP server (aiosmtpd) started by the test: plain, STARTTLS with
login, implicit TLS; server down -> failed and still queued; backoff; parking; refused recipients.
Transport folder: .eml files that parse back, an unusable folder fails the task and keeps the messages."""

from __future__ import annotations

import logging
import socket
import ssl
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from zmi_reconciler.config import SmtpSettings
from zmi_reconciler.tasks import send_notifications as task
from zmi_reconciler.tasks.base import TaskFailed
from zmi_reconciler.tna.store import Store

from test_task_helpers import Clock, make_ctx, make_settings

NOW = datetime(2026, 10, 12, 4, 0, tzinfo=timezone.utc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """aiosmtpd handler that keeps what arrives; refuses recipients at ``bad.example``."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], object]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.endswith("@bad.example"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.mails.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default)))
        return "250 Message accepted"


@pytest.fixture
def smtp_server():
    # aiosmtpd logs every connection at INFO from its own thread, also after a test's log capture closed
    mail_log = logging.getLogger("mail.log")
    level = mail_log.level
    mail_log.setLevel(logging.WARNING)
    started = []

    def start(port=None, **kwargs):
        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port or free_port(), **kwargs)
        controller.start()
        started.append(controller)
        return inbox, controller

    yield start
    for c in started:
        c.stop()
    mail_log.setLevel(level)


def setup(tmp_path, port, *messages, **smtp):
    settings = make_settings(tmp_path, smtp=SmtpSettings(host="127.0.0.1", port=port, sender="zmi@example.org",
                                                         timeout_seconds=5, **smtp))
    clock = Clock(NOW)
    with Store.open(settings.database_path, zone=settings.zone, clock=clock) as store:
        for i, recipient in enumerate(messages):
            store.enqueue_message(recipient, f"Subject {i}", f"Body {i}\nzweite Zeile äöü")
    return settings, clock


def run(settings, clock, **params):
    return task.run(make_ctx(settings, "send_notifications", clock), task.Params(**params))


def outbox(settings):
    with Store.open(settings.database_path, zone=settings.zone) as store:
        return store.outbox()


def test_plain_delivery(tmp_path, smtp_server):
    inbox, controller = smtp_server()
    settings, clock = setup(tmp_path, controller.port, "anna@example.org", "boss@example.org")
    result = run(settings, clock)
    assert result.model_dump() == {"sent": 2, "failed": 0, "parked": 0, "remaining": 0, "folder": None}
    assert [(rcpts, mail["Subject"], mail["From"]) for rcpts, mail in inbox.mails] == [
        (["anna@example.org"], "Subject 0", "zmi@example.org"), (["boss@example.org"], "Subject 1", "zmi@example.org")]
    assert inbox.mails[0][1].get_content().splitlines() == ["Body 0", "zweite Zeile äöü"]
    assert all(m.sent_at == NOW and m.attempts == 1 for m in outbox(settings))
    assert run(settings, clock).sent == 0  # nothing twice


def test_server_down_then_later_success(tmp_path, smtp_server):
    port = free_port()  # nothing listens here yet
    settings, clock = setup(tmp_path, port, "anna@example.org", "ben@example.org")
    with pytest.raises(TaskFailed, match="2 of 2 message\\(s\\) not delivered") as info:
        run(settings, clock)
    assert info.value.result.model_dump() == {"sent": 0, "failed": 2, "parked": 0, "remaining": 2, "folder": None}
    messages = outbox(settings)
    assert [m.attempts for m in messages] == [1, 1]
    assert all(m.sent_at is None and "Connection refused" in m.last_error for m in messages)
    assert all(m.next_attempt_at == NOW + timedelta(seconds=60) for m in messages)

    inbox, _ = smtp_server(port=port)
    assert run(settings, clock).sent == 0  # backoff: not due yet
    clock.now = NOW + timedelta(seconds=60)
    result = run(settings, clock)
    assert (result.sent, result.remaining) == (2, 0)
    assert sorted(r for rcpts, _ in inbox.mails for r in rcpts) == ["anna@example.org", "ben@example.org"]
    assert [m.attempts for m in outbox(settings)] == [2, 2]


def test_backoff_doubles_and_parks_after_max_attempts(tmp_path):
    settings, clock = setup(tmp_path, free_port(), "anna@example.org")
    waits = []
    for attempt in range(1, 4):
        with pytest.raises(TaskFailed):
            run(settings, clock, max_attempts=3, retry_seconds=10)
        [m] = outbox(settings)
        waits.append((m.next_attempt_at - clock.now).total_seconds())
        clock.now = m.next_attempt_at
    assert waits == [10, 20, 40]
    result = run(settings, clock, max_attempts=3)  # parked: not tried, not lost
    assert result.model_dump() == {"sent": 0, "failed": 0, "parked": 1, "remaining": 0, "folder": None}
    [m] = outbox(settings)
    assert m.attempts == 3 and m.sent_at is None and m.last_error


def test_backoff_is_capped():
    params = task.Params(retry_seconds=60, retry_max_seconds=3600)
    assert [task.backoff(n, params).total_seconds() for n in (1, 2, 3, 7, 8, 20)] == [60, 120, 240, 3600, 3600, 3600]


def test_refused_recipient_fails_only_that_message(tmp_path, smtp_server):
    inbox, controller = smtp_server()
    settings, clock = setup(tmp_path, controller.port, "nobody@bad.example", "anna@example.org")
    with pytest.raises(TaskFailed, match="recipient refused") as info:
        run(settings, clock)
    assert (info.value.result.sent, info.value.result.failed) == (1, 1)
    assert [rcpts for rcpts, _ in inbox.mails] == [["anna@example.org"]]
    bad, good = outbox(settings)
    assert bad.sent_at is None and "550" in bad.last_error and good.sent_at is not None


@pytest.fixture(scope="module")
def ca():
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


def server_context(ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def test_starttls_with_login(tmp_path, smtp_server, ca):
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((mechanism, auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.login == b"zmi" and auth_data.password == b"secret")

    inbox, controller = smtp_server(tls_context=server_context(ca), require_starttls=True, auth_required=True,
                                    authenticator=authenticator)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    settings, clock = setup(tmp_path, controller.port, "anna@example.org", security="starttls", username="zmi",
                            password="secret", ca_file=ca_file)
    assert run(settings, clock).sent == 1
    assert logins and logins[0][1:] == (b"zmi", b"secret")
    assert inbox.mails[0][0] == ["anna@example.org"]


def test_starttls_with_an_untrusted_certificate_fails_and_stays_queued(tmp_path, smtp_server, ca):
    _, controller = smtp_server(tls_context=server_context(ca), require_starttls=True)
    settings, clock = setup(tmp_path, controller.port, "anna@example.org", security="starttls")
    with pytest.raises(TaskFailed, match="CERTIFICATE_VERIFY_FAILED"):
        run(settings, clock)
    [m] = outbox(settings)
    assert m.attempts == 1 and m.sent_at is None


def test_implicit_tls(tmp_path, smtp_server, ca):
    inbox, controller = smtp_server(ssl_context=server_context(ca))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    settings, clock = setup(tmp_path, controller.port, "anna@example.org", security="ssl", ca_file=ca_file)
    assert run(settings, clock).sent == 1
    assert inbox.mails[0][1]["Subject"] == "Subject 0"


def test_nothing_due_does_not_connect(tmp_path):
    settings, clock = setup(tmp_path, free_port())  # no server and no messages
    assert run(settings, clock).model_dump() == {"sent": 0, "failed": 0, "parked": 0, "remaining": 0, "folder": None}


def test_folder_transport_writes_eml_files_and_marks_sent(tmp_path):
    settings, clock = setup(tmp_path, free_port(), "anna@example.org", "boss@example.org", transport="folder")
    ctx = make_ctx(settings, "send_notifications", clock)
    result = task.run(ctx, task.Params())
    folder = tmp_path / "data" / "mail"
    assert result.model_dump() == {"sent": 2, "failed": 0, "parked": 0, "remaining": 0, "folder": str(folder)}
    files = sorted(folder.iterdir())
    created = f"{NOW:%Y%m%dT%H%M%SZ}"
    assert [f.name for f in files] == [f"{created}-outbox-1.eml", f"{created}-outbox-2.eml"]  # no temp files left
    raw = files[0].read_bytes()
    assert files[0].stat().st_mode & 0o777 == 0o600  # personal data: owner only
    assert b"\r\n" in raw and raw.count(b"\n") == raw.count(b"\r\n")  # RFC 5322 line ends
    mails = [message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]
    assert [(m["To"], m["Subject"], m["From"]) for m in mails] == [
        ("anna@example.org", "Subject 0", "zmi@example.org"), ("boss@example.org", "Subject 1", "zmi@example.org")]
    assert mails[0]["Date"].datetime == NOW
    assert mails[0]["Message-ID"].startswith("<") and "outbox-1" in mails[0]["Message-ID"]
    assert mails[0]["Message-ID"].endswith("@example.org>")
    assert mails[1].get_content().splitlines() == ["Body 1", "zweite Zeile äöü"]
    assert all(m.sent_at == NOW and m.attempts == 1 and m.last_error is None for m in outbox(settings))
    assert f"wrote 2 messages to {folder} (transport folder)" in ctx.log.messages
    assert run(settings, clock).sent == 0 and len(list(folder.iterdir())) == 2  # nothing twice


def test_folder_transport_absolute_folder(tmp_path):
    target = tmp_path / "pickup" / "nested"
    settings, clock = setup(tmp_path, free_port(), "anna@example.org", transport="folder", folder=target)
    assert run(settings, clock).folder == str(target)
    [eml] = target.iterdir()
    assert message_from_bytes(eml.read_bytes(), policy=policy.default)["To"] == "anna@example.org"


def test_unusable_folder_fails_and_messages_stay_queued(tmp_path):
    settings, clock = setup(tmp_path, free_port(), "anna@example.org", "ben@example.org", transport="folder")
    settings.mail_path.write_text("a file where the mail folder should be\n")  # also fails for root
    with pytest.raises(TaskFailed, match="2 of 2 message\\(s\\) not delivered") as info:
        run(settings, clock)
    assert info.value.result.model_dump() == {"sent": 0, "failed": 2, "parked": 0, "remaining": 2,
                                              "folder": str(settings.mail_path)}
    messages = outbox(settings)
    assert all(m.sent_at is None and m.attempts == 1 and "FileExistsError" in m.last_error for m in messages)
    assert all(m.next_attempt_at == NOW + timedelta(seconds=60) for m in messages)

    settings.mail_path.unlink()  # fixed: the next due run writes them
    clock.now = NOW + timedelta(seconds=60)
    assert run(settings, clock).sent == 2
    assert len(list(settings.mail_path.glob("*.eml"))) == 2
