"""The Litestar application (SPEC section 8): ``create_app(settings, runner, reconciler, journal)``.

Served by ``zmi-reconciler serve`` (uvicorn) in the same process as the runner and the reconciler; the app
starts nothing itself. Auth: a guard on every route except ``/api/v1/healthz``, ``/api/v1/readyz`` and the
OpenAPI document and docs under ``/schema``; write operations carry ``opt={"role": "write"}``.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from datetime import datetime
from typing import Any

from litestar import Litestar, Router
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Contact, Tag

from zmi_reconciler import __version__
from zmi_reconciler.api.auth import TokenStore, bearer_guard
from zmi_reconciler.api.controllers.catalog import CatalogController
from zmi_reconciler.api.controllers.health import HealthController
from zmi_reconciler.api.controllers.runs import RunsController, ScheduleRunsController
from zmi_reconciler.api.controllers.schedules import SchedulesController
from zmi_reconciler.api.controllers.tna import TnaController
from zmi_reconciler.api.openapi import FinishedJsonRenderPlugin, FinishedSwaggerRenderPlugin
from zmi_reconciler.api.problems import handle_exception
from zmi_reconciler.api.service import ScheduleService
from zmi_reconciler.api.tna import TnaService
from zmi_reconciler.config import Settings
from zmi_reconciler.tasks.base import utc_now

API_DESCRIPTION = """\
Schedules are YAML files in `schedules.d/` (configuration as code). The API edits those files (spec) with
small, reviewable diffs and reports what the runner and the journal observed (status).

* Auth: `Authorization: Bearer <token>`; read or write role. `/api/v1/healthz`, `/api/v1/readyz` and
  `/schema` need no token.
* Concurrency: `ETag` is the SHA-256 of the file's bytes; PUT, PATCH, DELETE, pause and resume need
  `If-Match` (428 without, 412 when the file changed, e.g. by a git pull).
* Errors: RFC 9457 `application/problem+json`; 422 lists every error with field path, line and column.
"""


def _guarded(store: TokenStore) -> Callable[..., None]:
    guard = bearer_guard(store)

    def maybe(connection: Any, handler: Any) -> None:
        if not handler.opt.get("public"):
            guard(connection, handler)

    return maybe


def _freeze_gc() -> None:
    gc.freeze()  # no collection first: over a big index it costs more than the few frozen garbage cycles


def openapi_config() -> OpenAPIConfig:
    """OpenAPI 3.1 settings: finished JSON at /schema/openapi.json, Swagger UI at /schema."""
    return OpenAPIConfig(
        title="zmi-reconciler API", version=__version__, description=API_DESCRIPTION,
        contact=Contact(name="zmi-reconciler"),
        tags=[Tag(name="schedules", description="schedule files (spec) with status"),
              Tag(name="runs", description="manual runs and the run journal"),
              Tag(name="catalog", description="task catalog and validation"),
              Tag(name="tna", description="time and attendance: employees, daily and monthly values, closing"),
              Tag(name="health", description="probes and metrics")],
        path="/schema", use_handler_docstrings=False, create_examples=False,
        render_plugins=[FinishedSwaggerRenderPlugin(path=["/", "/swagger"]),
                        FinishedJsonRenderPlugin(path="/openapi.json")],
    )


def create_app(settings: Settings, runner: Any, reconciler: Any, journal: Any, *,
               clock: Callable[[], datetime] = utc_now, tokens: TokenStore | None = None,
               freeze_gc: bool = False, open_store: Callable[[], Any] | None = None) -> Litestar:
    """Build the API. ``runner``, ``reconciler`` and ``journal`` are the live objects of the serve process
    (``None`` is allowed for building the OpenAPI document only). ``tokens`` default: settings tokens plus
    ``<data_dir>/tokens.json``; with none at all an admin token is generated (see :mod:`.auth`).

    ``freeze_gc`` (the serve process sets it): at app startup, move everything loaded so far (the journal
    index: about a million objects for a million events) out of the cyclic GC's reach with ``gc.freeze()``,
    so full collections during requests do not scan it (they cost 100+ ms pauses otherwise, SPEC 10 p99).

    ``open_store`` opens the tna store for one request (default: ``settings.database_path`` in the settings'
    zone); it is only called by the tna endpoints, never at build time."""
    service = ScheduleService(settings, runner, reconciler, journal, clock=clock)
    tna = TnaService(settings, open_store, clock=clock)
    store = tokens if tokens is not None else TokenStore.load(settings, create_admin=runner is not None)
    api = Router(path="/", route_handlers=[SchedulesController, ScheduleRunsController, RunsController,
                                           CatalogController, TnaController, HealthController],
                 guards=[_guarded(store)])
    app = Litestar(
        route_handlers=[api],
        dependencies={"service": Provide(lambda: service, use_cache=True, sync_to_thread=False),
                      "tna": Provide(lambda: tna, use_cache=True, sync_to_thread=False)},
        exception_handlers={Exception: handle_exception},
        openapi_config=openapi_config(),
        request_max_body_size=settings.max_request_bytes,
        debug=False,
        logging_config=None,  # our logging (text or JSON lines to stderr, logging_setup) is the only one
        on_startup=[_freeze_gc] if freeze_gc else [],
    )
    app.state.service = service
    return app


def openapi_document() -> dict[str, Any]:
    """The finished OpenAPI document, independent of settings and live objects (``zmi-reconciler openapi``,
    committed as ``openapi/openapi.json``)."""
    from zmi_reconciler.api.openapi import document

    app = create_app(Settings(), None, None, None, tokens=TokenStore([]))
    return document(app)


def openapi_json() -> str:
    """:func:`openapi_document` as the text committed in ``openapi/openapi.json`` (sorted-stable, 2-space)."""
    import json

    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
