"""What the API does, without HTTP: spec changes go to files (then the reconciler), status comes from the
runner, the reconciler and the journal. Controllers are thin wrappers around :class:`ScheduleService`.

Write path (PUT, PATCH, pause, resume, DELETE): per-file lock -> read bytes -> If-Match check (428/412) ->
round-trip edit (:mod:`.yamlio`) -> validate the resulting text with the loader (422 with every error, the
file is never written when invalid) -> atomic write -> ``reconciler.reconcile_now()`` so the answer reflects
the change. The API never calls the runner for spec changes; the reconciler's one path does.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import msgspec

from zmi_reconciler import loader
from zmi_reconciler.api import yamlio
from zmi_reconciler.api.metrics import JournalTail, Metrics
from zmi_reconciler.api.files import ScheduleFiles, etag_for
from zmi_reconciler.api.models import (Fire, Finding, Preview, RunAccepted, RunDetail, RunPage, ScheduleDetail,
                                       ScheduleList, ScheduleStatus, TaskInfo, ValidationReport,
                                       error_from_finding, run_detail, run_summary,
                                       run_summary_dict)
from zmi_reconciler.api.problems import BadRequest, Conflict, FieldError, Invalid, NotFound, RunActive
from zmi_reconciler.config import Settings
from zmi_reconciler.schema import is_valid_id
from zmi_reconciler.tasks import catalog
from zmi_reconciler.tasks.base import utc_now

log = logging.getLogger("zmi_reconciler.api")
MAX_WAIT_SECONDS = 300


def _overlap_error() -> type[BaseException]:
    try:
        from zmi_reconciler.runner import OverlapError
    except ImportError:  # runner not built (tests with fakes)
        return LookupError
    return OverlapError


@dataclass
class Written:
    """Result of a write: the schedule detail after the reconciler saw the file, and whether bytes changed."""

    detail: ScheduleDetail
    changed: bool


class ScheduleService:
    """Schedules, runs, preview, catalog and validation for the API.

    ``runner``: ``trigger(id, task_indexes)``, ``status(id)``, ``wait_run(run_id, timeout)``;
    ``reconciler``: ``states()``, ``reconcile_now()``; ``journal``: ``runs``, ``count_runs``, ``last_run``,
    ``get_run``, ``last_success``. ``clock`` returns aware UTC (preview start).
    """

    def __init__(self, settings: Settings, runner: Any, reconciler: Any, journal: Any,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.runner = runner
        self.reconciler = reconciler
        self.journal = journal
        self.clock = clock
        self.files = ScheduleFiles(settings.schedules_dir)
        self.metrics = Metrics(self)
        self._tail = JournalTail(settings.journal_path)
        self._tail_lock = threading.Lock()
        #: schedule id -> (last run summary, last success), valid until a journal event names the schedule.
        self._last: dict[str, tuple[dict[str, Any] | None, datetime | None]] = {}
        #: schedule id -> (state, runner row, last-run tuple, encoded list item) of the previous list_json.
        self._items: dict[str, tuple[Any, Any, Any, bytes]] = {}

    def poll_journal(self) -> None:
        """Read journal lines appended since the last poll (by any process): count them for the metrics and
        forget the cached last run of every schedule they name."""
        with self._tail_lock:
            seen = False
            for record in self._tail.poll():
                seen = True
                self.metrics.observe(record)
                self._last.pop(record.get("schedule"), None)  # type: ignore[arg-type]
            if self._tail.files_dropped:
                self._last.clear()
            refresh = getattr(self.journal, "refresh", None)
            if seen and refresh is not None:  # the index must hold these lines before the cache is refilled
                refresh(force=True)

    def _last_run(self, schedule_id: str) -> tuple[dict[str, Any] | None, datetime | None]:
        """(last run summary, last success) of a schedule, from the cache kept fresh by :meth:`poll_journal`."""
        cached = self._last.get(schedule_id)
        if cached is None:
            last = self.journal.last_run(schedule_id) if self.journal is not None else None
            cached = (last, self.journal.last_success(schedule_id) if last else None)
            self._last[schedule_id] = cached
        return cached

    def ready(self) -> bool:
        """True once the reconciler has loaded the schedules (its ``ready`` Event, method or flag)."""
        if self.reconciler is None:
            return False
        flag = getattr(self.reconciler, "ready", None)
        if isinstance(flag, threading.Event):
            return flag.is_set()
        if callable(flag):
            return bool(flag())
        return True if flag is None else bool(flag)

    # ------------------------------------------------------------------ reading
    def _states(self) -> dict[str, Any]:
        return self.reconciler.states() if self.reconciler is not None else {}

    def _status_dict(self, schedule_id: str, state: Any, enabled: bool | None = None) -> dict[str, Any]:
        """Status as plain data in the shape of :class:`ScheduleStatus` (the list builds 1,000 of these per
        request, so no model validation here)."""
        schedule = getattr(state, "schedule", None)
        findings = [f for f in (getattr(state, "findings", None) or []) if getattr(f, "severity", "error") == "error"]
        runner_status: dict[str, Any] = {}
        if schedule is not None and self.runner is not None:
            try:
                runner_status = self.runner.status(schedule_id) or {}
            except KeyError:
                runner_status = {}
        last = self.journal.last_run(schedule_id) if self.journal is not None else None
        if enabled is None:
            enabled = bool(schedule.enabled) if schedule is not None else False
        return {
            "enabled": enabled,
            "loaded": schedule is not None,
            "degraded": bool(getattr(state, "degraded", False)) or (state is not None and schedule is None),
            "errors": [error_from_finding(f).model_dump() for f in findings],
            "next_fire": runner_status.get("next_fire"),
            "active_run": runner_status.get("active_run"),
            "queued": bool(runner_status.get("queued", False)),
            "last_run": run_summary_dict(last) if last else None,
            "last_success": self.journal.last_success(schedule_id) if self.journal is not None else None,
        }

    def _status(self, schedule_id: str, state: Any, enabled: bool | None = None) -> ScheduleStatus:
        return ScheduleStatus.model_validate(self._status_dict(schedule_id, state, enabled))

    def list_json(self) -> bytes:
        """GET /schedules as JSON bytes (shape :class:`ScheduleList`): every schedule the reconciler knows
        (valid, degraded or never valid), sorted by id. The hot read path (SPEC 10: 1,000 schedules, p99 <= 25
        ms): each item is encoded with msgspec once and its bytes reused while its inputs are the same objects
        or values (the reconciler's immutable state, the runner's ``(next_fire, active_run, queued)``, the
        cached last run); the answer is the join of the parts."""
        runner = self.runner
        self.poll_journal()
        rows = None
        if runner is not None:
            bulk = getattr(runner, "status_rows", None)
            rows = bulk() if bulk is not None else None
        previous = self._items
        current: dict[str, tuple[Any, Any, Any, bytes]] = {}
        parts = []
        for schedule_id, state in sorted(self._states().items()):
            row = None
            if state.schedule is not None and runner is not None:
                if rows is not None:
                    row = rows.get(schedule_id)
                else:
                    try:
                        status = runner.status(schedule_id)
                    except KeyError:
                        status = None
                    if status:
                        row = (status["next_fire"], status["active_run"], bool(status["queued"]))
            last = self._last_run(schedule_id)
            hit = previous.get(schedule_id)
            if hit is not None and hit[0] is state and hit[2] is last and hit[1] == row:
                part = hit[3]
            else:
                part = _ITEM_ENCODER.encode(_list_item(schedule_id, state, row, last))
            current[schedule_id] = (state, row, last, part)
            parts.append(part)
        self._items = current
        return b'{"items":[' + b",".join(parts) + b"]}"

    def list(self) -> ScheduleList:
        """:meth:`list_json` as a model (for callers in Python)."""
        return ScheduleList.model_validate_json(self.list_json())

    def get(self, schedule_id: str) -> ScheduleDetail:
        """The file as it is now (spec, text, ETag) plus status. Raises :class:`NotFound`."""
        path, data, refused = self.files.read_checked(schedule_id)
        return self._detail(schedule_id, path.name, data, refused)

    def _detail(self, schedule_id: str, file_name: str, data: bytes,
                refused: list[loader.Finding] | None = None) -> ScheduleDetail:
        """``refused``: the loader's findings for a file that may not be read (symlink outside the folder,
        FIFO, too large); then ``source`` is empty and the status is degraded with those errors."""
        result = loader.load_schedule_text(data, file_name)
        valid = not refused and result.schedule is not None and not _errors(result.findings)
        if valid:  # a run_command outside this server's allowlist makes the file invalid here too (E031)
            from zmi_reconciler import lint

            valid = not lint.command_errors(result, self.settings.commands)
        spec = None
        if valid:
            try:
                spec = yamlio.to_plain(yamlio.load(data.decode("utf-8")))
            except (yamlio.YamlSyntaxError, UnicodeDecodeError):
                spec = None
        state = self._states().get(schedule_id)
        enabled = result.schedule.enabled if valid else None
        status = self._status(schedule_id, state, enabled=enabled)
        if refused:
            status = status.model_copy(update={"degraded": True, "errors": [error_from_finding(f) for f in refused]})
        running = getattr(state, "schedule", None)
        running_hash = getattr(state, "content_hash", None) if running is not None else None
        if spec is not None and running_hash == result.content_hash:  # the file runs as written: the same document
            running_spec: dict[str, Any] | None = spec
        else:  # a degraded file: the version that runs, as parsed (durations in seconds)
            running_spec = (running.model_dump(mode="json", by_alias=True, exclude_unset=True)
                            if running is not None else None)
        return ScheduleDetail(id=schedule_id, file=file_name, etag=etag_for(data), spec=spec,
                              source=data.decode("utf-8", errors="replace"), status=status,
                              running_spec=running_spec,
                              running_content_hash=getattr(state, "content_hash", None) if running else None,
                              running_since=getattr(state, "loaded_at", None) if running else None)

    # ------------------------------------------------------------------ writing
    def _validated(self, schedule_id: str, text: str, file_name: str) -> bytes:
        """The text to write, or :class:`Invalid` (422) with every error of the file on this server: the
        loader's, and E031 for a ``run_command`` this server's allowlist lacks (it could never run; the
        reconciler does not load such a file either, so an edit that leaves it would change nothing that runs:
        :meth:`_broken_on_disk` says so)."""
        errors = self._file_errors(text.encode("utf-8"), file_name)
        if not errors:
            return text.encode("utf-8")
        fields = [error_from_finding(f) for f in errors]
        raise Invalid(f"{len(fields)} error(s) in {file_name}; nothing was written", fields)

    def _file_errors(self, data: bytes, file_name: str) -> list[loader.Finding]:
        """The errors of a schedule file's bytes on this server: the loader's; when it loads, E031."""
        result = loader.load_schedule_text(data, file_name)
        errors = _errors(result.findings)
        if result.schedule is None and not errors:
            return [loader.Finding(file_name, 0, 0, "", "E000", "error", "not a valid schedule")]
        if not errors:
            from zmi_reconciler import lint

            errors = lint.command_errors(result, self.settings.commands)
        return errors

    def _after_write(self) -> None:
        if self.reconciler is None:
            return
        reconcile = getattr(self.reconciler, "reconcile_now", None) or getattr(self.reconciler, "reconcile_all")
        reconcile()

    def create(self, schedule_id: Any, document: Any) -> Written:
        """Create ``<id>.yaml`` from a document (modeline, canonical order). 409 if it exists, 422 if invalid."""
        if not isinstance(schedule_id, str) or not is_valid_id(schedule_id):
            raise Invalid("invalid id", [FieldError(path="id", line=0, column=0, code="E003",
                                                    message="id must match ^[a-z0-9][a-z0-9_-]{0,62}$")])
        document = _require_object(document, "spec")
        with self.files.locked(schedule_id):
            path = self.files.path(schedule_id)
            if path.exists() or (self.files.directory / f"{schedule_id}.yml").exists():
                raise Conflict(f"schedule {schedule_id!r} exists; use PUT with If-Match to change it")
            data = self._validated(schedule_id, yamlio.new_document_text(document), path.name)
            self.files.write(schedule_id, data)
            self._after_write()
            return Written(self._detail(schedule_id, path.name, data), True)

    def replace(self, schedule_id: str, document: Any, if_match: str | None) -> Written:
        """PUT: deep-merge ``document`` into the file, keeping untouched layout. 428/412/422/404."""
        document = _require_object(document, "")
        return self._edit(schedule_id, if_match, lambda text: _replace_text(text, document), "PUT")

    def patch(self, schedule_id: str, patch: Any, if_match: str | None, action: str = "PATCH") -> Written:
        """PATCH: RFC 7396 JSON merge patch onto the file. 428/412/422/404."""
        patch = _require_object(patch, "")
        try:
            return self._edit(schedule_id, if_match, lambda text: _patch_text(text, patch), action)
        except Invalid as exc:
            lists = sorted(key for key, value in patch.items() if isinstance(value, list))
            paths = [str(error.get("path") or "") for error in exc.extensions.get("errors") or []]
            hit = [key for key in lists  # errors inside its items, or on a list field itself ({"tasks": []})
                   if any(p.startswith(key + "[") or (p == key and key in _LIST_FIELDS) for p in paths)]
            if hit:  # the usual surprise of RFC 7396: {"tasks": [{"params": ...}]} drops the rest of the task
                names = ", ".join(f"'{key}'" for key in hit)
                hint = (f"a merge patch (RFC 7396) replaces a list whole: send every item of {names} as it should "
                        f"be, or PUT the whole spec")
                detail = exc.detail.rstrip()
                exc.detail = f"{detail[:-1]}; {hint}." if detail.endswith(".") else f"{detail}; {hint}"
            raise

    def set_enabled(self, schedule_id: str, enabled: bool, if_match: str | None) -> Written:
        """pause/resume: write ``enabled`` back to the file (one line changes). A file that does not load is
        not written (422 with its errors as on disk, see :meth:`_broken_on_disk`)."""
        return self.patch(schedule_id, {"enabled": enabled}, if_match, "resume" if enabled else "pause")

    def _edit(self, schedule_id: str, if_match: str | None, change: Callable[[str], str],
              action: str) -> Written:
        with self.files.locked(schedule_id):
            path, data = self.files.read(schedule_id)
            self.files.check_if_match(if_match, data)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise Invalid("the file is not UTF-8", [FieldError(path="", line=1, column=1, code="E005",
                                                                   message="file is not UTF-8 text")]) from None
            try:
                new_data = self._validated(schedule_id, change(text), path.name)
            except Invalid as exc:
                raise self._broken_on_disk(schedule_id, path.name, data, exc, action) from None
            if new_data == data:
                return Written(self._detail(schedule_id, path.name, data), False)
            self.files.write(schedule_id, new_data)
            self._after_write()
            return Written(self._detail(schedule_id, path.name, new_data), True)

    def _broken_on_disk(self, schedule_id: str, file_name: str, data: bytes, invalid: Invalid,
                        action: str) -> Invalid:
        """The 422 of an edit that leaves errors the file on disk already has (pausing a degraded schedule).

        Those errors are reported as the loader finds them in the file on disk (its lines, not those of the
        edited document, which nobody sees), errors the edit adds as they are; the detail says what runs now
        (the last good version, or nothing) and how to stop it: fix or delete the file (the API writes the file
        only, so a pause cannot reach the last good version while the file does not load). ``invalid`` itself
        when the file on disk has none of the errors."""
        on_disk = {(f.code, f.path or ""): f for f in self._file_errors(data, file_name)}
        errors, inherited = [], 0
        for error in invalid.extensions.get("errors") or []:
            found = on_disk.get((error["code"], error["path"]))
            if found is None and error["code"] == "E007":  # a syntax error stops the edit before any path
                found = next((f for f in on_disk.values() if f.code == "E007"), None)
            if found is not None:
                inherited += 1
                errors.append(error_from_finding(found))
            else:
                errors.append(FieldError.model_validate(error))
        if not inherited:
            return invalid
        added = len(errors) - inherited
        state = self._states().get(schedule_id)
        running = getattr(state, "schedule", None)
        since = getattr(state, "loaded_at", None)
        since_text = f" (running since {since.isoformat(timespec='seconds')})" if since is not None else ""
        if running is None:
            now = "No version of it runs (none loaded since this server started, and no usable last good copy)."
        elif running.enabled:
            now = f"Its last good version keeps running{since_text}."
        else:
            now = f"Its last good version stays loaded, paused (enabled: false){since_text}."
        stop = "To stop it" if running is not None and running.enabled else "To change that"
        extra = f", and {added} error(s) that the {action} adds" if added else ""
        return Invalid(f"{action} not applied, nothing was written: {file_name} has {inherited} error(s) on disk "
                       f"that the {action} leaves in place (lines and columns as in the file on disk){extra}. "
                       f"{now} {stop}, fix the file (edit it, or PUT a valid schedule) or delete it "
                       f"(DELETE /api/v1/schedules/{schedule_id}).", errors)

    def delete(self, schedule_id: str, if_match: str | None) -> None:
        """Remove the file (If-Match required); the reconciler removes the schedule from the runner."""
        with self.files.locked(schedule_id):
            _, data = self.files.read(schedule_id)
            self.files.check_if_match(if_match, data)
            self.files.delete(schedule_id)
            self._after_write()

    # ------------------------------------------------------------------ runs
    def trigger(self, schedule_id: str, tasks: list[int] | None) -> RunAccepted:
        """Start a manual run now (ignores timing, exclusions and pause; not overlap: 409 with the active run)."""
        schedule = self._loaded(schedule_id)
        if tasks is not None and not tasks:
            raise Invalid("tasks must list at least one index", [FieldError(
                path="tasks", line=0, column=0, code="E020",
                message=f"tasks must list at least one index 0..{len(schedule.tasks) - 1} (omit it to run all)")])
        if tasks is not None:
            bad = [FieldError(path=f"tasks[{i}]", line=0, column=0, code="E020",
                              message=f"task index {t} out of range 0..{len(schedule.tasks) - 1}")
                   for i, t in enumerate(tasks) if not 0 <= t < len(schedule.tasks)]
            if bad:
                raise Invalid("task indexes out of range", bad)
        try:
            run_id = self.runner.trigger(schedule_id, tasks)
        except _overlap_error() as exc:
            active = getattr(exc, "active_run_id", None) or (exc.args[0] if exc.args else None)
            overlap = getattr(schedule, "overlap", "skip")
            why = f"overlap: {overlap}"
            if getattr(exc, "queue_full", False):
                why += ", the one queue place is taken"
            other_pid = getattr(exc, "other_pid", None)
            where = f" in another process (pid {other_pid})" if other_pid is not None else ""
            raise RunActive(f"run {active} of {schedule_id!r} is active{where} ({why})",
                            active_run=str(active) if active else None) from None
        except KeyError:
            raise NotFound(f"schedule {schedule_id!r} is not loaded") from None
        return RunAccepted(run_id=run_id, schedule=schedule_id, location=f"/api/v1/runs/{run_id}")

    def wait(self, run_id: str, seconds: float) -> RunDetail | None:
        """Block up to ``seconds`` for the run's end; its detail when it ended, else None."""
        if not self.runner.wait_run(run_id, seconds):
            return None
        return self.get_run(run_id)

    def _loaded(self, schedule_id: str) -> Any:
        self.files.path(schedule_id)  # 404 for illegal ids before anything else
        state = self._states().get(schedule_id)
        schedule = getattr(state, "schedule", None)
        if schedule is None:
            if self.files.exists(schedule_id):
                raise Conflict(f"schedule {schedule_id!r} has no valid version loaded; fix the file first")
            raise NotFound(f"no schedule {schedule_id!r}")
        return schedule

    def runs(self, schedule_id: str, page: int, per_page: int, status: str | None) -> RunPage:
        """Runs of a schedule, newest first (from the journal index)."""
        self._known(schedule_id)
        items = self.journal.runs(schedule_id, page=page, per_page=per_page, status=status)
        total = self.journal.count_runs(schedule_id, status=status)
        return RunPage(items=[run_summary(r) for r in items], page=page, per_page=per_page, total=total)

    def last_run(self, schedule_id: str) -> RunDetail:
        self._known(schedule_id)
        run = self.journal.last_run(schedule_id, details=True)
        if run is None:
            raise NotFound(f"schedule {schedule_id!r} has no run in the retained journal")
        return run_detail(run)

    def get_run(self, run_id: str) -> RunDetail:
        run = self.journal.get_run(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r} in the retained journal")
        return run_detail(run)

    def _known(self, schedule_id: str) -> None:
        self.files.path(schedule_id)
        if schedule_id not in self._states() and not self.files.exists(schedule_id):
            raise NotFound(f"no schedule {schedule_id!r}")

    # ------------------------------------------------------------------ preview, catalog, validate
    def preview(self, schedule_id: str, count: int, after: datetime | None) -> Preview:
        """The next ``count`` fires after ``after`` (default now) with DST notes (SPEC 3.2)."""
        from zmi_reconciler import timing

        path, data, refused = self.files.read_checked(schedule_id)
        result = loader.load_schedule_text(data, path.name)
        if refused:
            result.findings = list(refused)
        schedule = result.schedule if not _errors(result.findings) else None
        schedule = schedule or getattr(self._states().get(schedule_id), "schedule", None)
        if schedule is None:
            raise Invalid("the schedule is not valid", [error_from_finding(f) for f in _errors(result.findings)])
        zone = schedule.zone(self.settings.default_timezone)
        start = after if after is not None else self.clock()
        if start.tzinfo is None:
            raise BadRequest("`after` needs a UTC offset, e.g. 2026-03-28T00:00:00Z")
        fires = []
        for fire in itertools.islice(timing.iter_fires(schedule.timing, zone, start), count):
            fires.append(Fire(at=fire.astimezone(timezone.utc), local=fire.astimezone(zone).isoformat(),
                              notes=timing.fire_notes(schedule.timing, zone, fire)))
        return Preview(schedule=schedule_id, timezone=zone.key, enabled=schedule.enabled, fires=fires)

    @staticmethod
    def tasks() -> list[TaskInfo]:
        """The task catalog with each task's params JSON Schema."""
        out = []
        for name in sorted(catalog.REGISTRY):
            spec = catalog.REGISTRY[name]
            out.append(TaskInfo(name=spec.name, zmi_name=spec.zmi_name, description=spec.description,
                                params=spec.params_model.model_json_schema(), available=spec.available,
                                reason=spec.unavailable_reason))
        return out

    def validate(self, text: str, schedule_id: str) -> ValidationReport:
        """Validate a YAML text (loader + lint) without writing; findings carry line/column/path."""
        file_name = f"{schedule_id}.yaml"
        result = loader.load_schedule_text(text.encode("utf-8"), file_name)
        findings = list(result.findings)
        if result.schedule is not None:
            from zmi_reconciler import lint

            seen = {(f.code, f.path, f.line, f.message) for f in findings}
            findings += [f for f in lint.lint([result], self.settings.default_timezone,
                                              commands=self.settings.commands)
                         if (f.code, f.path, f.line, f.message) not in seen]
        out = [Finding(severity="error" if f.severity == "error" else "warning", code=f.code, path=f.path or "",
                       line=max(f.line or 0, 0), column=max(f.column or 0, 0), message=f.message)
               for f in findings]
        return ValidationReport(valid=result.schedule is not None and not any(f.severity == "error" for f in out),
                                findings=out)


