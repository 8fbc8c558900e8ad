"""Loader: every error class of issue 2 item 3 with its exact line and column, and folder rules."""

from __future__ import annotations

import hashlib
import os
from datetime import date
from pathlib import Path

import pytest

from zmi_reconciler.loader import (CODES, MAX_FILE_BYTES, LoadResult, load_paths, load_schedule_file,
                                   load_schedule_text, path_str)

VALID = """\
# yaml-language-server: $schema=../openapi/schedule.schema.json
name: Nightly
timing:
  type: daily
  at: "05:00"
tasks:
  - task: backup_database
    params: {keep: 7}
  - task: calculate_days
"""


def load(text: str | bytes, name: str = "s.yaml") -> LoadResult:
    return load_schedule_text(text, name)


def where(result: LoadResult) -> list[tuple[int, int, str, str]]:
    """(line, column, code, path) of every finding."""
    return [(f.line, f.column, f.code, f.path) for f in result.findings]


def test_valid_file_loads_with_hash_and_positions():
    result = load(VALID)
    assert result.findings == []
    assert result.schedule is not None and result.schedule.name == "Nightly"
    assert result.schedule_id == "s"
    assert result.content_hash == hashlib.sha256(VALID.encode()).hexdigest()
    assert result.data == VALID.encode()
    # key and value positions (1-based) of a nested value
    assert result.positions[("tasks", 0, "params", "keep")] == (8, 14, 8, 20)
    assert result.where(("tasks", 1, "task")) == (9, 11)
    assert result.where(("timing", "at"), key=True) == (5, 3)
    assert result.where(("tasks", 1, "params", "keep")) == (9, 5)  # falls back to the nearest ancestor


def test_path_str():
    assert path_str(("tasks", 2, "params", "keep")) == "tasks[2].params.keep"
    assert path_str(("timing", "at", 1)) == "timing.at[1]"
    assert path_str(()) == ""


def test_codes_are_documented_in_module_docstring():
    import zmi_reconciler.loader as loader

    for code in CODES:
        if code.startswith("E"):
            assert f"\n{code}  " in loader.__doc__, code


# ------------------------------------------------------------------------------------- file level errors


def test_syntax_error_points_at_problem():
    result = load("name: x\ntiming: {type: daily\ntasks: []\n")
    assert where(result) == [(3, 6, "E007", "")]
    assert "flow mapping started at line 2, column 9" in result.findings[0].message
    assert result.schedule is None


def test_duplicate_key_top_level():
    result = load("name: a\ntiming: {type: manual}\nname: b\ntasks: [{task: calculate_days}]\n")
    assert where(result) == [(3, 1, "E008", "name")]
    assert result.findings[0].message == "duplicate key 'name' (first defined on line 1)"


def test_duplicate_key_nested():
    text = "name: x\ntiming: {type: manual}\ntasks:\n  - task: backup_database\n    params:\n      keep: 1\n" \
           "      keep: 2\n"
    assert where(load(text)) == [(7, 7, "E008", "tasks[0].params.keep")]


@pytest.mark.parametrize("text, line, column", [
    ("name: x\ntiming:\n\ttype: daily\n", 3, 1),
    ("name: x\ntiming:\n  \ttype: daily\n", 3, 3),
    ("name: x\ntasks:\n  - task: a\n\t  params: {}\n", 4, 1),
])
def test_tab_in_indentation(text, line, column):
    result = load(text)
    assert where(result) == [(line, column, "E006", "")]
    assert "spaces only" in result.findings[0].message


def test_tab_inside_value_is_fine():
    text = VALID.replace("name: Nightly", 'name: "Night\tly"')
    assert load(text).findings == []


def test_non_utf8_byte_position():
    result = load(b"name: \xc3\x84\xff\n")  # 'name: Ä' is 7 characters, the bad byte is the 8th
    assert where(result) == [(1, 8, "E005", "")]
    assert "0xff" in result.findings[0].message


def test_latin1_file_on_third_line():
    result = load(VALID.replace("Nightly", "N\u00e4chtlich").encode("latin-1"))
    assert where(result) == [(2, 8, "E005", "")]


