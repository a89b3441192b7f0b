"""Calendars page: create, import an .ics or CSV upload (the CLI's reader), delete a closed
day; audited; permissions per role."""
from __future__ import annotations

import io
from datetime import date, time

import pytest
from sqlalchemy import select

from admin_web import audit, db
from callpilot.infra.calendar import Hours
from callpilot.infra.db.calendars import CalendarStore
from callpilot.infra.db.web_users import AuditEntry

NEXT_YEAR = date.today().year + 1
ICS = (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
       f"BEGIN:VEVENT\r\nUID:a@test\r\nDTSTART;VALUE=DATE:{NEXT_YEAR}0101\r\nSUMMARY:New Year\r\nEND:VEVENT\r\n"
       f"BEGIN:VEVENT\r\nUID:b@test\r\nDTSTART;VALUE=DATE:{NEXT_YEAR}0301\r\nSUMMARY:Independence Day\r\nEND:VEVENT\r\n"
       f"END:VCALENDAR\r\n").encode()
CSV = f"{NEXT_YEAR}-12-25,Christmas\nmon,09:00,18:00\ntue,09:00,18:00\n".encode()


def _store(app) -> CalendarStore:
    with app.app_context():
        return CalendarStore(db.sessions())


def _create(auth, name="bank", zone="Asia/Seoul"):
    return auth.post("/calendars/new", {"name": name, "timezone": zone})


def _upload(auth, name, data: bytes, filename: str, zone=""):
    return auth.post(f"/calendars/{name}/import", {"file": (io.BytesIO(data), filename), "timezone": zone},
                     content_type="multipart/form-data")


def _audit(app, action):
    with app.app_context():
        return [e for e in audit.entries(db.get(), "calendar") if e.action == action]


def test_create_then_import_ics_and_csv(app, client, auth):
    auth.login("super")
    assert _create(auth).status_code == 303
    calendar = _store(app).get("bank")
    assert calendar.timezone == "Asia/Seoul" and not calendar.closed and not calendar.hours
    assert _upload(auth, "bank", ICS, "holidays.ics").status_code == 303
    assert _store(app).get("bank").closed == {date(NEXT_YEAR, 1, 1): "New Year",
                                              date(NEXT_YEAR, 3, 1): "Independence Day"}
    assert _upload(auth, "bank", CSV, "hours.csv", zone="Europe/Paris").status_code == 303
    calendar = _store(app).get("bank")                      # an import replaces days and hours
    assert calendar.closed == {date(NEXT_YEAR, 12, 25): "Christmas"}
    assert calendar.hours == (Hours(0, time(9), time(18)), Hours(1, time(9), time(18)))
    assert calendar.timezone == "Europe/Paris"
    page = client.get("/calendars/").get_data(as_text=True)
    assert f"{NEXT_YEAR}-12-25 (Christmas)" in page and "Mon 09:00-18:00" in page
    imports = _audit(app, "import")
    assert imports[0].before["closed"] == {f"{NEXT_YEAR}-01-01": "New Year", f"{NEXT_YEAR}-03-01": "Independence Day"}
    assert imports[0].after["hours"] == ["mon 09:00-18:00", "tue 09:00-18:00"]
    assert imports[0].actor == "super" and imports[0].detail == "hours.csv"
    assert _audit(app, "create")[0].after == {"name": "bank", "timezone": "Asia/Seoul"}


def test_a_bad_file_changes_nothing(app, auth):
    auth.login("admin")
    _create(auth)
    _upload(auth, "bank", CSV, "hours.csv")
    response = _upload(auth, "bank", b"mon,9h,18h\n", "broken.csv")
    assert response.status_code == 303
    assert _store(app).get("bank").closed == {date(NEXT_YEAR, 12, 25): "Christmas"}
    assert _audit(app, "import") and len(_audit(app, "import")) == 1


def test_delete_a_closed_day(app, client, auth):
    auth.login("admin")
    _create(auth)
    _upload(auth, "bank", ICS, "holidays.ics")
    assert auth.post(f"/calendars/bank/days/{NEXT_YEAR}-01-01/delete").status_code == 303
    assert _store(app).get("bank").closed == {date(NEXT_YEAR, 3, 1): "Independence Day"}
    entry = _audit(app, "delete_day")[0]
    assert entry.before == {"day": f"{NEXT_YEAR}-01-01", "name": "New Year"} and entry.actor == "admin"
    assert auth.post(f"/calendars/bank/days/{NEXT_YEAR}-01-01/delete").status_code == 404
    assert auth.post("/calendars/nope/days/2030-01-01/delete").status_code == 404


def test_names_and_zones_are_checked(app, auth):
    auth.login("admin")
    _create(auth, "bank")
    _create(auth, "bank", "UTC")                 # taken
    _create(auth, "bad name!", "UTC")
    _create(auth, "other", "Mars/Olympus")
    assert _store(app).names() == ["bank"]
    assert len(_audit(app, "create")) == 1


@pytest.mark.parametrize("path", ["/calendars/new", "/calendars/bank/import",
                                  f"/calendars/bank/days/{NEXT_YEAR}-01-01/delete"])
def test_agents_cannot_edit_calendars(app, client, auth, path):
    auth.login("admin")
    _create(auth)
    _upload(auth, "bank", ICS, "holidays.ics")
    auth.logout()
    auth.login("agent")
    assert auth.post(path, {"name": "x", "timezone": "UTC"}).status_code == 403
    assert _store(app).names() == ["bank"] and len(_store(app).get("bank").closed) == 2


def test_edit_controls_only_for_editors(client, auth):
    auth.login("agent")
    assert client.get("/calendars/").status_code == 403
    auth.logout()
    auth.login("super")
    assert b"Create calendar" in client.get("/calendars/").data


def test_csrf_is_required(app, client, auth):
    auth.login("admin")
    assert client.post("/calendars/new", data={"name": "bank", "timezone": "UTC"}).status_code == 400
    assert _store(app).names() == []
