"""API tests of the tna endpoints: employees, daily values with bookings, the "who forgot to book" list,
monthly values, month closing and reopening; 401/403/404/422. A temp store with two employees and a week
of bookings, calculated with the real service (recalculate_months / recalculate_days); "now" is Monday
2026-04-20 12:00 Europe/Berlin."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from litestar.testing import TestClient

from test_api_support import READ, READ_TOKEN, WRITE, close_env, make_env
from test_task_helpers import BERLIN, local, seed_plans
from zmi_reconciler.api.app import create_app
from zmi_reconciler.api.auth import Token, TokenStore, hash_token
from zmi_reconciler.tna.service import recalculate_days, recalculate_months
from zmi_reconciler.tna.store import Employee, NewBooking, Store

NOW = datetime(2026, 4, 20, 10, 0, tzinfo=timezone.utc)  # 12:00 in Berlin (CEST)
TODAY = date(2026, 4, 20)


def seed(path: Path) -> None:
    """Anna (1001, flextime 60 at entry): Mon-Fri 08:00-16:30, Tuesday until 18:00, and today's come.
    Ben (1002): Mon-Fri 07:45-16:15, no go on Thursday 2026-04-16 (MISSING_GO). Both enter on 2026-04-13."""
    with Store.open(path, zone=BERLIN, clock=lambda: NOW) as store:
        seed_plans(store)
        anna, _ = store.upsert_employee(Employee("1001", "Anna", "Berg", week_plan="STD",
                                                 entry_date=date(2026, 4, 13), flextime_initial=60))
        ben, _ = store.upsert_employee(Employee("1002", "Ben", "Kraus", week_plan="STD",
                                                entry_date=date(2026, 4, 13)))
        bookings = []
        for day in range(13, 18):
            bookings.append(NewBooking(anna, local(2026, 4, day, 8), "come", "terminal"))
            bookings.append(NewBooking(anna, local(2026, 4, day, *((18, 0) if day == 14 else (16, 30))), "go",
                                       "terminal"))
            bookings.append(NewBooking(ben, local(2026, 4, day, 7, 45), "come", "terminal"))
            if day != 16:
                bookings.append(NewBooking(ben, local(2026, 4, day, 16, 15), "go", "manual"))
        bookings.append(NewBooking(anna, local(2026, 4, 20, 7, 55), "come", "terminal"))
        store.add_bookings(bookings)
        recalculate_months(store, 2026, 4, through=date(2026, 4, 19), today=TODAY)
        recalculate_days(store, [(anna, TODAY)], today=TODAY)


@pytest.fixture
def env(tmp_path: Path):
    e = make_env(tmp_path, now=NOW)
    seed(e.settings.database_path)
    yield e
    close_env(e)


@pytest.fixture
def client(env):
    with TestClient(env.app) as c:
        yield c


def _day(items: list[dict], day: str) -> dict:
    return next(item for item in items if item["date"] == day)


# ------------------------------------------------------------------------------------------------ reads
def test_employees_list_master_data_and_closing(client):
    r = client.get("/api/v1/employees", headers=READ)
    assert r.status_code == 200, r.text
    assert r.json() == {"items": [
        {"personnel_number": "1001", "name": "Anna Berg", "week_plan": "STD", "entry_date": "2026-04-13",
         "exit_date": None, "active": True, "closed_through": None},
        {"personnel_number": "1002", "name": "Ben Kraus", "week_plan": "STD", "entry_date": "2026-04-13",
         "exit_date": None, "active": True, "closed_through": None}]}


def test_employee_daily_values_with_bookings(client):
    r = client.get("/api/v1/employees/1001/daily-values", params={"from": "2026-04-13", "to": "2026-04-19"},
                   headers=READ)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["personnel_number"], body["from_date"], body["to_date"]) == ("1001", "2026-04-13", "2026-04-19")
    assert [item["date"] for item in body["items"]] == [f"2026-04-{d}" for d in range(13, 20)]
    tuesday = _day(body["items"], "2026-04-14")
    assert tuesday == {
        "personnel_number": "1001", "name": "Anna Berg", "date": "2026-04-14", "gross": 600, "breaks": 45,
        "net": 555, "target": 480, "difference": 75, "overtime": 75, "undertime": 0, "capped": 0, "errors": [],
        "provisional": False, "holiday_category": None,
        "bookings": [{"time": "08:00", "direction": "come", "source": "terminal"},
                     {"time": "18:00", "direction": "go", "source": "terminal"}]}
    monday = _day(body["items"], "2026-04-13")
    assert (monday["gross"], monday["breaks"], monday["net"], monday["difference"]) == (510, 30, 480, 0)
    sunday = _day(body["items"], "2026-04-19")
    assert (sunday["target"], sunday["net"], sunday["bookings"]) == (0, 0, [])


def test_missing_go_day_of_an_employee(client):
    items = client.get("/api/v1/employees/1002/daily-values", params={"from": "2026-04-16", "to": "2026-04-16"},
                       headers=READ).json()["items"]
    assert len(items) == 1
    day = items[0]
    assert day["errors"] == ["MISSING_GO"]
    assert (day["gross"], day["net"], day["target"], day["undertime"]) == (0, 0, 480, 480)
    assert day["bookings"] == [{"time": "07:45", "direction": "come", "source": "terminal"}]


def test_default_range_is_the_current_month_up_to_today(client):
    body = client.get("/api/v1/employees/1001/daily-values", headers=READ).json()
    assert (body["from_date"], body["to_date"]) == ("2026-04-01", "2026-04-20")
    # days before the entry date are never calculated; today is provisional (no error for the open come)
    assert [item["date"] for item in body["items"]] == [f"2026-04-{d}" for d in range(13, 21)]
    today = body["items"][-1]
    assert (today["provisional"], today["errors"]) == (True, [])
    assert today["bookings"] == [{"time": "07:55", "direction": "come", "source": "terminal"}]
    only_to = client.get("/api/v1/employees/1001/daily-values", params={"to": "2026-04-14"}, headers=READ).json()
    assert (only_to["from_date"], len(only_to["items"])) == ("2026-04-01", 2)


def test_who_forgot_to_book(client):
    r = client.get("/api/v1/daily-values", params={"date": "2026-04-16", "errors": "true"}, headers=READ)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["date"], body["errors_only"]) == ("2026-04-16", True)
    assert [(i["personnel_number"], i["name"], i["errors"]) for i in body["items"]] == [
        ("1002", "Ben Kraus", ["MISSING_GO"])]
    every = client.get("/api/v1/daily-values", params={"date": "2026-04-16"}, headers=READ).json()
    assert [(i["personnel_number"], i["net"], i["errors"]) for i in every["items"]] == [
        ("1001", 480, []), ("1002", 0, ["MISSING_GO"])]
    assert every["items"][0]["bookings"] == [{"time": "08:00", "direction": "come", "source": "terminal"},
                                             {"time": "16:30", "direction": "go", "source": "terminal"}]


def test_day_overview_defaults_to_yesterday(client):
    body = client.get("/api/v1/daily-values", headers=READ).json()
    assert body["date"] == "2026-04-19"
    assert [i["personnel_number"] for i in body["items"]] == ["1001", "1002"]
    assert client.get("/api/v1/daily-values", params={"errors": "true"}, headers=READ).json()["items"] == []


def test_monthly_values_with_flextime_carry(client):
    r = client.get("/api/v1/employees/1001/monthly-values", params={"year": 2026}, headers=READ)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["personnel_number"], body["year"]) == ("1001", 2026)
    assert body["items"] == [{
        "year": 2026, "month": 4, "gross": 2640, "breaks": 165, "net": 2475, "target": 2400, "overtime": 75,
        "undertime": 0, "difference": 75, "flextime_start": 60, "flextime_change": 75, "flextime_carry": 135,
        "forfeited": 0, "error_days": 0, "closed": False}]
    ben = client.get("/api/v1/employees/1002/monthly-values", headers=READ).json()  # default: this year
    assert [(m["month"], m["flextime_carry"], m["error_days"]) for m in ben["items"]] == [(4, -480, 1)]
    assert client.get("/api/v1/employees/1002/monthly-values", params={"year": 2025},
                      headers=READ).json()["items"] == []


# ---------------------------------------------------------------------------------------------- closing
def _closed(client) -> dict[str, str | None]:
    return {e["personnel_number"]: e["closed_through"]
            for e in client.get("/api/v1/employees", headers=READ).json()["items"]}


def test_close_then_reopen_moves_closed_through(client):
    r = client.post("/api/v1/closing", json={"through": "2026-03"}, headers=WRITE)
    assert r.status_code == 200, r.text
    assert r.json() == {"moved": 2, "items": [{"personnel_number": "1001", "closed_through": "2026-03"},
                                              {"personnel_number": "1002", "closed_through": "2026-03"}]}

    r = client.post("/api/v1/closing", json={"through": "2026-04", "employees": ["1001"]}, headers=WRITE)
    assert r.json() == {"moved": 1, "items": [{"personnel_number": "1001", "closed_through": "2026-04"}]}
    assert _closed(client) == {"1001": "2026-04", "1002": "2026-03"}
    months = client.get("/api/v1/employees/1001/monthly-values", headers=READ).json()["items"]
    assert [(m["month"], m["closed"]) for m in months] == [(4, True)]
    # an earlier closing never moves a closing back
    assert client.post("/api/v1/closing", json={"through": "2026-01"}, headers=WRITE).json()["moved"] == 0

    r = client.post("/api/v1/closing/reopen", json={"from": "2026-04"}, headers=WRITE)
    assert r.status_code == 200, r.text
    assert r.json()["moved"] == 1
    assert _closed(client) == {"1001": "2026-03", "1002": "2026-03"}
    months = client.get("/api/v1/employees/1001/monthly-values", headers=READ).json()["items"]
    assert [(m["month"], m["closed"]) for m in months] == [(4, False)]
    r = client.post("/api/v1/closing/reopen", json={"from": "2026-03", "employees": ["1002"]}, headers=WRITE)
    assert r.json() == {"moved": 1, "items": [{"personnel_number": "1002", "closed_through": "2026-02"}]}


def test_closing_needs_the_write_role(client):
    for path, body in (("/api/v1/closing", {"through": "2026-03"}), ("/api/v1/closing/reopen", {"from": "2026-03"})):
        r = client.post(path, json=body, headers=READ)
        assert r.status_code == 403, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    assert _closed(client) == {"1001": None, "1002": None}


def test_closing_an_unknown_employee_is_404_and_changes_nothing(client):
    r = client.post("/api/v1/closing", json={"through": "2026-03", "employees": ["1001", "4711"]}, headers=WRITE)
    assert r.status_code == 404, r.text
    assert "4711" in r.json()["detail"]
    assert _closed(client) == {"1001": None, "1002": None}


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/v1/closing", {"through": "2026-13"}, "through"),
    ("/api/v1/closing", {"through": "0000-01"}, "through"),
    ("/api/v1/closing", {}, "through"),
    ("/api/v1/closing", {"through": "2026-03", "who": "all"}, "who"),
    ("/api/v1/closing/reopen", {"from": "April"}, "from"),
    ("/api/v1/closing/reopen", {"through": "2026-03"}, "from"),
])
def test_closing_bad_month_is_422(client, path, body, field):
    r = client.post(path, json=body, headers=WRITE)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["type"].endswith("/invalid-request")
    assert field in [e["path"] for e in problem["errors"]]


# ------------------------------------------------------------------------------------------- auth, 404, 422
@pytest.mark.parametrize("path", ["/api/v1/employees", "/api/v1/employees/1001/daily-values",
                                  "/api/v1/daily-values", "/api/v1/employees/1001/monthly-values"])
def test_reads_need_a_token(client, path):
    r = client.get(path)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert client.post("/api/v1/closing", json={"through": "2026-03"}).status_code == 401


@pytest.mark.parametrize("path", ["/api/v1/employees/4711/daily-values", "/api/v1/employees/4711/monthly-values"])
def test_unknown_personnel_number_is_404(client, path):
    r = client.get(path, headers=READ)
    assert r.status_code == 404
    assert r.json()["type"].endswith("/not-found") and "4711" in r.json()["detail"]


@pytest.mark.parametrize(("params", "field"), [
    ({"from": "2026-02-30"}, "from"),
    ({"to": "20260419"}, "to"),
    ({"from": "2026-04-19", "to": "2026-04-13"}, "from"),
    ({"from": "2025-04-19", "to": "2026-04-20"}, "to"),  # 367 days
])
def test_bad_daily_value_range_is_422(client, params, field):
    r = client.get("/api/v1/employees/1001/daily-values", params=params, headers=READ)
    assert r.status_code == 422, r.text
    assert [e["path"] for e in r.json()["errors"]] == [field]


def test_range_of_366_days_is_allowed(client):
    r = client.get("/api/v1/employees/1001/daily-values", params={"from": "2025-04-20", "to": "2026-04-20"},
                   headers=READ)
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 8


def test_bad_day_overview_date_is_422(client):
    r = client.get("/api/v1/daily-values", params={"date": "yesterday"}, headers=READ)
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "date"


def test_every_request_opens_and_closes_its_own_store(tmp_path: Path):
    """The injected opener is called per request and each store is closed (no connection crosses threads)."""
    env = make_env(tmp_path, now=NOW)
    try:
        seed(env.settings.database_path)
        opened: list[Store] = []

        def open_store() -> Store:
            store = Store.open(env.settings.database_path, zone=BERLIN)
            opened.append(store)
            return store

        tokens = TokenStore([Token("reader", hash_token(READ_TOKEN), "read")])
        app = create_app(env.settings, env.runner, env.reconciler, env.journal, clock=env.clock, tokens=tokens,
                         open_store=open_store)
        assert opened == []  # nothing is opened at build time
        with TestClient(app) as client:
            for _ in range(3):
                assert client.get("/api/v1/employees", headers=READ).status_code == 200
        assert len(opened) == 3
        for store in opened:
            with pytest.raises(Exception, match="closed"):
                store.employees()
    finally:
        close_env(env)
