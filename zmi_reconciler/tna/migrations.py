"""Versioned schema of the tna store (SQLite; the SQL stays portable to PostgreSQL where it can).

The schema version lives in ``PRAGMA user_version``. :data:`MIGRATIONS` is an ordered list of steps; step
``n`` upgrades a database from version ``n - 1`` to ``n``. :func:`migrate` applies the missing steps in one
transaction each, so an older data dir upgrades in place when the store opens it. Steps are append-only:
a released step is never edited, a change is a new step.

Conventions (so PostgreSQL can follow):

- instants are UTC text ``YYYY-MM-DDTHH:MM:SSZ`` (sorts like the instant; ``timestamptz`` in PostgreSQL),
- local dates are text ``YYYY-MM-DD``, months ``YYYY-MM``,
- durations are integer minutes, flags are integers 0/1,
- structured plan definitions (break rules) are JSON text (``jsonb`` in PostgreSQL).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer zmi-reconciler (its ``user_version`` is above ours)."""


@dataclass(frozen=True)
class Migration:
    """One schema step: ``version`` is the version reached after ``sql`` ran."""

    version: int
    description: str
    sql: str


_V1_CORE = """
CREATE TABLE day_plans (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL DEFAULT '',
    definition  TEXT NOT NULL,              -- JSON of models.DayPlan (target, break rules, max net, rules)
    updated_at  TEXT NOT NULL
);

CREATE TABLE week_plans (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL DEFAULT '',
    mon TEXT REFERENCES day_plans(code), tue TEXT REFERENCES day_plans(code),
    wed TEXT REFERENCES day_plans(code), thu TEXT REFERENCES day_plans(code),
    fri TEXT REFERENCES day_plans(code), sat TEXT REFERENCES day_plans(code),
    sun TEXT REFERENCES day_plans(code),  -- NULL: free day without a day plan
    updated_at  TEXT NOT NULL
);

CREATE TABLE employees (
    id                   INTEGER PRIMARY KEY,
    personnel_number     TEXT NOT NULL UNIQUE,
    pin                  TEXT UNIQUE,          -- terminal PIN as written in the export, without padding
    first_name           TEXT NOT NULL DEFAULT '',
    last_name            TEXT NOT NULL DEFAULT '',
    email                TEXT,
    supervisor_email     TEXT,
    entry_date           TEXT,
    exit_date            TEXT,
    week_plan            TEXT REFERENCES week_plans(code),
    credit_type          TEXT NOT NULL DEFAULT 'no_evaluation',  -- models.CreditRule.kind
    credit_monthly_cap   INTEGER,              -- minutes
    credit_upper_limit   INTEGER,              -- minutes (annual upper limit of the balance)
    credit_lower_limit   INTEGER,              -- minutes (<= 0)
    credit_threshold     INTEGER NOT NULL DEFAULT 0,  -- minutes
    flextime_initial     INTEGER NOT NULL DEFAULT 0,  -- carry before the first calculated month, minutes
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);

CREATE TABLE holidays (
    date        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    category    INTEGER NOT NULL CHECK (category IN (1, 2, 3)),   -- 1 full, 2 half, 3 custom
    region      TEXT NOT NULL
);

CREATE TABLE bookings (
    id                INTEGER PRIMARY KEY,
    employee_id       INTEGER NOT NULL REFERENCES employees(id),
    original_at       TEXT NOT NULL,           -- UTC instant the terminal recorded
    edited_at         TEXT,                    -- UTC instant after a manual edit; NULL: unchanged
    local_date        TEXT NOT NULL,           -- local date of the effective instant (edited or original)
    direction         TEXT NOT NULL CHECK (direction IN ('come', 'go')),
    direction_source  TEXT NOT NULL CHECK (direction_source IN ('file', 'alternate', 'manual')),
    source            TEXT NOT NULL,           -- 'terminal:<file name>', 'manual', 'demo'
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    deleted_at        TEXT,                    -- soft delete
    UNIQUE (employee_id, original_at)          -- idempotency key: employee + terminal instant
);
CREATE INDEX bookings_by_day ON bookings (employee_id, local_date);
CREATE INDEX bookings_by_date ON bookings (local_date);

CREATE TABLE unassigned_bookings (
    id           INTEGER PRIMARY KEY,
    ident_kind   TEXT NOT NULL CHECK (ident_kind IN ('pin', 'personnel_number')),
    ident        TEXT NOT NULL,                -- the unknown PIN (ATTLOG) or personnel number (CSV)
    original_at  TEXT NOT NULL,
    local_date   TEXT NOT NULL,
    direction    TEXT CHECK (direction IN ('come', 'go')),  -- from the file; NULL: unknown
    source       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    UNIQUE (ident_kind, ident, original_at)
);

CREATE TABLE daily_values (
    employee_id       INTEGER NOT NULL REFERENCES employees(id),
    date              TEXT NOT NULL,
    gross             INTEGER NOT NULL,
    breaks            INTEGER NOT NULL,
    net               INTEGER NOT NULL,
    target            INTEGER NOT NULL,
    difference        INTEGER NOT NULL,
    overtime          INTEGER NOT NULL,
    undertime         INTEGER NOT NULL,
    capped            INTEGER NOT NULL,
    errors            TEXT NOT NULL DEFAULT '',   -- comma separated error codes
    provisional       INTEGER NOT NULL,
    holiday_category  INTEGER,
    presence          INTEGER NOT NULL DEFAULT 0,
    credited          INTEGER NOT NULL DEFAULT 0,
    calculated_at     TEXT NOT NULL,
    PRIMARY KEY (employee_id, date)
);

CREATE TABLE monthly_values (
    employee_id      INTEGER NOT NULL REFERENCES employees(id),
    year             INTEGER NOT NULL,
    month            INTEGER NOT NULL,
    gross            INTEGER NOT NULL,
    breaks           INTEGER NOT NULL,
    net              INTEGER NOT NULL,
    target           INTEGER NOT NULL,
    overtime         INTEGER NOT NULL,
    undertime        INTEGER NOT NULL,
    difference       INTEGER NOT NULL,
    flextime_start   INTEGER NOT NULL,
    flextime_change  INTEGER NOT NULL,
    flextime_carry   INTEGER NOT NULL,
    forfeited        INTEGER NOT NULL,
    error_days       INTEGER NOT NULL,
    closed           INTEGER NOT NULL DEFAULT 0,
    calculated_at    TEXT NOT NULL,
    PRIMARY KEY (employee_id, year, month)
);

CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    recipient        TEXT NOT NULL,
    subject          TEXT NOT NULL,
    body             TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    sent_at          TEXT,
    next_attempt_at  TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox (sent_at, next_attempt_at);

CREATE TABLE task_state (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,               -- JSON
    updated_at  TEXT NOT NULL
);
"""

