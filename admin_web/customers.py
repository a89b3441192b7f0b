"""Customers (caller profiles the IVR looks up by caller ID): list, and CSV import with a
report per row.  Columns: ``phone`` (required), ``name``, ``birth_year``, ``segment``,
``language``; a row for a known phone updates it."""
from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass

from flask import Blueprint, render_template, request
from sqlalchemy import func, select

from admin_web import audit, db
from admin_web.security import require
from callpilot.infra.db.models import Customer

logger = logging.getLogger(__name__)

bp = Blueprint("customers", __name__, url_prefix="/customers")

PHONE = re.compile(r"\+?[0-9]{3,20}")
SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,32}")
LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")
COLUMNS = ("phone", "name", "birth_year", "segment", "language")
PAGE = 200


@dataclass
class RowReport:
    line: int
    phone: str
    status: str          # created | updated | error
    reason: str = ""


@bp.get("/")
@require("customers.view")
def index():
    session = db.get()
    phone = request.args.get("phone", "").strip()
    query = select(Customer).order_by(Customer.phone).limit(PAGE)
    if phone:
        query = query.where(Customer.phone.startswith(phone))
    return render_template("customers/index.html", customers=session.scalars(query).all(),
                           total=session.scalar(select(func.count()).select_from(Customer)),
                           phone=phone, report=None)


@bp.post("/import")
@require("customers.edit")
def import_csv():
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _page([RowReport(0, "", "error", "no file chosen")]), 400
    try:
        text = upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        return _page([RowReport(0, "", "error", "the file is not UTF-8 text")]), 400
    report = import_rows(text)
    session = db.get()
    counts = {s: sum(1 for r in report if r.status == s) for s in ("created", "updated", "error")}
    audit.record(session, "customer", upload.filename, "import", None, counts,
                 f"{counts['created']} created, {counts['updated']} updated, {counts['error']} rejected")
    session.commit()
    return _page(report)


def _page(report: list[RowReport]):
    session = db.get()
    return render_template("customers/index.html", report=report, phone="",
                           customers=session.scalars(select(Customer).order_by(Customer.phone).limit(PAGE)).all(),
                           total=session.scalar(select(func.count()).select_from(Customer)))


def import_rows(text: str) -> list[RowReport]:
    """Validate and upsert every row (portable: a read, then insert or update)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("phone",) if c not in (reader.fieldnames or [])]
    if missing:
        return [RowReport(1, "", "error", f"the header has no {', '.join(missing)} column "
                                          f"(columns: {', '.join(COLUMNS)})")]
    session = db.get()
    report = []
    for row in reader:
        report.append(_import_row(session, reader.line_num, row))
    return report


def _import_row(session, line: int, row: dict) -> RowReport:
    values = {k: (row.get(k) or "").strip() for k in COLUMNS}
    problem = _problem(values)
    if problem:
        return RowReport(line, values["phone"], "error", problem)
    customer = session.get(Customer, values["phone"])
    status = "updated" if customer is not None else "created"
    if customer is None:
        customer = Customer(phone=values["phone"])
        session.add(customer)
    customer.name = values["name"]
    customer.birth_year = int(values["birth_year"]) if values["birth_year"] else None
    customer.segment = values["segment"] or "standard"
    customer.language = values["language"] or "en"
    return RowReport(line, values["phone"], status)


def _problem(values: dict[str, str]) -> str | None:
    if not PHONE.fullmatch(values["phone"]):
        return f"phone {values['phone']!r} is not a phone number"
    year = values["birth_year"]
    if year and (not year.isdigit() or not 1900 <= int(year) <= 2100):
        return f"birth_year {year!r} is not a year"
    if values["segment"] and not SEGMENT.fullmatch(values["segment"]):
        return f"segment {values['segment']!r}: letters, digits, _ or - only"
    if values["language"] and not LANGUAGE.fullmatch(values["language"]):
        return f"language {values['language']!r} is not a language code"
    return None
