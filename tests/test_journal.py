"""Journal (SPEC 4): whole-line appends, torn lines, cross-process writers, index queries, interruption,
retention. Clocks are injected; nothing sleeps."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from zmi_reconciler.journal import Journal, iso_utc, parse_utc

T0 = datetime(2026, 3, 28, 23, 59, 0, tzinfo=timezone.utc)


class Clock:
    """A settable clock returning aware UTC datetimes."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def _run(journal: Journal, clock: Clock, schedule: str, slot: datetime | None, status: str,
         trigger: str = "scheduled", tasks: int = 1) -> str:
    run_id = f"{schedule}@{slot:%Y%m%dT%H%M%SZ}" if slot else f"{schedule}@manual-{clock():%Y%m%dT%H%M%S%f}"
    journal.append("run_started", schedule=schedule, run_id=run_id, trigger=trigger, scheduled_for=slot,
                   content_hash="h1")
    for index in range(tasks):
        journal.append("task_started", schedule=schedule, run_id=run_id, index=index, task="calculate_days")
        clock.advance(milliseconds=250)
        journal.append("task_log", schedule=schedule, run_id=run_id, index=index, task="calculate_days",
                       level="info", message=f"day batch {index}")
        journal.append("task_finished", schedule=schedule, run_id=run_id, index=index, task="calculate_days",
                       status=status if status != "partial" else "failed", duration_ms=250,
                       result={"days": 10 + index}, error=None if status == "succeeded" else "boom")
    clock.advance(milliseconds=10)
    journal.append("run_finished", schedule=schedule, run_id=run_id, status=status)
    clock.advance(seconds=1)
    return run_id


def _lines(directory: Path) -> list[bytes]:
    out: list[bytes] = []
    for path in sorted(directory.glob("*.jsonl")):
        out.extend(path.read_bytes().splitlines())
    return out


def test_iso_utc_formats_and_parses_back() -> None:
    berlin = datetime.fromisoformat("2026-03-29T03:30:00+02:00")
    assert iso_utc(berlin) == "2026-03-29T01:30:00Z"
    assert iso_utc(berlin, ms=True) == "2026-03-29T01:30:00.000Z"
    assert iso_utc(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)) == "2026-01-02T03:04:05.678Z"
    assert parse_utc("2026-03-29T01:30:00.000Z") == berlin


def test_append_writes_one_json_line_with_ts_and_fields(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 11, 29, 4, 0, 0, 123456, tzinfo=timezone.utc))
    journal = Journal(tmp_path, clock=clock)
    record = journal.append("schedule_invalid", schedule="nightly", file=Path("schedules.d/nightly.yaml"),
                            line=3, column=5, path="timing.at", message="expected HH:MM\nbut got 25:00")
    assert record["ts"] == "2026-11-29T04:00:00.123Z"
    lines = (tmp_path / "2026-11-29.jsonl").read_bytes().split(b"\n")
    assert lines[1:] == [b""]  # exactly one line, newline-terminated
    decoded = json.loads(lines[0])
    assert list(decoded)[:2] == ["ts", "event"]
    assert decoded == {"ts": "2026-11-29T04:00:00.123Z", "event": "schedule_invalid", "schedule": "nightly",
                       "file": "schedules.d/nightly.yaml", "line": 3, "column": 5, "path": "timing.at",
                       "message": "expected HH:MM\nbut got 25:00"}
    assert re.fullmatch(rb'\{"ts":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z".*\}', lines[0])