_V2_TRACKING_AND_CLOSING = """
-- Change tracking (issue 4 item 6): one row per (employee, local date) whose bookings changed; seq is
-- monotonic across transactions (assigned as max + 1 inside the write transaction).
CREATE TABLE dirty_days (
    employee_id  INTEGER NOT NULL REFERENCES employees(id),
    local_date   TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    PRIMARY KEY (employee_id, local_date)
);
CREATE INDEX dirty_days_by_seq ON dirty_days (seq);
-- Days that had bookings before tracking existed are dirty once, so the first run after the upgrade
-- calculates them.
INSERT INTO dirty_days (employee_id, local_date, seq)
    SELECT DISTINCT employee_id, local_date, 1 FROM bookings;

-- Month closing (issue 4 item 5): months up to and including closed_through ('YYYY-MM') are closed.
ALTER TABLE employees ADD COLUMN closed_through TEXT;

-- Notifications queued by recurring tasks carry a key so a rerun does not queue them twice.
ALTER TABLE outbox ADD COLUMN dedup_key TEXT;
CREATE UNIQUE INDEX outbox_dedup ON outbox (dedup_key) WHERE dedup_key IS NOT NULL;
"""

_V3_DAILY_VALUES_BY_DATE = """
-- GET /daily-values?date=... (every employee's values of one day) scanned the whole table: the primary key
-- starts with employee_id.
CREATE INDEX daily_values_by_date ON daily_values (date);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core tables: plans, employees, holidays, bookings, values, outbox, task state", _V1_CORE),
    Migration(2, "change tracking (dirty_days), month closing, outbox dedup key", _V2_TRACKING_AND_CLOSING),
    Migration(3, "daily values by date", _V3_DAILY_VALUES_BY_DATE),
)

#: The version a freshly opened store has.
LATEST_VERSION: int = MIGRATIONS[-1].version


def current_version(conn: sqlite3.Connection) -> int:
    """The database's schema version (``PRAGMA user_version``; 0 for a new file)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, target: int = LATEST_VERSION) -> list[int]:
    """Apply the missing steps up to ``target``; returns the versions applied (empty when up to date).

    Each step runs in its own transaction together with the ``user_version`` bump, so a crash leaves the
    database at the last completed version. ``conn`` must be in autocommit mode (``isolation_level=None``).
    Raises :class:`SchemaTooNewError` when the database is newer than this code.
    """
    version = current_version(conn)
    if version > LATEST_VERSION:
        raise SchemaTooNewError(
            f"tna store has schema version {version}, this zmi-reconciler knows up to {LATEST_VERSION}; "
            "upgrade zmi-reconciler")
    applied: list[int] = []
    for step in MIGRATIONS:
        if step.version <= version or step.version > target:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(step.sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(step.version)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(step.version)
    return applied


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (no ';' inside literals in our scripts)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