_ITEM_ENCODER = msgspec.json.Encoder()


def _list_item(schedule_id: str, state: Any, row: tuple[Any, Any, bool] | None,
               last_run: tuple[dict[str, Any] | None, datetime | None]) -> dict[str, Any]:
    """One item of GET /schedules as plain data: ``row`` is the runner's ``(next_fire, active_run, queued)``
    (None when the runner does not hold the schedule), ``last_run`` the cached (last run summary, last success)."""
    schedule = state.schedule
    file_hash = getattr(state, "file_hash", None) or state.content_hash
    last, last_success = last_run
    errors = [error_from_finding(f).model_dump() for f in state.findings
              if f.severity == "error"] if state.degraded else []
    return {
        "id": schedule_id,
        "name": schedule.name if schedule is not None else None,
        "timing": schedule.timing.type if schedule is not None else None,
        "etag": f'"{file_hash}"' if file_hash else None,
        "status": {
            "enabled": schedule is not None and schedule.enabled,
            "loaded": schedule is not None,
            "degraded": state.degraded or schedule is None,
            "errors": errors,
            "next_fire": row[0] if row else None,
            "active_run": row[1] if row else None,
            "queued": bool(row[2]) if row else False,
            "last_run": run_summary_dict(last) if last else None,
            "last_success": last_success,
        }}


def _errors(findings: list[Any]) -> list[Any]:
    return [f for f in findings if getattr(f, "severity", "error") == "error"]


def _require_object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid("the document must be a JSON object", [FieldError(
            path=path, line=0, column=0, code="E012", message=f"expected an object, got {type(value).__name__}")])
    return value


def _list_fields() -> frozenset[str]:
    """The schedule file's top-level keys that hold a list (``tasks``, ``exclude``)."""
    from typing import get_origin

    from zmi_reconciler.schema import Schedule

    return frozenset(name for name, field in Schedule.model_fields.items() if get_origin(field.annotation) is list)


_LIST_FIELDS = _list_fields()


def _replace_text(text: str, document: dict[str, Any]) -> str:
    try:
        return yamlio.replace_document(text, document)
    except yamlio.YamlSyntaxError:  # the file is broken: PUT replaces it as a whole
        return yamlio.new_document_text(document)


def _patch_text(text: str, patch: dict[str, Any]) -> str:
    try:
        return yamlio.merge_patch(text, patch)
    except yamlio.YamlSyntaxError as exc:
        raise Invalid("the file is not valid YAML; fix it or use PUT", [FieldError(
            path="", line=exc.line, column=exc.column, code="E007", message=str(exc))]) from None
