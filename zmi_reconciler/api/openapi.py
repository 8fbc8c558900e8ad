"""The OpenAPI 3.1 document: paths and operations from Litestar, schemas from pydantic.

Litestar derives paths, parameters and responses from the handlers. Its own schema generation drops what
makes the schedule schema useful (discriminators, ``extra="forbid"``, aliases such as ``exclude[].from``,
patterns, examples), so :func:`finish` replaces every component schema with pydantic's JSON Schema of the
same model, documents the request bodies (handlers read raw bodies so that every validation error becomes
a 422 with line/column), declares bearer auth, and gives every error response the problem+json shape.
The served document (``/schema/openapi.json``, docs at ``/schema``) and ``openapi/openapi.json`` are the
same :func:`finish` output.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from pydantic.json_schema import models_json_schema

from zmi_reconciler.api import models
from zmi_reconciler.api.problems import PROBLEM_MEDIA_TYPE, Problem
from zmi_reconciler.schema import Schedule

_REF = "#/components/schemas/{model}"
_YAML_TYPES = ("application/yaml", "text/yaml")

SCHEDULE_EXAMPLE: dict[str, Any] = {
    "name": "Nightly processing",
    "description": "Backup first, then days and months, then notify.",
    "enabled": True,
    "timezone": "Europe/Berlin",
    "timing": {"type": "daily", "at": "05:00"},
    "catch_up": "12h",
    "overlap": "skip",
    "exclude": [{"from": "23:50", "to": "00:10"}],
    "tasks": [
        {"task": "backup_database", "params": {"keep": 7}, "timeout": "30m"},
        {"task": "calculate_days"},
        {"task": "calculate_months", "params": {"month": "current"}},
        {"task": "send_notifications", "on_error": "continue"},
    ],
}
TIMING_EXAMPLES: dict[str, dict[str, Any]] = {
    "SecondsTiming": {"type": "seconds", "every": 30},
    "MinutesTiming": {"type": "minutes", "every": 5},
    "HoursTiming": {"type": "hours", "every": 2, "minute": 15},
    "DailyTiming": {"type": "daily", "at": ["05:00", "13:00"]},
    "WeeklyTiming": {"type": "weekly", "days": ["mon", "fri"], "at": "06:30"},
    "MonthlyTiming": {"type": "monthly", "day": "last", "at": "22:00"},
    "ManualTiming": {"type": "manual"},
}

#: operation id -> (request model name, media types, required)
REQUEST_BODIES: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "createSchedule": ("ScheduleCreate", ("application/json",), True),
    "replaceSchedule": ("Schedule", ("application/json",) + _YAML_TYPES, True),
    "patchSchedule": ("SchedulePatch", ("application/merge-patch+json", "application/json"), True),
    "triggerRun": ("TriggerRequest", ("application/json",), False),
    "validateSchedule": ("Schedule", _YAML_TYPES + ("application/json",), True),
    "closeMonths": ("ClosingRequest", ("application/json",), True),
    "reopenMonths": ("ReopenRequest", ("application/json",), True),
}
#: Operations open without a token.
PUBLIC_OPERATIONS = frozenset({"healthz", "readyz"})

_VALIDATION_MODELS = (Schedule, models.ScheduleCreate, models.TriggerRequest, models.ClosingRequest,
                      models.ReopenRequest)
_SERIALIZATION_MODELS = (Problem, models.ScheduleList, models.ScheduleDetail, models.RunPage, models.RunDetail,
                         models.RunAccepted, models.Preview, models.TaskInfo, models.ValidationReport,
                         models.Health, models.Readiness, models.EmployeeList, models.EmployeeDays,
                         models.DayOverview, models.EmployeeMonths, models.ClosingResult)


def component_schemas() -> dict[str, Any]:
    """pydantic JSON Schemas of the API's models and of the schedule file, keyed by component name."""
    _, top = models_json_schema([(m, "validation") for m in _VALIDATION_MODELS]
                                + [(m, "serialization") for m in _SERIALIZATION_MODELS], ref_template=_REF)
    defs: dict[str, Any] = top["$defs"]
    defs["SchedulePatch"] = {
        "type": "object", "title": "SchedulePatch",
        "description": "RFC 7396 JSON merge patch of a schedule document: keys set to null are removed, objects "
                       "merge, everything else replaces. The patched document must be a valid Schedule.",
        "examples": [{"enabled": False}, {"timing": {"at": "06:00"}, "description": None}],
    }
    defs["Schedule"]["examples"] = [SCHEDULE_EXAMPLE]
    defs["ScheduleCreate"]["examples"] = [{"id": "nightly", "spec": SCHEDULE_EXAMPLE}]
    for name, example in TIMING_EXAMPLES.items():
        defs[name]["examples"] = [example]
    defs = _resolve_placeholders(defs)
    # Task params models are all called ``Params``; pydantic qualifies them with the module path.
    text = json.dumps(defs)
    text = re.sub(r"zmi_reconciler__tasks__(\w+?)__Params", r"\1_params", text)
    return json.loads(text)


def _resolve_placeholders(value: Any) -> Any:
    """``{"x-ref": Name}`` (see :data:`models.SCHEDULE_REF`) -> ``{"$ref": "#/components/schemas/Name"}``."""
    if isinstance(value, dict):
        if set(value) == {"x-ref"}:
            return {"$ref": _REF.format(model=value["x-ref"])}
        return {k: _resolve_placeholders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_placeholders(v) for v in value]
    return value


def finish(document: dict[str, Any]) -> dict[str, Any]:
    """The final document from Litestar's: pydantic components, request bodies, security, problem responses."""
    doc = copy.deepcopy(document)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(component_schemas())
    schemas = {k: v for k, v in schemas.items() if not k.startswith(("zmi_reconciler", "_"))}
    components["schemas"] = dict(sorted(schemas.items()))
    components["securitySchemes"] = {"bearer": {
        "type": "http", "scheme": "bearer",
        "description": "API token; role read or write (write implies read). The first start without tokens "
                       "writes an admin token to <data_dir>/admin.token."}}
    doc["security"] = [{"bearer": []}]
    for path_item in doc.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            op_id = operation.get("operationId", "")
            if op_id in PUBLIC_OPERATIONS:
                operation["security"] = []
            if op_id in REQUEST_BODIES:
                name, media_types, required = REQUEST_BODIES[op_id]
                operation["requestBody"] = {
                    "required": required,
                    "content": {mt: {"schema": {"$ref": _REF.format(model=name)}} for mt in media_types}}
            for code, response in operation["responses"].items():
                if code.isdigit() and int(code) >= 400:
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _REF.format(model="Problem")}}}
    return doc


class _Finished:
    """Mixin for render plugins: render :func:`finish` of Litestar's document (computed once)."""

    _cache: tuple[int, dict[str, Any]] | None = None

    def finished(self, openapi_schema: dict[str, Any]) -> dict[str, Any]:
        if self._cache is None or self._cache[0] != id(openapi_schema):
            self._cache = (id(openapi_schema), finish(openapi_schema))
        return self._cache[1]


class FinishedJsonRenderPlugin(_Finished, JsonRenderPlugin):
    """``/schema/openapi.json``."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, self.finished(openapi_schema))


class FinishedSwaggerRenderPlugin(_Finished, SwaggerRenderPlugin):
    """Interactive docs (Swagger UI) at ``/schema`` and ``/schema/swagger``."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, self.finished(openapi_schema))


def document(app: Any) -> dict[str, Any]:
    """The finished OpenAPI document of a Litestar ``app`` (what ``zmi-reconciler openapi`` prints)."""
    return finish(app.openapi_schema.to_schema())
