"""The task catalog and document validation (no files are written)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import QueryParameter

from zmi_reconciler.api.controllers import Service, YAML_TYPES, media_type, problems, read_document, read_text
from zmi_reconciler.api.controllers.schedules import call
from zmi_reconciler.api.models import TaskInfo, ValidationReport
from zmi_reconciler.api.yamlio import new_document_text


class CatalogController(Controller):
    path = "/api/v1"
    tags = ["catalog"]

    @get("/tasks", operation_id="listTasks", summary="The task catalog with params JSON Schemas",
         responses=problems(), sync_to_thread=False)
    def tasks(self, service: Service) -> list[TaskInfo]:
        return service.tasks()

    @post("/validate", operation_id="validateSchedule", summary="Validate a schedule without writing it",
          description="Body: the YAML text (application/yaml) or the document as JSON. Findings carry field "
                      "path, line and column (of the YAML text; for JSON of its YAML rendering).",
          status_code=200, responses=problems(413, 415, 422))
    async def validate(self, request: Request[Any, Any, Any], service: Service,
                       id: Annotated[str, QueryParameter(name="id", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
                                                    description="file stem to validate as")] = "schedule"
                       ) -> ValidationReport:
        if media_type(request) in YAML_TYPES:
            text = await read_text(request)
        else:
            document = await read_document(request, allow_yaml=False)
            text = new_document_text(document) if isinstance(document, dict) else "[]\n"
        return await call(service.validate, text, id)