def test_roundtrip_through_reopen(tmp_path: Path) -> None:
    clock = Clock()
    journal = Journal(tmp_path, clock=clock)
    slot = datetime(2026, 3, 28, 23, 0, tzinfo=timezone.utc)
    run_id = _run(journal, clock, "nightly", slot, "succeeded", tasks=2)
    before = journal.get_run(run_id)
    reopened = Journal(tmp_path, clock=clock)
    after = reopened.get_run(run_id)
    assert after == before
    assert after is not None
    assert after["status"] == "succeeded"
    assert after["trigger"] == "scheduled"
    assert after["scheduled_for"] == slot
    assert after["content_hash"] == "h1"
    assert after["started_at"] == T0
    assert after["duration_ms"] == 510
    assert [(t["index"], t["status"], t["duration_ms"], t["result"], t["error"]) for t in after["tasks"]] == [
        (0, "succeeded", 250, {"days": 10}, None), (1, "succeeded", 250, {"days": 11}, None)]
    assert [log["message"] for log in after["logs"]] == ["day batch 0", "day batch 1"]
    assert after["logs"][0]["ts"] == T0 + timedelta(milliseconds=250)


def test_run_across_utc_midnight_spans_two_files(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 3, 28, 23, 59, 59, 900000, tzinfo=timezone.utc))
    journal = Journal(tmp_path, clock=clock)
    run_id = _run(journal, clock, "nightly", None, "succeeded", trigger="manual", tasks=1)
    assert sorted(p.name for p in tmp_path.glob("*.jsonl")) == ["2026-03-28.jsonl", "2026-03-29.jsonl"]
    for opened in (journal, Journal(tmp_path, clock=clock)):
        run = opened.get_run(run_id)
        assert run is not None
        assert run["status"] == "succeeded"
        assert [t["status"] for t in run["tasks"]] == ["succeeded"]
        assert len(run["logs"]) == 1


