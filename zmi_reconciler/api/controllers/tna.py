"""Time and attendance: employees, daily values (with bookings), monthly values, unassigned bookings
(read role) and month closing (write role). Dates are local dates of the server's zone; durations are integer minutes."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from pydantic import BaseModel, ValidationError

from zmi_reconciler.api.controllers import problems, read_document
from zmi_reconciler.api.controllers.schedules import call
from zmi_reconciler.api.models import (ClosingRequest, ClosingResult, DayOverview, EmployeeDays, EmployeeList,
                                       EmployeeMonths, ReopenRequest, UnassignedBookings)
from zmi_reconciler.api.problems import FieldError, InvalidRequest
from zmi_reconciler.api.tna import TnaService

#: The per-app tna service, injected by name (``dependencies={"tna": ...}`` in :func:`create_app`).
Tna = NamedDependency[TnaService]
_TEXTS = {404: "no employee with this personnel number",
          422: "a date or month that does not exist or a range that is too long: `errors` names the parameter"}


def _body(model: type[BaseModel], body: Any) -> Any:
    """Validate a request body; 422 listing every field error."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequest("invalid request body", [
            FieldError(path=".".join(str(p) for p in e.get("loc", ())), line=0, column=0, code="E400",
                       message=e.get("msg", "invalid")) for e in exc.errors()]) from None


class TnaController(Controller):
    path = "/api/v1"
    tags = ["tna"]

    @get("/employees", operation_id="listEmployees", summary="Employees with week plan and month closing",
         responses=problems(), sync_to_thread=True)
    def employees(self, tna: Tna) -> EmployeeList:
        return tna.employees()

    @get("/employees/{personnel_number:str}/daily-values", operation_id="employeeDailyValues",
         summary="An employee's daily values with the day's bookings",
         description="Only calculated days are listed. Default range: the current month up to today "
                     "(server zone); at most 366 days.",
         responses=problems(404, 422, descriptions=_TEXTS), sync_to_thread=True)
    def employee_days(self, personnel_number: FromPath[str], tna: Tna,
                      from_: Annotated[str | None, QueryParameter(
                          name="from", format="date", description="first local date (YYYY-MM-DD); default: "
                                                                  "the first of `to`'s month")] = None,
                      to: Annotated[str | None, QueryParameter(
                          format="date", description="last local date (YYYY-MM-DD); default: today")] = None
                      ) -> EmployeeDays:
        return tna.employee_days(personnel_number, from_, to)

    @get("/daily-values", operation_id="dailyValues", summary="All employees' daily values of one day",
         description="`errors=true`: only days with errors (who forgot to book). Errors appear once a day is "
                     "final, i.e. from the next day on.",
         responses=problems(422, descriptions=_TEXTS), sync_to_thread=True)
    def day_overview(self, tna: Tna,
                     date: Annotated[str | None, QueryParameter(
                         format="date", description="local date (YYYY-MM-DD); default: yesterday")] = None,
                     errors: Annotated[bool, QueryParameter(description="only days with errors")] = False
                     ) -> DayOverview:
        return tna.day_overview(date, errors)

    @get("/employees/{personnel_number:str}/monthly-values", operation_id="employeeMonthlyValues",
         summary="An employee's monthly values of a year (flextime start, change, carry)",
         responses=problems(404, descriptions=_TEXTS), sync_to_thread=True)
    def employee_months(self, personnel_number: FromPath[str], tna: Tna,
                        year: Annotated[int | None, QueryParameter(ge=1, le=9999,
                                                                   description="default: this year")] = None
                        ) -> EmployeeMonths:
        return tna.employee_months(personnel_number, year)

    @get("/unassigned-bookings", operation_id="unassignedBookings",
         summary="Bookings of unknown PINs, kept until the employee is added",
         description="Terminal bookings whose PIN (ATTLOG) or personnel number (CSV) matches no employee. "
                     "They attach automatically when the employee is added to the master data "
                     "(`zmi-reconciler masterdata FILE`). `summary` counts them per PIN.",
         responses=problems(), sync_to_thread=True)
    def unassigned_bookings(self, tna: Tna,
                            pin: Annotated[str | None, QueryParameter(
                                description="only this PIN or personnel number", max_length=64)] = None
                            ) -> UnassignedBookings:
        return tna.unassigned_bookings(pin)

    @post("/closing", operation_id="closeMonths", summary="Close months up to and including `through`",
          description="ZMI month closing: closed months are never recalculated and their bookings are "
                      "read-only. A closing never moves back here (use /closing/reopen).",
          opt={"role": "write"}, status_code=200,
          responses=problems(403, 404, 413, 415, 422, descriptions=_TEXTS))
    async def close(self, request: Request[Any, Any, Any], tna: Tna) -> ClosingResult:
        body: ClosingRequest = _body(ClosingRequest, await read_document(request, allow_yaml=False))
        return await call(tna.close, body.through, body.employees)

    @post("/closing/reopen", operation_id="reopenMonths", summary="Reopen `from` and every later month",
          opt={"role": "write"}, status_code=200,
          responses=problems(403, 404, 413, 415, 422, descriptions=_TEXTS))
    async def reopen(self, request: Request[Any, Any, Any], tna: Tna) -> ClosingResult:
        body: ReopenRequest = _body(ReopenRequest, await read_document(request, allow_yaml=False))
        return await call(tna.reopen, body.from_, body.employees)
