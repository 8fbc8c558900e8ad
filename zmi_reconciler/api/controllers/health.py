"""Liveness, readiness (schedules loaded) and Prometheus metrics."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec

from zmi_reconciler.api.metrics import CONTENT_TYPE
from zmi_reconciler.api.models import Health, Readiness
from zmi_reconciler.api.problems import PROBLEM_MEDIA_TYPE, Problem
from zmi_reconciler.api.controllers import Service


class HealthController(Controller):
    path = "/api/v1"
    tags = ["health"]

    @get("/healthz", operation_id="healthz", summary="Liveness (no token needed)", sync_to_thread=False,
         opt={"public": True})
    def healthz(self) -> Health:
        return Health(status="ok")

    @get("/readyz", operation_id="readyz", summary="Readiness: schedules loaded (no token needed)",
         opt={"public": True}, sync_to_thread=False,
         responses={503: ResponseSpec(data_container=Problem, media_type=PROBLEM_MEDIA_TYPE,
                                      description="schedules not loaded yet", generate_examples=False)})
    def readyz(self, service: Service) -> Response[Readiness]:
        ready = service.ready()
        body = Readiness(status="ready" if ready else "starting", schedules=len(service._states()) if ready else 0)
        if not ready:
            return Response({"type": "https://zmi-reconciler.invalid/problems/unavailable", "title": "Not ready",
                             "status": 503, "detail": "the reconciler has not loaded the schedules yet"},
                            status_code=503, media_type=PROBLEM_MEDIA_TYPE)  # type: ignore[return-value]
        return Response(body)

    @get("/metrics", operation_id="metrics", summary="Prometheus text exposition (read token)",
         media_type=CONTENT_TYPE, sync_to_thread=True)
    def metrics(self, service: Service) -> bytes:
        return service.metrics.render()
