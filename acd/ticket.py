"""The routing ticket's caller attributes, from the caller's profile (pure)."""
from __future__ import annotations

from acd.model import AGE_BAND_ATTR, DEFAULT_AGE_BANDS, LANGUAGE_ATTR, AgeBands
from callpilot.infra.db.customers import CustomerProfile

VIP_SEGMENTS = frozenset({"vip", "private"})


def caller_attributes(profile: CustomerProfile | None, today_year: int,
                      bands: AgeBands = DEFAULT_AGE_BANDS) -> dict:
    """age_band, language and vip for routing; an unknown caller gets no age band (steps
    that compare bands are then skipped at once, see acd.policy)."""
    if profile is None:
        return {}
    attributes: dict = {LANGUAGE_ATTR: profile.language, "vip": profile.segment in VIP_SEGMENTS}
    if profile.birth_year:
        attributes[AGE_BAND_ATTR] = bands.band_of(profile.birth_year, today_year)
    return attributes