def test_torn_last_line_is_skipped_with_warning_and_next_append_stays_valid(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    journal = Journal(tmp_path, clock=clock)
    finished = _run(journal, clock, "nightly", datetime(2026, 3, 28, 23, 0, tzinfo=timezone.utc), "succeeded")
    journal.close()
    path = tmp_path / "2026-03-28.jsonl"
    whole = b'{"ts":"2026-03-28T23:59:30.000Z","event":"run_started","schedule":"nightly","run_id":"nightly@x"}'
    with open(path, "ab") as handle:
        handle.write(whole[: len(whole) // 2])  # the crash
    caplog.set_level(logging.WARNING, logger="zmi_reconciler.journal")
    reopened = Journal(tmp_path, clock=clock)
    assert any("incomplete last line" in r.getMessage() and "2026-03-28.jsonl:6" in r.getMessage()
               for r in caplog.records)
    assert [r["run_id"] for r in reopened.runs("nightly")] == [finished]
    reopened.append("schedule_loaded", schedule="other", file="schedules.d/other.yaml", content_hash="h2")
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert lines[-3] == whole[: len(whole) // 2]  # the torn half stays its own (invalid) line
    assert json.loads(lines[-2])["event"] == "schedule_loaded"
    events = [e["event"] for e in Journal(tmp_path, clock=clock).iter_events()]
    assert events[-1] == "schedule_loaded"
    assert len(events) == 6


def test_invalid_middle_line_is_skipped_with_file_and_line(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    path = tmp_path / "2026-03-28.jsonl"
    good = [json.dumps({"ts": "2026-03-28T10:00:00.000Z", "event": "run_started", "schedule": "a",
                        "run_id": "a@1", "trigger": "manual", "scheduled_for": None}),
            "this is not json",
            json.dumps({"ts": "not a time", "event": "run_finished", "schedule": "a", "run_id": "a@1"}),
            json.dumps({"ts": "2026-03-28T10:00:01.000Z", "event": "run_finished", "schedule": "a",
                        "run_id": "a@1", "status": "failed"})]
    path.write_text("\n".join(good) + "\n")
    caplog.set_level(logging.WARNING, logger="zmi_reconciler.journal")
    journal = Journal(tmp_path, clock=clock)
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"{path}:2: invalid line skipped" in m for m in messages)
    assert any(f"{path}:3: invalid line skipped" in m for m in messages)
    assert journal.last_run("a")["status"] == "failed"  # type: ignore[index]
    assert journal.last_run("a")["duration_ms"] == 1000  # type: ignore[index]


def test_damaged_task_line_is_skipped_with_a_warning_when_its_run_is_read(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The open does not decode task lines; a task line torn mid-write (and terminated by the next append) is
    found when the run's details are read: skipped with file:line, once, and the run's other lines stay."""
    clock = Clock(datetime(2026, 3, 28, 10, 0, tzinfo=timezone.utc))
    journal = Journal(tmp_path, clock=clock)
    run_id = _run(journal, clock, "a", None, "succeeded", trigger="manual", tasks=2)
    path = tmp_path / "2026-03-28.jsonl"
    lines = path.read_bytes().split(b"\n")
    number = next(i for i, line in enumerate(lines) if b'"task_finished"' in line and b'"index":0' in line)
    lines[number] = lines[number][:lines[number].index(b'"result"')]  # torn after the run id
    path.write_bytes(b"\n".join(lines))
    caplog.set_level(logging.WARNING, logger="zmi_reconciler.journal")
    reopened = Journal(tmp_path, clock=clock)
    assert not caplog.records  # the open does not look at task lines
    run = reopened.get_run(run_id)
    assert run is not None and run["status"] == "succeeded"
    assert [(t["index"], t["status"]) for t in run["tasks"]] == [(0, "running"), (1, "succeeded")]
    warned = [r.getMessage() for r in caplog.records]
    assert warned == [f"journal: {path}:{number + 1}: damaged line of run {run_id} skipped (not valid JSON)"]
    reopened.get_run(run_id)
    assert len(caplog.records) == 1  # once per line and process


def test_instants_mean_the_same_on_the_fast_and_the_full_path(tmp_path: Path) -> None:
    """The bulk decoder (msgspec) and parse_utc read instants alike: lowercase t/z, nanosecond fractions
    (rounded), offsets. A blank line sends the first file down the full path; the second takes the fast one."""
    lines = [b'{"ts":"2026-03-28t10:00:00.1234567z","event":"run_started","schedule":"a","run_id":"a@1",'
             b'"trigger":"scheduled","scheduled_for":"2026-03-28T11:00:00.0000005+01:00"}',
             b'{"ts":"2026-03-28T10:00:01.9999999Z","event":"run_finished","schedule":"a","run_id":"a@1",'
             b'"status":"succeeded"}']
    (tmp_path / "2026-03-28.jsonl").write_bytes(lines[0] + b"\n\n" + lines[1] + b"\n")
    (tmp_path / "2026-03-29.jsonl").write_bytes(b"\n".join(lines).replace(b"a@1", b"b@1").replace(
        b'"a"', b'"b"') + b"\n")
    journal = Journal(tmp_path, index_cache=False)
    for sid in ("a", "b"):
        run = journal.last_run(sid)
        assert run is not None and run["status"] == "succeeded"
        assert run["started_at"] == datetime(2026, 3, 28, 10, 0, 0, 123457, tzinfo=timezone.utc)
        assert run["finished_at"] == datetime(2026, 3, 28, 10, 0, 2, tzinfo=timezone.utc)
        assert journal.last_slot(sid) == datetime(2026, 3, 28, 10, 0, 0, 1, tzinfo=timezone.utc)
    assert parse_utc("2026-03-28t10:00:00.1234567z") == datetime(2026, 3, 28, 10, 0, 0, 123457, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        parse_utc("28.03.2026 10:00")


@pytest.mark.parametrize("finished", [
    b'{"ts":"2026-03-28T10:00:01.000Z","event":"\\u0072un_finished","schedule":"a","run_id":"a@1","status":"failed"}',
    b'{"ts":"2026-03-28T10:00:01.000Z","event" : "run_finished","schedule":"a","run_id":"a@1","status":"failed"}',
    b'{"ts":"2026-03-28T10:00:01.000Z","schedule":"a","event":"run_finished","run_id":"a@1","status":"failed"}',
    b'{"ts":"2026-03-28T10:00:01.000Z","\\u0065vent":"run_finished","schedule":"a","run_id":"a@1","status":"failed"}',
    b'{"ts":"2026-03-28T10:00:01.000Z","ev\\u0065nt":"run_finished","schedule":"a","run_id":"a@1","status":"failed"}',
], ids=["escaped value", "spaces", "key order", "escaped key", "escape inside the key"])
def test_run_lines_in_another_form_are_never_missed(tmp_path: Path, finished: bytes) -> None:
    """A run-level line written by hand or by another tool is decoded like any other, even next to a task line
    whose result holds an "event" key of its own (which would balance a per-chunk count)."""
    started = (b'{"ts":"2026-03-28T10:00:00.000Z","event":"run_started","schedule":"a","run_id":"a@1",'
               b'"trigger":"manual"}')
    # balances the count of "event":" keys (and of "event" for an escaped key)
    nested = b'{"event":"x"}' if b'"event" :' in finished or b"\\u0065" in finished else b'{}'
    task = (b'{"ts":"2026-03-28T10:00:00.500Z","event":"task_finished","schedule":"a","run_id":"a@1","index":0,'
            b'"task":"x","status":"failed","result":' + nested + b'}')
    (tmp_path / "2026-03-28.jsonl").write_bytes(b"\n".join([started, task, finished]) + b"\n")
    for journal in (Journal(tmp_path, index_cache=False), Journal(tmp_path)):
        assert journal.last_run("a")["status"] == "failed"  # type: ignore[index]
        assert journal.close_interrupted() == []


def test_a_run_event_nested_in_a_task_result_is_not_taken_for_a_run_line(tmp_path: Path, caplog) -> None:
    """The byte search finds "event":"run_finished" inside a task's result too; that line is a task line, so the
    run stays unfinished (here the per-chunk counts balance through a line without an event, so only the
    decoded event tells the two apart)."""
    started = (b'{"ts":"2026-03-28T10:00:00.000Z","event":"run_started","schedule":"a","run_id":"a@1",'
               b'"trigger":"manual","pid":1}')
    task = (b'{"ts":"2026-03-28T10:00:00.500Z","event":"task_finished","schedule":"a","run_id":"a@1","index":0,'
            b'"task":"x","status":"succeeded","result":{"event":"run_finished","status":"succeeded"}}')
    no_event = b'{"ts":"2026-03-28T10:00:00.600Z","schedule":"a"}'
    (tmp_path / "2026-03-28.jsonl").write_bytes(b"\n".join([started, task, no_event]) + b"\n")
    for journal in (Journal(tmp_path, index_cache=False), Journal(tmp_path)):
        run = journal.last_run("a")
        assert run is not None and run["status"] == "running" and run["finished_at"] is None
    assert "2026-03-28.jsonl:3: invalid line skipped" in caplog.text


def test_the_run_index_adds_nothing_to_garbage_collections(tmp_path: Path) -> None:
    """A server holds hundreds of thousands of runs; the collector must not scan them (fire lag, SPEC 10)."""
    import gc

    clock = Clock()
    journal = Journal(tmp_path, clock=clock)
    for n in range(5):
        _run(journal, clock, "a", None, "succeeded", trigger="manual")
    reopened = Journal(tmp_path, clock=clock)  # from the cache entries
    gc.collect()
    for index in (journal, reopened):
        runs = list(index._runs.values())
        assert len(runs) == 5
        assert not any(gc.is_tracked(run) or gc.is_tracked(run.positions) for run in runs)


def _writer_process(directory: str, tag: str, count: int) -> None:
    journal = Journal(Path(directory))
    for i in range(count):
        journal.append("task_log", schedule=tag, run_id=f"{tag}@run", index=0, task="x", level="info",
                       message=f"{tag} {i} " + "x" * (i % 300))


def test_two_processes_append_concurrently_without_tearing(tmp_path: Path) -> None:
    observer = Journal(tmp_path)
    observer.append("run_started", schedule="p1", run_id="p1@run", trigger="manual")
    observer.append("run_started", schedule="p2", run_id="p2@run", trigger="manual")
    # fork: no re-import in the children (spawn costs seconds on a busy box); the lock is reopened after fork.
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    procs = [ctx.Process(target=_writer_process, args=(str(tmp_path), tag, 500)) for tag in ("p1", "p2")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    lines = _lines(tmp_path)
    decoded = [json.loads(line) for line in lines]  # every line valid JSON
    assert len(decoded) == 1002
    for tag in ("p1", "p2"):
        messages = [d["message"].split(" ")[1] for d in decoded if d.get("schedule") == tag and "message" in d]
        assert messages == [str(i) for i in range(500)]  # in order, none lost
    # The observer's index picks up the other processes' lines before answering.
    run = observer.get_run("p1@run")
    assert run is not None
    assert len(run["logs"]) == 500
    observer.append("run_finished", schedule="p1", run_id="p1@run", status="succeeded")
    assert observer.last_run("p1")["status"] == "succeeded"  # type: ignore[index]
    assert len(_lines(tmp_path)) == 1003


def test_index_queries_paging_and_filters(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 5, 1, 0, 0, tzinfo=timezone.utc))
    journal = Journal(tmp_path, clock=clock)
    ids = []
    for i in range(120):
        slot = datetime(2026, 5, 1, tzinfo=timezone.utc) + timedelta(minutes=i)
        ids.append(_run(journal, clock, "every-minute", slot, "failed" if i % 3 == 0 else "succeeded", tasks=1))
    _run(journal, clock, "other", datetime(2026, 5, 2, tzinfo=timezone.utc), "succeeded")
    newest_first = list(reversed(ids))
    assert [r["run_id"] for r in journal.runs("every-minute", page=3, per_page=10)] == newest_first[20:30]
    assert [r["run_id"] for r in journal.runs("every-minute", page=13, per_page=10)] == []
    assert [r["run_id"] for r in journal.runs("every-minute", page=11, per_page=11)] == newest_first[110:]
    failed = [ids[i] for i in reversed(range(120)) if i % 3 == 0]
    assert len(failed) == 40
    assert [r["run_id"] for r in journal.runs("every-minute", page=2, per_page=15, status="failed")] == failed[15:30]
    assert journal.count_runs("every-minute") == 120
    assert journal.count_runs("every-minute", status="failed") == 40
    assert journal.count_runs("every-minute", status=["failed", "succeeded"]) == 120
    assert journal.runs("nope") == []
    last = journal.last_run("every-minute")
    assert last is not None and last["run_id"] == ids[-1] and last["status"] == "succeeded"
    assert journal.last_run("every-minute", details=True)["tasks"][0]["result"] == {"days": 10}  # type: ignore[index]
    assert journal.last_run("nope") is None
    assert journal.get_run("nope@1") is None
    assert journal.schedule_ids() == ["every-minute", "other"]
    with pytest.raises(ValueError):
        journal.runs("every-minute", page=0)


def test_last_slot_counts_scheduled_catch_up_skipped_and_missed_not_manual(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc))
    journal = Journal(tmp_path, clock=clock)
    base = datetime(2026, 5, 1, 5, 0, tzinfo=timezone.utc)
    assert journal.last_slot("nightly") is None
    _run(journal, clock, "nightly", base, "succeeded")
    assert journal.last_slot("nightly") == base
    assert journal.last_success("nightly") == clock.now - timedelta(seconds=1)
    success_at = journal.last_success("nightly")
    journal.append("run_missed", schedule="nightly", run_id="nightly@x1", scheduled_for=base + timedelta(days=1))
    assert journal.last_slot("nightly") == base + timedelta(days=1)
    journal.append("run_skipped", schedule="nightly", run_id="nightly@x2", scheduled_for=base + timedelta(days=2),
                   reason="overlap")
    assert journal.last_slot("nightly") == base + timedelta(days=2)
    _run(journal, clock, "nightly", None, "failed", trigger="manual")
    _run(journal, clock, "nightly", base + timedelta(days=3), "failed", trigger="catch_up")
    assert journal.last_slot("nightly") == base + timedelta(days=3)
    assert journal.last_success("nightly") == success_at  # failures do not count
    # An older slot recorded late does not move last_slot backwards.
    journal.append("run_missed", schedule="nightly", run_id="nightly@x3", scheduled_for=base)
    reopened = Journal(tmp_path, clock=clock)
    assert reopened.last_slot("nightly") == journal.last_slot("nightly") == base + timedelta(days=3)
    assert reopened.last_success("nightly") == success_at
    assert [r["trigger"] for r in reopened.runs("nightly")] == ["catch_up", "manual", "scheduled"]


def test_lines_from_another_writer_are_picked_up(tmp_path: Path) -> None:
    clock = Clock()
    reader = Journal(tmp_path, clock=clock, refresh_interval=0)
    writer = Journal(tmp_path, clock=clock)  # a second index over the same files, like a CLI `run`
    assert reader.last_run("nightly") is None
    run_id = _run(writer, clock, "nightly", T0, "partial")
    last = reader.last_run("nightly")
    assert last is not None and last["run_id"] == run_id and last["status"] == "partial"
    # The reader appends in between; offsets stay consistent for both.
    reader.append("schedule_paused", schedule="nightly")
    run2 = _run(writer, clock, "nightly", T0 + timedelta(hours=1), "succeeded", tasks=2)
    details = reader.get_run(run2)
    assert details is not None and [t["index"] for t in details["tasks"]] == [0, 1]
    assert reader.count_runs("nightly") == 2


def test_refresh_interval_throttles_picking_up_other_writers(tmp_path: Path) -> None:
    clock = Clock()
    reader = Journal(tmp_path, clock=clock, refresh_interval=3600)
    writer = Journal(tmp_path, clock=clock)
    assert reader.count_runs("nightly") == 0  # this query used up the interval
    _run(writer, clock, "nightly", T0, "succeeded")
    assert reader.count_runs("nightly") == 0
    reader.refresh(force=True)
    assert reader.count_runs("nightly") == 1


def test_close_interrupted_closes_only_dead_runs(tmp_path: Path) -> None:
    clock = Clock()
    journal = Journal(tmp_path, clock=clock)
    slot = datetime(2026, 3, 28, 23, 0, tzinfo=timezone.utc)
    journal.append("run_started", schedule="nightly", run_id="nightly@A", trigger="scheduled", scheduled_for=slot)
    journal.append("task_started", schedule="nightly", run_id="nightly@A", index=0, task="backup_database")
    journal.append("task_finished", schedule="nightly", run_id="nightly@A", index=0, task="backup_database",
                   status="succeeded", duration_ms=5, result={}, error=None)
    journal.append("task_started", schedule="nightly", run_id="nightly@A", index=1, task="calculate_days")
    # A run of another live process (our parent) must be left alone.
    journal.append("run_started", schedule="cli", run_id="cli@manual", trigger="manual", pid=os.getppid())
    done = _run(journal, clock, "done", slot, "succeeded")
    journal.close()

    restarted = Journal(tmp_path, clock=clock)
    assert restarted.orphaned_runs() == ["nightly@A"]
    # serve hands over what orphaned_runs gave; each is checked again (unknown, live and finished ones stay)
    assert restarted.close_interrupted(["cli@manual", "nowhere@1", done, "nightly@A"]) == ["nightly@A"]
    run = restarted.get_run("nightly@A")
    assert run is not None
    assert run["status"] == "interrupted"
    assert [t["status"] for t in run["tasks"]] == ["succeeded", "interrupted"]
    assert restarted.get_run("cli@manual")["status"] == "running"  # type: ignore[index]
    assert restarted.close_interrupted() == []
    interrupted = [e for e in restarted.iter_events() if e["event"] == "run_interrupted"]
    assert interrupted == [{"ts": iso_utc(clock.now, ms=True), "event": "run_interrupted", "schedule": "nightly",
                            "run_id": "nightly@A", "trigger": "scheduled", "scheduled_for": "2026-03-28T23:00:00Z"}]
    assert Journal(tmp_path, clock=clock).last_run("nightly")["status"] == "interrupted"  # type: ignore[index]
    assert restarted.last_slot("nightly") == slot  # an interrupted slot is not run again


def test_retention_deletes_old_files_and_their_runs(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc))
    journal = Journal(tmp_path, retention_days=90, clock=clock)
    old = _run(journal, clock, "nightly", datetime(2026, 1, 1, 5, 0, tzinfo=timezone.utc), "succeeded")
    clock.advance(days=80)
    kept = _run(journal, clock, "nightly", datetime(2026, 3, 22, 5, 0, tzinfo=timezone.utc), "failed")
    clock.now = datetime(2026, 4, 1, 12, 0, tzinfo=timezone.utc)  # 2026-01-01 is exactly 90 days back
    assert journal.apply_retention() == []
    clock.advance(days=1)
    assert journal.apply_retention() == [tmp_path / "2026-01-01.jsonl"]
    assert sorted(p.name for p in tmp_path.glob("*.jsonl")) == ["2026-03-22.jsonl"]
    assert [r["run_id"] for r in journal.runs("nightly")] == [kept]
    assert journal.get_run(old) is None
    assert journal.last_slot("nightly") == datetime(2026, 3, 22, 5, 0, tzinfo=timezone.utc)
    assert journal.last_success("nightly") is not None  # kept although the succeeded run's file is gone
    assert Journal(tmp_path, clock=clock).count_runs("nightly") == 1


def test_malformed_instant_is_written_but_not_indexed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(tmp_path, clock=Clock())
    caplog.set_level(logging.WARNING, logger="zmi_reconciler.journal")
    journal.append("run_missed", schedule="nightly", run_id="nightly@x", scheduled_for="tomorrow")
    assert journal.last_slot("nightly") is None
    assert [e["scheduled_for"] for e in journal.iter_events()] == ["tomorrow"]
    assert any("run_missed not indexed" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("form", ["compact", "spaced"])
def test_lines_in_other_forms_and_odd_run_ids_are_indexed_alike(tmp_path: Path, form: str) -> None:
    """Compact lines take the byte-search path at open (only run-level lines decoded, instants by the decoder),
    json.dumps' default form the full decode; offset and naive instants and a run id that JSON may escape
    (non-ASCII, ``/``) give the same index and the same run details either way."""
    run_id = "ä/b@1"
    lines = [
        {"ts": "2026-03-28T12:00:00.000+02:00", "event": "run_started", "schedule": "a", "run_id": run_id,
         "trigger": "scheduled", "scheduled_for": "2026-03-28T10:00:00"},
        {"ts": "2026-03-28T10:00:00.100Z", "event": "task_started", "schedule": "a", "run_id": run_id,
         "index": 0, "task": "x"},
        {"ts": "2026-03-28T10:00:00.150Z", "event": "task_started", "schedule": "a", "run_id": "other@1",
         "index": 0, "task": "y"},
        {"ts": "2026-03-28T10:00:00.200Z", "event": "task_finished", "schedule": "a", "run_id": run_id,
         "index": 0, "task": "x", "status": "succeeded", "result": {"n": 1}},
        {"ts": "2026-03-28T10:00:01.000Z", "event": "run_finished", "schedule": "a", "run_id": run_id,
         "status": "succeeded"},
    ]
    dump = (lambda r: json.dumps(r, separators=(",", ":"), ensure_ascii=False)) if form == "compact" else json.dumps
    (tmp_path / "2026-03-28.jsonl").write_text("".join(dump(r) + "\n" for r in lines), encoding="utf-8")
    journal = Journal(tmp_path, clock=Clock(), index_cache=False)
    ten = datetime(2026, 3, 28, 10, 0, tzinfo=timezone.utc)
    run = journal.get_run(run_id)
    assert run is not None
    assert (run["started_at"], run["scheduled_for"], run["finished_at"], run["status"], run["duration_ms"]) == (
        ten, ten, ten + timedelta(seconds=1), "succeeded", 1000)
    assert [(t["task"], t["status"], t["result"]) for t in run["tasks"]] == [("x", "succeeded", {"n": 1})]
    assert journal.last_slot("a") == ten and journal.last_success("a") == ten + timedelta(seconds=1)


def test_a_deferred_open_reads_nothing_until_opened_and_then_exactly_once(tmp_path: Path) -> None:
    """serve builds its API between constructing the journal and reading it (defer_open); the first append
    or query opens it implicitly, and a line appended that way is indexed once."""
    clock = Clock()
    first = Journal(tmp_path, clock=clock)
    run_id = _run(first, clock, "a", None, "succeeded", trigger="manual")
    first.close()

    deferred = Journal(tmp_path, clock=clock, defer_open=True)
    assert deferred._runs == {}  # nothing read yet
    deferred.open()
    deferred.open()  # idempotent
    assert deferred.count_runs("a") == 1 and deferred.get_run(run_id)["status"] == "succeeded"

    by_append = Journal(tmp_path, clock=clock, defer_open=True)
    second = _run(by_append, clock, "a", None, "failed", trigger="manual")  # opens, then indexes its own lines
    assert by_append.count_runs("a") == 2
    assert [r["run_id"] for r in by_append.runs("a")] == [second, run_id]
    assert by_append.last_run("a")["status"] == "failed"

    by_query = Journal(tmp_path, clock=clock, defer_open=True)
    assert by_query.last_run("a")["run_id"] == second and by_query.count_runs("a") == 2

    never = Journal(tmp_path, clock=clock, defer_open=True)
    never.close()  # closing an unopened journal writes no cache from an empty index
    assert Journal(tmp_path, clock=clock).count_runs("a") == 2


def test_the_search_for_run_lines_finds_each_line_once_across_search_windows() -> None:
    """Run lines are searched in windows of ``_FIND_WINDOW`` bytes: a line whose ``"event":"run_`` straddles a
    window's end, or sits right at the chunk's end, is found like any other, once, at its line's start."""
    import random

    from zmi_reconciler import journal as journal_module

    rng = random.Random(7)
    window = journal_module._FIND_WINDOW
    needle = journal_module._RUN_EVENT
    head = b'{"ts":"2026-03-28T10:00:00.000Z",'  # as the writer puts it: the event key right after "ts"
    def task(pad: int) -> bytes:
        return head + b'"event":"task_x","pad":"' + b"y" * pad + b'"}'
    for _ in range(40):
        lines: list[bytes] = []
        size = 0
        while size < 3 * window:
            if rng.random() < 0.3:  # a filler, then a run line whose needle ends near a window boundary
                target = (size // window + 1) * window + rng.randint(-len(needle), len(needle))
                filler = task(0)
                filler = task(max(0, target - size - len(head) - len(filler) - 1))
                lines.append(filler)
                size += len(filler) + 1
                line = head + needle + b'started"}'
            else:
                line = task(rng.randint(0, 3000))
            lines.append(line)
            size += len(line) + 1
        data = b"\n".join(lines) + b"\n"
        end = len(data) - 1
        starts, raws = Journal._run_lines(data, end, data.count(b"\n")) or ([], [])
        expected_starts, offset = [], 0
        for line in lines:
            if needle in line:
                expected_starts.append(offset)
            offset += len(line) + 1
        assert starts == expected_starts
        assert raws == [line for line in lines if needle in line]
        assert starts, "the generator made no run line"
