"""Runs: manual trigger, run lists, the last run, one run with task results and logs (from the journal)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter

from zmi_reconciler.api.controllers import Service, problems, read_document
from zmi_reconciler.api.controllers.schedules import call
from zmi_reconciler.api.models import RunAccepted, RunDetail, RunPage, TriggerRequest
from zmi_reconciler.api.problems import FieldError, Invalid
from zmi_reconciler.api.service import MAX_WAIT_SECONDS, ScheduleService

_LOCATION = [ResponseHeader(name="Location", description="/api/v1/runs/{run_id}", documentation_only=True)]


#: pydantic error type -> the loader's finding code (unknown key, mapping expected); anything else is E020.
_CODES = {"extra_forbidden": "E021", "model_type": "E012", "dict_type": "E012"}


def _trigger_body(body: Any) -> list[int] | None:
    """The task indexes of a trigger body (None: all tasks); 422 with the loader's codes otherwise."""
    if body is None:
        return None
    try:
        return TriggerRequest.model_validate(body).tasks
    except ValueError as exc:
        errors = getattr(exc, "errors", lambda: [])()
        raise Invalid("invalid trigger request", [
            FieldError(path=".".join(str(p) for p in e.get("loc", ())), line=0, column=0,
                       code=_CODES.get(e.get("type"), "E020"), message=e.get("msg", "invalid"))
            for e in errors]) from None


class ScheduleRunsController(Controller):
    path = "/api/v1/schedules/{schedule_id:str}/runs"
    tags = ["runs"]

    @post("/", operation_id="triggerRun", summary="Start a manual run now", opt={"role": "write"},
          status_code=202, response_headers=_LOCATION,
          description="Ignores timing, exclusions and pause, not overlap (409 names the active run). "
                      "`wait=N` waits up to N seconds (<= 300) and answers 200 with the finished run.",
          responses={200: ResponseSpec(data_container=RunDetail, description="the run ended within `wait`"),
                     **problems(403, 404, 409, 413, 415, 422)})
    async def trigger(self, schedule_id: FromPath[str], request: Request[Any, Any, Any], service: Service,
                      wait: Annotated[float, QueryParameter(ge=0, le=MAX_WAIT_SECONDS,
                                                       description="seconds to wait for the end")] = 0
                      ) -> Response[RunAccepted]:
        tasks = _trigger_body(await read_document(request, allow_yaml=False, optional=True))
        accepted = await call(service.trigger, schedule_id, tasks)
        headers = {"Location": accepted.location}
        if wait > 0:
            detail = await anyio_wait(service, accepted.run_id, wait)
            if detail is not None:
                return Response(detail, status_code=200, headers=headers)  # type: ignore[arg-type]
        return Response(accepted, status_code=202, headers=headers)

    @get("/", operation_id="listRuns", summary="Runs, newest first, paged", responses=problems(404),
         sync_to_thread=True)
    def list_runs(self, schedule_id: FromPath[str], service: Service,
                  page: Annotated[int, QueryParameter(ge=1, le=1_000_000)] = 1,
                  per_page: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
                  status: Annotated[str | None, QueryParameter(
                      pattern="^(running|succeeded|failed|partial|interrupted)$",
                      description="only runs with this status")] = None) -> RunPage:
        return service.runs(schedule_id, page, per_page, status)

    @get("/last", operation_id="lastRun", summary="The last run with task results and logs",
         responses=problems(404), sync_to_thread=True)
    def last_run(self, schedule_id: FromPath[str], service: Service) -> RunDetail:
        return service.last_run(schedule_id)


async def anyio_wait(service: ScheduleService, run_id: str, seconds: float) -> RunDetail | None:
    import anyio

    return await anyio.to_thread.run_sync(service.wait, run_id, seconds, abandon_on_cancel=True)


class RunsController(Controller):
    path = "/api/v1/runs"
    tags = ["runs"]

    @get("/{run_id:str}", operation_id="getRun", summary="One run with task results and logs",
         responses=problems(404), sync_to_thread=True)
    def get_run(self, run_id: FromPath[str], service: Service) -> RunDetail:
        return service.get_run(run_id)
