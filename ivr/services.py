"""Data a flow may fetch during a call: customer profiles, webhooks, calendars, outbound routes.

Nodes reach them only through :class:`Services` (``FlowRunner(services=...)``), so flows are
tested with a fake.  :class:`DefaultServices` asks the one customer directory
(``callpilot.infra.db.customers``, shared with the ACD) and calls webhooks with aiohttp.  The
routing age band is the ACD's (``acd.model.AgeBands.band_of``), passed in by the composition root.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import date
from typing import Any, Callable, Protocol

from callpilot.infra.calendar import Calendar
from callpilot.infra.db.customers import CustomerDirectory, LookupFailed

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """A lookup could not be done (database down, webhook timeout or bad answer)."""


class Services(Protocol):
    async def customer(self, phone: str) -> dict[str, Any] | None:
        """The caller's profile by phone number (None if unknown).  Raises ServiceError."""

    async def webhook(self, url: str, *, method: str, payload: dict[str, Any],
                      timeout: float) -> dict[str, Any]:
        """Call ``url``; return its JSON object.  Raises :class:`ServiceError` on failure."""

    def holidays(self, calendar: str) -> frozenset[date]:
        """Dates of the named holiday calendar (empty if unknown)."""

    def calendar(self, name: str) -> Calendar | None:
        """The named stored calendar (closed days, opening hours), None if unknown."""

    def outbound_route(self, name: str) -> str | None:
        """The dial string of an allow-listed outbound route (None if not configured)."""

    def age_band(self, birth_year: int, year: int) -> str:
        """Routing age band of someone born in ``birth_year``, in ``year``."""


class DefaultServices:
    def __init__(self, customers: CustomerDirectory | None, *, age_band: Callable[[int, int], str],
                 calendars: Callable[[str], Calendar | None] | None = None, http: Any = None,
                 routes: dict[str, str] | None = None) -> None:
        self._customers = customers
        self._calendars = calendars or (lambda _name: None)
        self._routes = dict(routes or {})
        self._age_band = age_band
        self._http = http   # aiohttp.ClientSession; created on first use when None

    async def customer(self, phone: str) -> dict[str, Any] | None:
        # inline, as the ACD does: the directory answers from its TTL cache or one indexed query
        if self._customers is None or not phone:
            return None
        try:
            profile = self._customers.lookup(phone)
        except LookupFailed as exc:
            raise ServiceError(str(exc)) from exc
        return None if profile is None else profile.as_dict()

    async def webhook(self, url: str, *, method: str, payload: dict[str, Any],
                      timeout: float) -> dict[str, Any]:
        import aiohttp

        session = await self._session()
        kwargs = {"params": {k: str(v) for k, v in payload.items()}} if method == "GET" else {"json": payload}
        try:
            async with session.request(method, url, timeout=aiohttp.ClientTimeout(total=timeout),
                                       **kwargs) as response:
                response.raise_for_status()
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise ServiceError(f"webhook {url} failed: {exc!r}") from exc
        if not isinstance(data, dict):
            raise ServiceError(f"webhook {url} did not answer a JSON object")
        return data

    async def _session(self) -> Any:
        if self._http is None:
            import aiohttp
            self._http = aiohttp.ClientSession()
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def holidays(self, calendar: str) -> frozenset[date]:
        found = self._calendars(calendar)
        return found.holidays() if found else frozenset()

    def calendar(self, name: str) -> Calendar | None:
        return self._calendars(name)

    def outbound_route(self, name: str) -> str | None:
        return self._routes.get(name)

    def age_band(self, birth_year: int, year: int) -> str:
        return self._age_band(birth_year, year)
