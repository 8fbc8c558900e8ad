"""The task catalog: every available task does real work (no placeholder), declares params and result models;
unavailable ones carry a reason and no run function."""

from __future__ import annotations

import socket
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from zmi_reconciler.config import SmtpSettings
from zmi_reconciler.tasks import catalog
from zmi_reconciler.tasks.base import TaskFailed, TaskResult

from test_task_helpers import Clock, make_ctx, make_settings, seed_small_store

NOW = datetime(2026, 4, 21, 4, 0, tzinfo=timezone.utc)
AVAILABLE = catalog.available_names()


def test_catalog_lists_the_specs_tasks():
    assert set(AVAILABLE) == {"import_bookings", "calculate_days", "calculate_months", "backup_database",
                              "send_notifications", "alive_check", "export_data", "gdpr_retention", "run_command"}
    unavailable = [s for s in catalog.REGISTRY.values() if not s.available]
    assert unavailable and all(s.unavailable_reason and s.run is None for s in unavailable)
    assert any(s.name.startswith("terminal_") for s in unavailable)


@pytest.mark.parametrize("name", AVAILABLE)
def test_every_available_task_has_models_and_a_json_schema(name):
    spec = catalog.get(name)
    assert spec.run is not None and spec.zmi_name and spec.description
    assert spec.result_model is not None and issubclass(spec.result_model, TaskResult)
    schema = spec.params_model.model_json_schema(by_alias=True)
    assert schema["type"] == "object" and schema.get("additionalProperties") is False


@pytest.mark.parametrize("name", [n for n in AVAILABLE if n != "run_command"])
def test_every_available_task_runs_with_default_params_on_a_fresh_store(name, tmp_path):
    """Runs for real; a task that cannot do its job on this data fails with a reason, never a placeholder."""
    with socket.socket() as sock:  # a port where no SMTP server listens, never a real local MTA
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = make_settings(tmp_path, smtp=SmtpSettings(host="127.0.0.1", port=port, timeout_seconds=2))
    seed_small_store(settings.database_path)
    spec = catalog.get(name)
    ctx = make_ctx(settings, name, Clock(NOW))
    try:
        result = spec.run(ctx, spec.params_model())
    except TaskFailed as exc:
        assert "not implemented" not in str(exc)
        # the only expected failures here: an open month without allow_open, SMTP not reachable
        assert name in ("export_data", "send_notifications"), f"{name}: {exc}"
        return
    assert isinstance(result, spec.result_model)


def test_unknown_task_names_the_valid_ones():
    with pytest.raises(KeyError, match="valid tasks: alive_check, backup_database"):
        catalog.get("backup")


def _json_types(prop: dict) -> set[str]:
    return {prop["type"]} if "type" in prop else {t["type"] for t in prop.get("anyOf", []) if "type" in t}


def _wrongly_typed(prop: dict) -> list[object]:
    """Inputs pydantic's lax mode would coerce but the published JSON Schema type of ``prop`` rejects."""
    types = _json_types(prop)
    if "object" in types and "additionalProperties" in prop:
        return [{"net": bad} for bad in _wrongly_typed(prop["additionalProperties"])]
    if types & {"integer", "number"}:
        return ["1", True]
    if "boolean" in types:
        return [1, 0, "true"]
    return []


def test_params_are_validated_as_strictly_as_their_json_schema_types():
    """Every integer, number or boolean param of every task (also dict values, as DATEV wage_types) rejects
    quoted numbers and 0/1 booleans, as the JSON Schema in the catalog and `openapi/` says."""
    checked = []
    for name in AVAILABLE:
        model = catalog.get(name).params_model
        for key, prop in model.model_json_schema(by_alias=True)["properties"].items():
            for bad in _wrongly_typed(prop):
                with pytest.raises(ValidationError) as info:
                    model.model_validate({key: bad})
                assert [e["type"] for e in info.value.errors() if e["loc"][0] == key], (name, key, bad)
                checked.append(f"{name}.{key}")
    assert len(set(checked)) == 20, sorted(set(checked))  # every such param of the catalog, so none is missed
