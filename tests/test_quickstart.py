from zmi_reconciler.cli.quickstart import seed_if_empty
from zmi_reconciler.config import load_settings
from zmi_reconciler.tna.store import Store


def test_first_start_seeds_demo_and_drops_export_then_never_again(tmp_path):
    settings = load_settings(None, overrides={"data_dir": tmp_path / "var"},
                             environ={"ZMI_CONFIG": str(tmp_path / "absent")})
    lines = seed_if_empty(settings)
    export = settings.inbox_path / "demo-attlog.dat"
    assert export.exists() and export.read_text().count("\n") > 100
    assert any("seeded demo data" in line for line in lines)
    assert settings.masterdata_path.exists()
    with Store.open(settings.database_path, zone=settings.zone) as store:
        assert len(store.employees()) == 10
    before = settings.database_path.stat().st_mtime_ns
    export.unlink()
    assert seed_if_empty(settings) == [f"data dir {settings.data_dir} already has a tna store: using it as it is"]
    assert not export.exists() and settings.database_path.stat().st_mtime_ns == before
