"""Reports: per queue per interval (offered, answered, abandoned, SL, ASA, AHT) as a chart
and a table, agent performance, CSV downloads, and the Asterisk-format queue_log."""
from __future__ import annotations

import csv
import io
import logging
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, Response, abort, render_template, request, send_file

from admin_web.security import require

logger = logging.getLogger(__name__)

bp = Blueprint("reports", __name__, url_prefix="/reports")

INTERVALS = (15, 30, 60, 1440)
MAX_DAYS = 31
INTERVAL_COLUMNS = ("start", "queue", "offered", "answered", "abandoned", "timed_out",
                    "answered_in_target", "service_level", "asa", "aht", "longest_wait")
AGENT_COLUMNS = ("agent", "answered", "talk_s", "aht", "asa", "queues")


def _services():
    from admin_web.app import services
    return services()


def _window() -> tuple[datetime, datetime, int]:
    """[start, end) from ?from=YYYY-MM-DD&to=YYYY-MM-DD (local days, inclusive), ?interval=minutes."""
    today = date.today()
    try:
        first = date.fromisoformat(request.args.get("from") or today.isoformat())
        last = date.fromisoformat(request.args.get("to") or first.isoformat())
        minutes = int(request.args.get("interval", 60))
    except ValueError:
        abort(400, "dates are YYYY-MM-DD, the interval is minutes")
    if minutes not in INTERVALS or last < first or (last - first).days >= MAX_DAYS:
        abort(400, f"interval one of {INTERVALS}; at most {MAX_DAYS} days, from <= to")
    start = datetime.combine(first, time()).astimezone()
    end = datetime.combine(last + timedelta(days=1), time()).astimezone()
    return start, end, minutes


def _report() -> tuple[dict[str, Any], datetime, datetime, int]:
    report_of = _services().queue_report
    if report_of is None:
        abort(503, "reports are not available")
    start, end, minutes = _window()
    return report_of(start, end, minutes), start, end, minutes


@bp.get("/")
@require("reports.view")
def index():
    report, start, end, minutes = _report()
    chart = _chart(report["intervals"])
    return render_template("reports/index.html", report=report, chart=chart, intervals=INTERVALS,
                           minutes=minutes, first=start.date(), last=(end - timedelta(days=1)).date(),
                           query=request.query_string.decode())


def _chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Offered per interval (bars, one series per queue) and service level (line)."""
    labels = sorted({r["start"].isoformat(timespec="minutes") for r in rows})
    queues = sorted({r["queue"] for r in rows})
    at = {(r["start"].isoformat(timespec="minutes"), r["queue"]): r for r in rows}
    return {"labels": labels,
            "offered": {q: [at.get((t, q), {}).get("offered", 0) for t in labels] for q in queues},
            "service_level": {q: [_percent(at.get((t, q), {}).get("service_level")) for t in labels]
                              for q in queues}}


def _percent(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


@bp.get("/intervals.csv")
@require("reports.view")
def intervals_csv():
    report, *_ = _report()
    return _csv("queue-intervals.csv", INTERVAL_COLUMNS, report["intervals"])


@bp.get("/agents.csv")
@require("reports.view")
def agents_csv():
    report, *_ = _report()
    return _csv("agents.csv", AGENT_COLUMNS, report["agents"])


def _csv(filename: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, list):
        return " ".join(map(str, value))
    return "" if value is None else value


@bp.get("/queue_log")
@require("reports.view")
def queue_log():
    path = _services().queue_log_path
    if path is None or not path.exists():
        abort(404, "no queue_log yet")
    return send_file(path, mimetype="text/plain", as_attachment=True, download_name="queue_log")
