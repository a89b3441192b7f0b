"""Callback numbers: E.164 normalisation with a default country, and clear refusals."""
from __future__ import annotations

import pytest

from callpilot.infra.phone_numbers import InvalidNumber, spoken_digits, to_e164


@pytest.mark.parametrize("raw", ["010-1234-5678", "010 1234 5678", "+82 10 1234 5678", "+821012345678",
                                 "(010) 1234-5678"])
def test_same_mobile_in_every_spelling(raw):
    assert to_e164(raw, "KR") == "+821012345678"


def test_landline_and_another_allowed_country():
    assert to_e164("02-312-3456", "KR") == "+8223123456"
    assert to_e164("+1 201 555 0123", "KR", ["KR", "US"]) == "+12015550123"


@pytest.mark.parametrize("raw,code", [
    ("", "number-missing"),
    ("   ", "number-missing"),
    ("hello", "number-unparsable"),
    ("12345", "number-invalid"),
    ("+1 201 555 0123", "number-country"),            # not in the allowed countries
    ("+1 201 555 0123 ext 5", "number-extension"),
    ("060-234-5678", "number-type"),                  # KR premium rate
    ("070-1234-5678", "number-type"),                 # KR VoIP
    ("0" * 50, "number-too-long"),
])
def test_refusals_have_stable_codes_and_say_why(raw, code):
    with pytest.raises(InvalidNumber) as info:
        to_e164(raw, "KR")
    assert info.value.code == code and str(info.value)


def test_read_back_in_the_callers_own_format():
    assert spoken_digits("+821012345678", "KR") == "010-1234-5678"
    assert spoken_digits("+12015550123", "KR") == "+1 201-555-0123"
