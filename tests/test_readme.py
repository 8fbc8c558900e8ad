"""The README's examples stay true: its master data and schedule snippets load without findings."""

from pathlib import Path

from zmi_reconciler.loader import load_schedule_text
from zmi_reconciler.tna.masterdata import load_masterdata_text

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _yaml_block_after(heading: str) -> str:
    section = README[README.index(heading):]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_readme_master_data_example_is_valid():
    md = load_masterdata_text(_yaml_block_after("## Master data and the time-and-attendance store"), "README.md")
    assert [e.personnel_number for e in md.employees] == ["1000"]
    assert md.day_plans[0].target_minutes == 480


def test_readme_schedule_example_is_valid():
    result = load_schedule_text(_yaml_block_after("## Schedule files"), "example.yaml")
    assert result.findings == [] and result.schedule is not None
    assert [t.task for t in result.schedule.tasks] == ["backup_database", "calculate_days", "calculate_months",
                                                      "send_notifications"]


def test_readme_lists_every_validation_code():
    from zmi_reconciler.loader import CODES

    section = README[README.index("## Validation codes"):].split("\n## ", 1)[0]
    assert [code for code in CODES if f"{code} " not in section] == []


def _sh_block_after(heading: str) -> str:
    section = README[README.index(heading):]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def test_readme_api_examples_use_dates_of_the_demo_data():
    """The demo's bookings are relative to its first start (the 14 days before it), so a fixed date in the
    curl examples soon matches nothing: the examples compute theirs."""
    import re
    import subprocess
    from datetime import date, timedelta

    block = _sh_block_after("### Trigger a run over the API")
    curls = [line for line in block.splitlines() if line.startswith("curl")]
    assert [line for line in curls if re.search(r"\d{4}-\d{2}-\d{2}", line)] == []
    assert any("daily-values?date=$SINCE" in line for line in curls)
    (since,) = [line.split("  #")[0] for line in block.splitlines() if line.startswith("SINCE=")]
    printed = subprocess.run(["sh", "-c", f"{since}; echo $SINCE"], capture_output=True, text=True, check=True)
    assert printed.stdout.strip() in {str(date.today() - timedelta(days=14)), str(date.today() - timedelta(days=15))}


def test_readme_states_the_misfire_grace_of_the_runner():
    from zmi_reconciler.runner import MISFIRE_GRACE_SECONDS

    section = README[README.index("## How the runner behaves"):].split("\n## ", 1)[0]
    bullet = section[section.index("- Misfire grace"):].split("\n- ", 1)[0]
    assert bullet.startswith(f"- Misfire grace, {MISFIRE_GRACE_SECONDS:g} s (`MISFIRE_GRACE_SECONDS`")
    assert "`run_missed`" in bullet and "`catch_up`" in bullet and "`scheduled`" in bullet
