"""``/api/v1/schedules``: list, create, read, replace, patch, delete, pause, resume, preview (spec side).

Writes need a write token and (except create) ``If-Match`` with the ETag of the file's bytes.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any

import anyio
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.datastructures import ResponseHeader
from litestar.params import FromPath, HeaderParameter, QueryParameter

from zmi_reconciler.api.controllers import Service, problems, read_document
from zmi_reconciler.api.models import Preview, ScheduleDetail, ScheduleList
from zmi_reconciler.api.problems import FieldError, Invalid
from zmi_reconciler.api.service import Written

IfMatch = Annotated[str | None, HeaderParameter(name="If-Match", required=False,
                                          description="ETag from GET /schedules/{id} (required: 428 without)")]
_ETAG = [ResponseHeader(name="ETag", description="quoted SHA-256 of the file's bytes", documentation_only=True)]
_WRITE = {"role": "write"}


async def call(fn: Any, *args: Any) -> Any:
    """Run blocking service code (file I/O, locks) in a worker thread."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args))


def detail_response(detail: ScheduleDetail, status_code: int = 200, **headers: str) -> Response[ScheduleDetail]:
    return Response(detail, status_code=status_code, headers={"ETag": detail.etag, **headers})


def _written(result: Written) -> Response[ScheduleDetail]:
    return detail_response(result.detail)


class SchedulesController(Controller):
    path = "/api/v1/schedules"
    tags = ["schedules"]

    @get("/", operation_id="listSchedules", summary="All schedules with status",
         description="Enabled, degraded with errors, next fire and last run of every schedule file.",
         responses=problems(), sync_to_thread=True)
    def list_schedules(self, service: Service) -> Response[ScheduleList]:
        return Response(service.list_json(), media_type="application/json")  # type: ignore[arg-type]

    @post("/", operation_id="createSchedule", summary="Create schedules.d/<id>.yaml", opt=_WRITE, status_code=201,
          responses=problems(403, 409, 413, 415, 422), response_headers=_ETAG)
    async def create_schedule(self, request: Request[Any, Any, Any],
                              service: Service) -> Response[ScheduleDetail]:
        body = await read_document(request, allow_yaml=False)
        if not isinstance(body, dict):
            body = {"id": None, "spec": body}
        extra = sorted(set(body) - {"id", "spec"})
        if extra:
            raise Invalid("unknown keys in the request", [
                FieldError(path=k, line=0, column=0, code="E021", message=f"unknown key '{k}' (allowed: id, spec)")
                for k in extra])
        result = await call(service.create, body.get("id"), body.get("spec"))
        return detail_response(result.detail, 201, Location=f"/api/v1/schedules/{result.detail.id}")

    @get("/{schedule_id:str}", operation_id="getSchedule", summary="Definition and status",
         responses=problems(404), response_headers=_ETAG, sync_to_thread=True)
    def get_schedule(self, schedule_id: FromPath[str], service: Service) -> Response[ScheduleDetail]:
        return detail_response(service.get(schedule_id))

    @put("/{schedule_id:str}", operation_id="replaceSchedule", summary="Replace the schedule document",
         description="Deep-merges the new document into the file: comments, key order, quoting and blank lines "
                     "of untouched parts stay byte-identical.",
         opt=_WRITE, responses=problems(403, 404, 412, 413, 415, 422, 428), response_headers=_ETAG)
    async def replace_schedule(self, schedule_id: FromPath[str], request: Request[Any, Any, Any], service: Service,
                               if_match: IfMatch = None) -> Response[ScheduleDetail]:
        body = await read_document(request, allow_yaml=True)
        return _written(await call(service.replace, schedule_id, body, if_match))

    @patch("/{schedule_id:str}", operation_id="patchSchedule", summary="JSON merge patch (RFC 7396)",
           opt=_WRITE, responses=problems(403, 404, 412, 413, 415, 422, 428), response_headers=_ETAG)
    async def patch_schedule(self, schedule_id: FromPath[str], request: Request[Any, Any, Any], service: Service,
                             if_match: IfMatch = None) -> Response[ScheduleDetail]:
        body = await read_document(request, allow_yaml=False)
        return _written(await call(service.patch, schedule_id, body, if_match))

    @delete("/{schedule_id:str}", operation_id="deleteSchedule", summary="Remove the file", opt=_WRITE,
            responses=problems(403, 404, 412, 428), status_code=204)
    async def delete_schedule(self, schedule_id: FromPath[str], service: Service, if_match: IfMatch = None) -> None:
        await call(service.delete, schedule_id, if_match)

    @post("/{schedule_id:str}/pause", operation_id="pauseSchedule", summary="Write enabled: false",
          description="Writes `enabled: false` into the file. A file that does not load is not written: the 422 "
                      "lists its errors at their lines in the file on disk, and its last good version keeps "
                      "running until the file is fixed or deleted.",
          opt=_WRITE, status_code=200, responses=problems(403, 404, 412, 422, 428), response_headers=_ETAG)
    async def pause(self, schedule_id: FromPath[str], service: Service,
                    if_match: IfMatch = None) -> Response[ScheduleDetail]:
        return _written(await call(service.set_enabled, schedule_id, False, if_match))

    @post("/{schedule_id:str}/resume", operation_id="resumeSchedule", summary="Write enabled: true",
          opt=_WRITE, status_code=200, responses=problems(403, 404, 412, 422, 428), response_headers=_ETAG)
    async def resume(self, schedule_id: FromPath[str], service: Service,
                     if_match: IfMatch = None) -> Response[ScheduleDetail]:
        return _written(await call(service.set_enabled, schedule_id, True, if_match))

    @get("/{schedule_id:str}/preview", operation_id="previewSchedule", summary="The next fires with DST notes",
         responses=problems(404, 422), sync_to_thread=True)
    def preview(self, schedule_id: FromPath[str], service: Service,
                count: Annotated[int, QueryParameter(ge=1, le=1000, description="number of fires")] = 10,
                after: Annotated[datetime | None, QueryParameter(description="start (ISO 8601 with offset); "
                                                                        "default now")] = None) -> Preview:
        return service.preview(schedule_id, count, after)
