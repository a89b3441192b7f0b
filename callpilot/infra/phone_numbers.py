"""Phone numbers for callbacks: normalised to E.164 and validated with ``phonenumbers``
(Google's libphonenumber metadata), so a hand-typed ``010-1234-5678`` and a caller ID
``+821012345678`` name the same customer, and only numbers fit to be dialled get through.

Toll-fraud guard: a callback dials only fixed-line or mobile numbers of the allowed
countries; premium-rate, shared-cost, extensions and anything unknown are refused here,
before a number can reach the database or the dedicated callback route.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

logger = logging.getLogger(__name__)

DIALLABLE_TYPES = frozenset({PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE,
                             PhoneNumberType.FIXED_LINE_OR_MOBILE})
MAX_INPUT = 40


class InvalidNumber(ValueError):
    """A number that cannot be called back; ``code`` is a stable id, the message is fit to
    show to the person who typed it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def to_e164(raw: str, default_country: str, allowed_countries: Iterable[str] = ()) -> str:
    """``raw`` as ``+<country><number>``; InvalidNumber says why it cannot be called back.

    ``default_country``: ISO region for numbers without ``+``; ``allowed_countries``: the
    regions that may be dialled (empty: the default country only)."""
    number = _parse(raw, default_country)
    if number.extension:
        raise InvalidNumber("number-extension", f"{raw!r}: a number with an extension cannot be called back")
    if not phonenumbers.is_valid_number(number):
        raise InvalidNumber("number-invalid", f"{raw!r} is not a valid phone number")
    region = phonenumbers.region_code_for_number(number)
    allowed = {c.upper() for c in allowed_countries} or {default_country.upper()}
    if region not in allowed:
        raise InvalidNumber("number-country", f"{raw!r} is a {region} number: callbacks go to "
                                              f"{', '.join(sorted(allowed))} numbers only")
    if phonenumbers.number_type(number) not in DIALLABLE_TYPES:
        raise InvalidNumber("number-type", f"{raw!r} is not a fixed-line or mobile number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _parse(raw: str, default_country: str) -> phonenumbers.PhoneNumber:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidNumber("number-missing", "no phone number given")
    if len(raw) > MAX_INPUT:
        raise InvalidNumber("number-too-long", f"a phone number has at most {MAX_INPUT} characters")
    try:
        return phonenumbers.parse(raw, default_country.upper())
    except NumberParseException as exc:
        raise InvalidNumber("number-unparsable", f"{raw!r} is not a phone number ({exc})") from None


def spoken_digits(e164: str, default_country: str) -> str:
    """The number as a caller would say it: national format for the default country
    (``010-1234-5678``), international otherwise (read back to the caller)."""
    number = phonenumbers.parse(e164, None)
    national = phonenumbers.region_code_for_number(number) == default_country.upper()
    fmt = phonenumbers.PhoneNumberFormat.NATIONAL if national else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(number, fmt)