def test_utf8_bom_is_accepted():
    assert load(b"\xef\xbb\xbf" + VALID.encode()).findings == []


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "---\n...\n"])
def test_empty_file(text):
    result = load(text)
    assert where(result) == [(1, 1, "E011", "")]
    assert "empty file" in result.findings[0].message


@pytest.mark.parametrize("text, line, column", [("~\n", 1, 1), ("null\n", 1, 1), ("# c\n--- null\n", 2, 5),
                                                ("!!null x\n", 1, 1)])
def test_explicit_null_document_is_mapping_expected_not_empty(text, line, column):
    result = load(text)
    assert where(result) == [(line, column, "E012", "")]
    assert result.findings[0].message.endswith("at the top level, got null")


def test_list_at_top_level():
    result = load("# comment\n- name: x\n- name: y\n")
    assert where(result) == [(2, 1, "E012", "")]
    assert "got a list" in result.findings[0].message


def test_scalar_at_top_level():
    assert where(load("just text\n")) == [(1, 1, "E012", "")]


def test_list_where_nested_mapping_belongs():
    result = load("name: x\ntiming:\n  - type: daily\n    at: '05:00'\ntasks: [{task: calculate_days}]\n")
    assert where(result) == [(3, 3, "E012", "timing")]
    assert result.findings[0].message == "expected a mapping (key: value pairs), got a list"


def test_list_where_params_mapping_belongs():
    text = "name: x\ntiming: {type: manual}\ntasks:\n  - task: calculate_days\n    params: [1, 2]\n"
    assert where(load(text)) == [(5, 13, "E012", "tasks[0].params")]


def test_several_documents():
    result = load(VALID + "---\nname: second\n")
    assert where(result) == [(10, 1, "E009", "")]
    assert "exactly one document" in result.findings[0].message


def test_leading_document_marker_is_one_document():
    assert load("---\n" + VALID).findings == []


def test_billion_laughs_detected_before_expansion():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n, prev in zip("bcdefghi", "abcdefgh"):
        lines.append(f"{n}: &{n} [{','.join(['*' + prev] * 9)}]")
    result = load("\n".join(lines) + "\n")  # 9**9 strings if expanded; must return at once
    assert [(f.code, f.line) for f in result.findings] == [("E010", 5)]  # e: 1 + 9 * 7381 nodes
    assert "more than 10000" in result.findings[0].message


def test_moderate_alias_use_is_fine():
    text = VALID.replace("  - task: calculate_days\n", "  - &calc {task: calculate_days}\n  - *calc\n")
    result = load(text)
    assert result.findings == [] and len(result.schedule.tasks) == 3


def test_recursive_alias():
    assert where(load("name: &a [1, *a]\n")) == [(1, 7, "E010", "")]


