"""Customer profiles: CSV import with a report per row."""
from __future__ import annotations

import io

from sqlalchemy import select

from admin_web import db
from callpilot.infra.db.models import Customer
from callpilot.infra.db.web_users import AuditEntry

CSV = ("phone,name,birth_year,segment,language\n"
       "01012345678,Kim Minsu,1958,vip,ko\n"
       "not-a-phone,Nobody,,,\n"
       "01099998888,Lee,19x0,standard,ko\n"
       "01055556666,Park,,,\n"
       "01012345678,Kim Min-su,1958,vip,ko\n")


def _upload(auth, text: str, name: str = "customers.csv"):
    return auth.post("/customers/import", {"file": (io.BytesIO(text.encode()), name)},
                     content_type="multipart/form-data")


def test_import_reports_every_row(app, client, auth):
    auth.login()
    response = _upload(auth, CSV)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "2 created,\n  1 updated,\n  2 rejected." in html
    assert "phone &#39;not-a-phone&#39; is not a phone number" in html
    assert "birth_year &#39;19x0&#39; is not a year" in html
    with app.app_context():
        rows = {c.phone: c for c in db.get().scalars(select(Customer))}
        entry = db.get().scalars(select(AuditEntry).where(AuditEntry.entity == "customer")).one()
    assert set(rows) == {"01012345678", "01055556666"}
    assert rows["01012345678"].name == "Kim Min-su" and rows["01012345678"].birth_year == 1958
    assert rows["01055556666"].segment == "standard" and rows["01055556666"].language == "en"
    assert entry.after == {"created": 2, "updated": 1, "error": 2}


def test_missing_phone_column(auth):
    auth.login()
    html = _upload(auth, "name\nKim\n").get_data(as_text=True)
    assert "the header has no phone column" in html


def test_supervisor_sees_but_cannot_import(client, auth):
    auth.login("super")
    assert client.get("/customers/").status_code == 200
    assert _upload(auth, CSV).status_code == 403
