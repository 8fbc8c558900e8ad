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