def test_deep_nesting_refused_before_parsing():
    result = load("name: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert [(f.code, f.line, f.column) for f in result.findings] == [("E014", 1, 71)]


def test_file_over_256_kib_in_memory():
    result = load("name: " + "x" * MAX_FILE_BYTES + "\n")
    assert where(result) == [(1, 1, "E002", "")]


def test_file_over_256_kib_on_disk_hashes_whole_file(tmp_path):
    data = b"# " + b"x" * (MAX_FILE_BYTES * 2) + b"\n"
    path = tmp_path / "big.yaml"
    path.write_bytes(data)
    result = load_schedule_file(path)
    assert where(result) == [(1, 1, "E002", "")]
    assert result.content_hash == hashlib.sha256(data).hexdigest()
    assert result.data == b""


def test_file_of_exactly_256_kib_is_read():
    text = VALID + "#" * (MAX_FILE_BYTES - len(VALID) - 1) + "\n"
    assert len(text.encode()) == MAX_FILE_BYTES
    assert load(text).findings == []


@pytest.mark.parametrize("name", ["Nightly.yaml", "-x.yaml", "a b.yaml", "x" * 64 + ".yaml", "x.json", ".x.yaml"])
def test_invalid_file_name(name):
    result = load(VALID, name)
    assert where(result) == [(1, 1, "E003", "")]
    assert "<id>.yaml" in result.findings[0].message
    assert result.schedule is None


def test_invalid_file_name_still_reports_content_errors():
    result = load("name: x\n", "Bad.yaml")
    assert [f.code for f in result.findings] == ["E003", "E022", "E022"]


@pytest.mark.parametrize("name", ["a.yaml", "0.yml", "x" * 63 + ".yaml", "a_b-c.yaml"])
def test_valid_file_names(name):
    assert load(VALID, name).findings == []


def test_undefined_alias():
    result = load("name: x\ntiming: *t\n")
    assert where(result) == [(2, 9, "E007", "")]
    assert result.findings[0].message == "undefined alias '*t' (no anchor '&t' before it)"


_FLOW = ("inside {...} or [...] (flow style): libyaml, the YAML parser used here, does not accept an unquoted ':' "
         "in a value there (YAML 1.2 itself does); ")
_QUOTE_IT = _FLOW + "quote it: "
_PADDED = " (a time is HH:MM with a two-digit hour)"
_NO_SECONDS = " (a time is HH:MM, without seconds)"
_AS_DURATION = " (1:30 taken as hours:minutes; a duration takes a unit s, m, h or d, or is whole seconds)"


@pytest.mark.parametrize("timing, column, message", [
    ("{type: daily, at: 05:00}", 27, 'unquoted time 05:00 ' + _QUOTE_IT + 'at: "05:00"'),
    ("{type: daily, at: 5:30}", 27, 'unquoted time 5:30 ' + _QUOTE_IT + 'at: "05:30"' + _PADDED),
    ("{type: daily, at: 05:00:00}", 27, 'unquoted time 05:00:00 ' + _QUOTE_IT + 'at: "05:00"' + _NO_SECONDS),
    ("{type: daily, at: [\"04:00\", 22:15]}", 37, 'unquoted time 22:15 ' + _QUOTE_IT + '"22:15"'),
    ("{type: daily, at: [4:00]}", 28, 'unquoted time 4:00 ' + _QUOTE_IT + '"04:00"' + _PADDED),
    ("{type: weekly, days: [mon],   at:  06:45 }", 44, 'unquoted time 06:45 ' + _QUOTE_IT + 'at: "06:45"'),
    ("{type: daily, note: a:b}", 29, "unquoted value 'a:b' with a ':' " + _QUOTE_IT + 'note: "a:b"'),
])
def test_unquoted_time_in_flow_style_says_to_quote_it(timing: str, column: int, message: str) -> None:
    """libyaml rejects `{at: 05:00}` with "found unexpected ':'" (YAML 1.2 allows it); the finding points at the
    time and says what to write (block style `at: 05:00` loads, see test_yaml_1_2_scalars)."""
    result = load(f"name: x\ntiming: {timing}\ntasks: [{{task: calculate_days}}]\n")
    assert [(f.line, f.column, f.code, f.message) for f in result.findings] == [(2, column, "E007", message)]
    assert result.findings[0].text().startswith(f"s.yaml:2:{column}: error E007 unquoted ")


@pytest.mark.parametrize("flow, written, fixed", [
    ("timing: {type: daily, at: 05:00}", "05:00", '"05:00"'),
    ("timing: {type: daily, at: 5:00}", "5:00", '"05:00"'),
    ("timing: {type: daily, at: 05:00:00}", "05:00:00", '"05:00"'),
    ("timing: {type: monthly, day: 1, at: 7:15}", "7:15", '"07:15"'),
    ("timing: {type: daily, at: [\"04:00\", 5:00]}", "5:00", '"05:00"'),
    ("exclude: [{from: 4:50, to: \"05:10\"}]", "4:50", '"04:50"'),
    ("tasks: [{task: calculate_days, timeout: 1:30}]", "1:30", "90m"),
    ("catch_up: {x: 0:45}", None, None),  # not a key of ours: nothing to check against
    ("tasks: [{task: alive_check, params: {url: http://mon:8080/ping}}]", "http://mon:8080/ping",
     '"http://mon:8080/ping"'),
    ("tasks: [{task: alive_check, params: {expect: [{schedule: nightly, by: 6:00}]}}]", "6:00", '"06:00"'),
])
def test_flow_style_hint_loads_when_applied(flow: str, written: str | None, fixed: str | None) -> None:
    """Each suggestion is checked against the field of its key: written into the file, it loads (timeout is a
    duration, so 1:30 becomes 90m, not "01:30"; times are HH:MM, so 05:00:00 becomes "05:00")."""
    base = {"timing": "timing: {type: daily, at: \"05:00\"}", "tasks": "tasks: [{task: calculate_days}]"}
    key = flow.split(":", 1)[0]
    parts = [base["timing"] if key != "timing" else flow, "name: x", base["tasks"] if key != "tasks" else flow]
    if key not in base:
        parts.append(flow)
    text = "\n".join(parts) + "\n"
    finding = load(text).findings[0]
    assert finding.code == "E007"
    if written is None:
        assert finding.message.endswith('quote it: x: "0:45"')
        return
    line = next(i for i, part in enumerate(parts) if part == flow)
    assert (finding.line, finding.column) == (line + 1, flow.index(written) + 1)
    advice = finding.message.split("(YAML 1.2 itself does); ", 1)[1]
    assert advice.startswith(("quote it: ", "write ")) and f"{fixed}" in advice.split(" (", 1)[0], advice
    repaired = text.replace(written, fixed, 1)
    assert load(repaired).findings == [], repaired


@pytest.mark.parametrize("flow, reason", [
    ("timing: {type: daily, at: 25:00}", "expected a local time HH:MM (00:00..23:59), got '25:00'"),
    ("timing: {type: daily, at: 05:00:30}", "expected a local time HH:MM (00:00..23:59), got '05:00:30'"),
    ("timing: {type: hours, every: 1:30}", "expected an integer, got '1:30'"),
    ("tasks: [{task: calculate_days, params: {from: 5:00}}]", "expected a date YYYY-MM-DD, got '5:00'"),
])
def test_flow_style_hint_says_when_no_quoting_helps(flow: str, reason: str) -> None:
    """No suggestion that would be an E020 next: `at: 25:00` quoted is still no time, `every` is an integer and
    calculate_days' `from` a date (an exclude window's `from` is a time: see the test above)."""
    parts = ["name: x", flow if flow.startswith("timing") else "timing: {type: manual}",
             flow if flow.startswith("tasks") else "tasks: [{task: calculate_days}]"]
    (finding,) = load("\n".join(parts) + "\n").findings
    assert finding.code == "E007"
    assert finding.message.endswith(_FLOW + "quoted, it would not load either: " + reason)
    assert "quote it" not in finding.message and "write" not in finding.message


@pytest.mark.parametrize("block, path, hint", [
    ("timing:\n  type: daily\n  at: 5:00\n", "timing.at", '; write at: "05:00"' + _PADDED),
    ("timing:\n  type: daily\n  at: 05:00:00\n", "timing.at", '; write at: "05:00"' + _NO_SECONDS),
    ("timing:\n  type: daily\n  at:\n    - 5:00\n", "timing.at[0]", '; write "05:00"' + _PADDED),
    ("timing: {type: manual}\ncatch_up: 1:30\n", "catch_up", "; write catch_up: 90m" + _AS_DURATION),
])
def test_block_style_gets_the_same_hint(block: str, path: str, hint: str) -> None:
    """Block style loads `at: 5:00` as the text '5:00' (E020); its message ends with the suggestion that flow
    style gives for the same value."""
    (finding,) = load(f"name: x\n{block}tasks: [{{task: calculate_days}}]\n").findings
    assert (finding.code, finding.path) == ("E020", path)
    assert finding.message.endswith(hint), finding.message


def test_block_style_duration_hint_in_a_task() -> None:
    (finding,) = load("name: x\ntiming: {type: manual}\ntasks:\n  - task: calculate_days\n    timeout: 1:30\n"
                      ).findings
    assert (finding.code, finding.path) == ("E020", "tasks[0].timeout")
    assert finding.message.endswith("; write timeout: 90m" + _AS_DURATION)
    (finding,) = load("name: x\ntiming:\n  type: daily\n  at: 25:00\ntasks: [{task: calculate_days}]\n").findings
    assert finding.message == "expected a local time HH:MM (00:00..23:59), got '25:00'"


def test_other_unexpected_colons_keep_the_parsers_message() -> None:
    result = load("name: x\ntiming: {type: daily, at: \"05:00\"}\ntasks: [{task: calculate_days}]\nx: : y: z\n")
    assert [f.code for f in result.findings] == ["E007"] and "quote it" not in result.findings[0].message


def test_control_character():
    result = load('name: "a\x01"\n')
    assert where(result) == [(1, 9, "E007", "")]
    assert "U+0001" in result.findings[0].message


def test_unsupported_tag():
    result = load("name: !!python/object:os.system x\n")
    assert where(result) == [(1, 7, "E013", "name")]
    assert result.findings[0].message.startswith("unsupported YAML tag '!!python/object:os.system'")


def test_merge_keys_are_supported():
    text = "name: x\ntiming: {type: manual}\ntasks:\n  - &b {task: backup_database, params: {keep: 3}}\n" \
           "  - <<: *b\n    timeout: 10m\n"
    result = load(text)
    assert result.findings == []
    assert result.schedule.tasks[1].params.keep == 3 and result.schedule.tasks[1].timeout == 600


def test_yaml_1_2_scalars():
    """YAML 1.2: `on`/`yes` are text, 05:00 unquoted is text (YAML 1.1 would read sexagesimal 300)."""
    text = "name: yes\ntiming:\n  type: daily\n  at: 05:00\ntasks: [{task: backup_database, params: {keep: 0x0A}}]\n"
    result = load(text)
    assert result.findings == []
    assert result.schedule.name == "yes" and result.schedule.timing.at == "05:00"
    assert result.schedule.tasks[0].params.keep == 10


@pytest.mark.parametrize("text, path", [
    ("name: x\ntiming: {type: minutes, every: \"5\"}\ntasks: [{task: calculate_days}]\n", "timing.every"),
    ("name: x\ntiming: {type: minutes, every: true}\ntasks: [{task: calculate_days}]\n", "timing.every"),
    ("name: x\nenabled: \"yes\"\ntiming: {type: manual}\ntasks: [{task: calculate_days}]\n", "enabled"),
    ("name: x\ntiming: {type: manual}\ntasks: [{task: calculate_days, enabled: 1}]\n", "tasks[0].enabled"),
    ("name: x\ntiming: {type: monthly, day: \"15\", at: \"06:00\"}\ntasks: [{task: calculate_days}]\n",
     "timing.day"),
])
def test_values_of_the_wrong_type_are_not_coerced(text: str, path: str) -> None:
    """What the published JSON Schema rejects, the loader rejects too: a quoted number or a boolean is not an
    integer, a quoted word or a number is not a boolean (`every: true` used to fire every minute)."""
    result = load(text)
    assert result.schedule is None
    assert [(f.code, f.path) for f in result.findings] == [("E020", path)]


def _params_file(task: str, params: str) -> str:
    return f"name: x\ntiming: {{type: manual}}\ntasks:\n  - task: {task}\n    params: {params}\n"


@pytest.mark.parametrize("task, params, expected", [
    ("backup_database", '{keep: "7"}',
     (5, 20, "tasks[0].params.keep", "expected an integer, got '7' (write 7 without quotes)")),
    ("backup_database", "{verify: 1}", (5, 22, "tasks[0].params.verify", "expected true or false, got 1")),
    ("backup_database", '{verify: "true"}',
     (5, 22, "tasks[0].params.verify", "expected true or false, got 'true' (write true without quotes)")),
    ("backup_database", "{keep: true}", (5, 20, "tasks[0].params.keep", "expected an integer, got true")),
    ("gdpr_retention", '{dry_run: "yes"}', (5, 23, "tasks[0].params.dry_run", "expected true or false, got 'yes'")),
    ("import_bookings", '{settle_seconds: "2.5"}',
     (5, 30, "tasks[0].params.settle_seconds", "expected a number, got '2.5' (write 2.5 without quotes)")),
    ("import_bookings", '{debounce_seconds: "5"}',
     (5, 32, "tasks[0].params.debounce_seconds", "expected an integer, got '5' (write 5 without quotes)")),
    ("export_data", '{wage_types: {net: "1000"}}',
     (5, 32, "tasks[0].params.wage_types.net", "expected an integer, got '1000' (write 1000 without quotes)")),
    ("alive_check", "{expect: [{schedule: nightly, by: 600}]}",
     (5, 47, "tasks[0].params.expect[0].by", "expected text, got 600")),
    ("calculate_days", "{scope: range, from: 20260101, to: 2026-01-31}",
     (5, 34, "tasks[0].params.from", "expected a date YYYY-MM-DD, got 20260101")),
    ("calculate_days", '{scope: range, from: "2026-1-5", to: 2026-01-31}',
     (5, 34, "tasks[0].params.from", "expected a date YYYY-MM-DD, got '2026-1-5'")),
])
def test_task_params_are_not_coerced(task: str, params: str, expected: tuple[int, int, str, str]) -> None:
    """Task params are as strict as the schedule itself and the published JSON Schema: `keep: "7"` or
    `verify: 1` used to load as 7 and true; a number for a date used to be read as a Unix timestamp."""
    result = load(_params_file(task, params))
    assert result.schedule is None
    assert [(f.line, f.column, f.path, f.message) for f in result.findings if f.code == "E020"] == [expected]
    assert [f.code for f in result.findings] == ["E020"]


def test_task_param_dates_and_whole_numbers_still_load() -> None:
    """Dates arrive from YAML as text (unquoted or quoted) and stay accepted; an integer is a valid number."""
    result = load(_params_file("calculate_days", '{scope: range, from: 2026-01-01, to: "2026-01-31", notify: false}'))
    assert result.findings == []
    params = result.schedule.tasks[0].params
    assert (params.from_date, params.to_date, params.notify) == (date(2026, 1, 1), date(2026, 1, 31), False)
    result = load(_params_file("import_bookings", "{settle_seconds: 3, debounce_seconds: 0}"))
    assert result.findings == []
    assert result.schedule.tasks[0].params.settle_seconds == 3.0


# ------------------------------------------------------------------------------- model errors map to text


def test_discriminator_tag_is_stripped_from_path():
    text = VALID.replace("{keep: 7}", "{keep: 0}")
    result = load(text)
    assert where(result) == [(8, 20, "E020", "tasks[0].params.keep")]
    assert result.findings[0].message == "expected a value >= 1 (backups kept with `naming: timestamp`), got 0"


def test_unknown_key_points_at_key_and_suggests():
    result = load(VALID.replace("{keep: 7}", "{kep: 7}"))
    assert where(result) == [(8, 14, "E021", "tasks[0].params.kep")]
    assert result.findings[0].message == "unknown key 'kep'; did you mean 'keep'? (allowed: naming, keep, verify)"


def test_unknown_top_level_key():
    result = load(VALID + "colour: red\n")
    assert where(result) == [(10, 1, "E021", "colour")]
    assert "allowed: name, description, enabled, timezone, timing" in result.findings[0].message


def test_missing_key_in_nested_mapping_points_at_its_key():
    result = load(VALID.replace('  at: "05:00"\n', ""))
    assert where(result) == [(3, 1, "E022", "timing.at")]
    assert result.findings[0].message == "missing required key 'at' (HH:MM or a list of them)"


def test_missing_top_level_keys_point_at_document_start():
    result = load("# c\nname: x\n")
    assert where(result) == [(2, 1, "E022", "tasks"), (2, 1, "E022", "timing")]


def test_unknown_task_points_at_task_value():
    result = load(VALID.replace("task: calculate_days", "task: calculate_day"))
    assert where(result) == [(9, 11, "E023", "tasks[1].task")]
    message = result.findings[0].message
    assert message.startswith("unknown task 'calculate_day'; valid tasks: alive_check, backup_database")
    assert message.endswith("did you mean 'calculate_days'?")


def test_unavailable_task_says_why():
    result = load(VALID.replace("task: calculate_days", "task: terminal_fetch_bookings"))
    assert where(result) == [(9, 11, "E024", "tasks[1].task")]
    assert "terminal communication module" in result.findings[0].message
    assert "use import_bookings" in result.findings[0].message


def test_missing_task_key_points_at_item():
    result = load(VALID.replace("  - task: calculate_days\n", "  - timeout: 5m\n"))
    assert where(result) == [(9, 5, "E022", "tasks[1].task")]


def test_unknown_timing_type():
    result = load(VALID.replace("type: daily", "type: daly"))
    assert where(result) == [(4, 9, "E025", "timing.type")]
    assert result.findings[0].message == ("unknown timing type 'daly'; expected one of: seconds, minutes, hours, "
                                          "daily, weekly, monthly, manual")


def test_missing_timing_type():
    result = load(VALID.replace("type: daily", "typ: daily"))
    assert where(result) == [(3, 1, "E022", "timing.type")]


def test_task_params_model_validator_message():
    text = VALID.replace("  - task: calculate_days\n", "  - task: calculate_days\n    params: {scope: range}\n")
    result = load(text)
    assert where(result) == [(10, 13, "E020", "tasks[1].params")]
    assert result.findings[0].message == "scope 'range' needs 'from' and 'to' dates (YYYY-MM-DD)"


def test_several_errors_sorted_by_position():
    text = VALID.replace('"05:00"', '"25:00"').replace("{keep: 7}", "{keep: 7, x: 1}") + "overlap: never\n"
    assert where(load(text)) == [(5, 7, "E020", "timing.at"), (8, 23, "E021", "tasks[0].params.x"),
                                 (10, 10, "E020", "overlap")]


def test_bad_bytes_passed_as_str_do_not_raise():
    result = load_schedule_text("name: \udcff\n", "s.yaml")
    assert where(result) == [(1, 7, "E005", "")]


# ------------------------------------------------------------------------------------- files and folders


def write(path: Path, text: str = VALID) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_load_paths_ignores_dotfiles_other_suffixes_and_subfolders(tmp_path):
    write(tmp_path / "a.yaml")
    write(tmp_path / "b.yml")
    write(tmp_path / ".hidden.yaml", "broken: [")
    write(tmp_path / "notes.txt", "broken: [")
    write(tmp_path / "a.yaml.bak", "broken: [")
    (tmp_path / "sub.yaml").mkdir()
    (tmp_path / "nested").mkdir()
    write(tmp_path / "nested" / "c.yaml", "broken: [")
    results = load_paths([tmp_path])
    assert [r.file.name for r in results] == ["a.yaml", "b.yml"]
    assert all(r.findings == [] for r in results)


def test_load_paths_mixes_files_and_folders(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    write(folder / "x.yaml")
    single = write(tmp_path / "y.yaml")
    assert [r.schedule_id for r in load_paths([folder, single])] == ["x", "y"]


def test_load_paths_missing_path_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_paths([tmp_path / "nope"])


def test_symlink_outside_folder(tmp_path):
    folder = tmp_path / "schedules.d"
    folder.mkdir()
    outside = write(tmp_path / "outside.yaml")
    (folder / "link.yaml").symlink_to(outside)
    (result,) = load_paths([folder])
    assert where(result) == [(1, 1, "E004", "")]
    assert "outside the folder" in result.findings[0].message
    assert result.data == b"" and result.schedule is None


def test_symlink_inside_folder_is_followed(tmp_path):
    folder = tmp_path / "schedules.d"
    folder.mkdir()
    write(folder / "real.yaml")
    (folder / "alias.yaml").symlink_to("real.yaml")
    results = load_paths([folder])
    assert [(r.schedule_id, r.findings) for r in results] == [("alias", []), ("real", [])]


def test_dangling_symlink_is_an_io_finding(tmp_path):
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "missing.yaml")
    (result,) = load_paths([tmp_path])
    assert where(result) == [(1, 1, "E001", "")]
    assert result.findings[0].message.startswith("cannot read")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_unreadable_file(tmp_path):
    path = write(tmp_path / "locked.yaml")
    path.chmod(0)
    assert where(load_schedule_file(path)) == [(1, 1, "E001", "")]


def test_file_finding_names_the_path_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "bad.yaml", "name: [\n")
    (result,) = load_paths([Path(".")])
    assert result.findings[0].file == "bad.yaml"


def test_file_named_twice_is_loaded_once(tmp_path):
    write(tmp_path / "a.yaml")
    assert [r.file.name for r in load_paths([tmp_path, tmp_path / "a.yaml"])] == ["a.yaml"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_fifo_is_not_opened_but_reported(tmp_path):
    """A FIFO named like a schedule must not block the loader (open() on a FIFO waits for a writer)."""
    import threading

    write(tmp_path / "good.yaml")
    os.mkfifo(tmp_path / "fifo.yaml")
    out: list[list[LoadResult]] = []
    worker = threading.Thread(target=lambda: out.append(load_paths([tmp_path])), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "loading a folder with a FIFO blocked"
    (fifo, good) = out[0]
    assert where(fifo) == [(1, 1, "E015", "")] and fifo.schedule is None
    assert "not a regular file" in fifo.findings[0].message
    assert good.schedule is not None and good.findings == []
