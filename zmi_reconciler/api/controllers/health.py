"""Liveness, readiness (schedules loaded) and Prometheus metrics."""

from __future__ import annotations

from litestar import Controller, get
from litestar.openapi.datastructures import ResponseSpec

from zmi_reconciler.api.metrics import CONTENT_TYPE
from zmi_reconciler.api.models import Health, Readiness
from zmi_reconciler.api.problems import PROBLEM_MEDIA_TYPE, Problem, Unavailable
from zmi_reconciler.api.controllers import Service, problems


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
    def readyz(self, service: Service) -> Readiness:
        if not service.ready():
            raise Unavailable("the reconciler has not loaded the schedules yet")
        return Readiness(status="ready", schedules=len(service._states()))

    @get("/metrics", operation_id="metrics", summary="Prometheus text exposition (read token)",
         media_type=CONTENT_TYPE, sync_to_thread=True, responses={401: problems()[401]})
    def metrics(self, service: Service) -> bytes:
        return service.metrics.render()
