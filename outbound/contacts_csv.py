"""Contact lists from CSV: every bad row reported with its line number and reason, good rows
kept, all in ONE transaction (a crash or error leaves nothing half-imported).

Columns: ``phone`` (required), ``name``, ``timezone`` (IANA; derived from the number with
``phonenumbers.timezone`` when absent and unambiguous), ``language``; every other column is a
template variable.  Streamed row by row and inserted in batches: memory grows with the number
of distinct phones (duplicate check) and bad rows, never with the file.
"""
from __future__ import annotations

import csv
import logging
import string
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO
from zoneinfo import available_timezones

import phonenumbers
from phonenumbers import timezone as pn_timezone
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from callpilot.infra.db.campaigns import Campaign, CampaignContact
from outbound.model import ContactStatus

logger = logging.getLogger(__name__)

BATCH_ROWS = 2000
KNOWN_COLUMNS = ("phone", "name", "timezone", "language")
UNKNOWN_ZONE = "Etc/Unknown"


@dataclass
class ImportReport:
    imported: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)   # (line number, reason)

    def as_dict(self) -> dict:
        return {"imported": self.imported, "rejected": len(self.errors),
                "errors": [{"line": line, "reason": reason} for line, reason in self.errors]}


class RowError(ValueError):
    pass


def template_fields(template: str) -> set[str]:
    """``"Hi {name}, order {order_id}"`` -> ``{"name", "order_id"}``."""
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


class RowChecker:
    """Validates one CSV row into a contact (raises RowError with the reason)."""

    def __init__(self, needed: set[str], region: str, seen: set[str]):
        self.needed, self.region, self.seen = needed, region, seen
        self.zones = available_timezones()

    def phone(self, raw: str) -> phonenumbers.PhoneNumber:
        try:
            number = phonenumbers.parse(raw, self.region)
        except phonenumbers.NumberParseException as exc:
            raise RowError(f"bad number {raw!r}: {exc}") from None
        if not phonenumbers.is_valid_number(number):
            raise RowError(f"bad number {raw!r}: not a valid number")
        return number

    def timezone(self, given: str, number: phonenumbers.PhoneNumber) -> str:
        if given:
            if given not in self.zones:
                raise RowError(f"unknown timezone {given!r}")
            return given
        zones = [z for z in pn_timezone.time_zones_for_number(number) if z != UNKNOWN_ZONE]
        if len(zones) != 1:
            raise RowError(f"unknown timezone: not derivable from the number ({len(zones)} zones); "
                           "give a timezone column")
        return zones[0]

    def check(self, row: dict[str, str]) -> dict:
        raw_phone = (row.get("phone") or "").strip()
        number = self.phone(raw_phone)
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        if e164 in self.seen:
            raise RowError(f"duplicate number {e164}")
        zone = self.timezone((row.get("timezone") or "").strip(), number)
        variables = {k: (v or "").strip() for k, v in row.items()
                     if k and k not in KNOWN_COLUMNS and k is not None}
        name = (row.get("name") or "").strip()
        values = {**variables, "name": name}
        missing = sorted(f for f in self.needed if not values.get(f))
        if missing:
            raise RowError(f"missing variable {', '.join(missing)}")
        self.seen.add(e164)
        return {"phone": e164, "name": name, "timezone": zone,
                "language": (row.get("language") or "").strip(), "variables": variables}


def import_contacts(connection: Connection, campaign_name: str, lines: TextIO, now: datetime,
                    region: str = "US") -> ImportReport:
    """Import into ``campaign_name`` inside the caller's transaction (see :func:`import_file`)."""
    campaign = connection.execute(select(Campaign.id, Campaign.template, Campaign.voicemail_template)
                                  .where(Campaign.name == campaign_name)).first()
    if campaign is None:
        raise ValueError(f"no campaign {campaign_name!r}")
    needed = template_fields(campaign.template) | template_fields(campaign.voicemail_template or "")
    seen = set(connection.scalars(select(CampaignContact.phone)
                                  .where(CampaignContact.campaign_id == campaign.id)))
    checker, report, batch = RowChecker(needed, region, seen), ImportReport(), []
    reader = csv.DictReader(lines)
    if "phone" not in (reader.fieldnames or []):
        raise ValueError("the CSV needs a header line with a 'phone' column")
    fixed = {"campaign_id": campaign.id, "status": ContactStatus.PENDING.value, "attempts": 0,
             "last_reply": "", "next_attempt_at": now}
    for row in reader:
        try:
            batch.append({**fixed, **checker.check(row)})
        except RowError as exc:
            report.errors.append((reader.line_num, str(exc)))
        if len(batch) >= BATCH_ROWS:
            report.imported += _flush(connection, batch)
    report.imported += _flush(connection, batch)
    return report


def _flush(connection: Connection, batch: list[dict]) -> int:
    if not batch:
        return 0
    connection.execute(insert(CampaignContact), batch)
    count = len(batch)
    batch.clear()
    return count


def import_file(engine, campaign_name: str, path, now: datetime, region: str = "US") -> ImportReport:
    """One transaction for the whole file: committed only after the last row."""
    with open(path, newline="", encoding="utf-8-sig") as fh, engine.begin() as connection:
        report = import_contacts(connection, campaign_name, fh, now, region)
    logger.info("campaign %s: %d contacts imported, %d rows rejected from %s", campaign_name,
                report.imported, len(report.errors), path)
    return report

