"""Phone-number normalisation and time-zone inference (campaigns/phones.py): a pure module, no database."""

from __future__ import annotations

import pytest

from campaigns.phones import (
    InvalidPhoneNumber,
    InvalidRegion,
    InvalidTimezone,
    phone_normalize,
    region_choices,
    region_clean,
    timezone_clean,
)


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("(202) 555-0143", "US", "+12025550143"),
        ("202.555.0143", "US", "+12025550143"),
        ("202-555-0143", "us", "+12025550143"),
        ("1 (202) 555-0143", "US", "+12025550143"),
        ("+1 202 555 0143", "", "+12025550143"),
        ("+1-202-555-0143", "GB", "+12025550143"),
        ("tel:+1-202-555-0143", "", "+12025550143"),
        ("+44 20 7946 0958", "", "+442079460958"),
        ("+44 (0)20 7946 0958", "", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("07911 123456", "GB", "+447911123456"),
        ("00 33 1 42 68 53 00", "", "+33142685300"),
        ("00 33 1 42 68 53 00", "US", "+33142685300"),
        ("0033142685300", "FR", "+33142685300"),
        ("01 42 68 53 00", "FR", "+33142685300"),
        ("+33 6 12 34 56 78", "", "+33612345678"),
        ("011 33 1 42 68 53 00", "US", "+33142685300"),
        ("+49 30 901820", "", "+4930901820"),
        ("030 901820", "DE", "+4930901820"),
        ("+61 2 9374 4000", "", "+61293744000"),
        ("  +1 415 555 2671  ", "", "+14155552671"),
        ("202-555-0143 (mobile)", "US", "+12025550143"),
        ("+1\u00a0202\u00a0555\u00a00143", "", "+12025550143"),
        ("1-800-FLOWERS", "US", "+18003569377"),
    ],
)
def test_it_normalises_real_world_formats_to_e164(raw, region, e164):
    assert phone_normalize(raw, default_region=region).e164 == e164


@pytest.mark.parametrize(
    ("raw", "region", "code", "words"),
    [
        ("", "US", "empty", "No phone number"),
        ("   ", "US", "empty", "No phone number"),
        ("John Smith", "US", "not_a_number", "not a phone number"),
        ("N/A", "US", "not_a_number", "not a phone number"),
        ("x" * 80, "US", "not_a_number", "80 characters"),
        ("2025550143", "", "missing_country_code", "no country code"),
        ("020 7946 0958", "", "missing_country_code", "default country"),
        ("+999 1234 5678", "", "unknown_country_code", "unknown country code"),
        ("+1 202", "", "too_short", "too short"),
        ("12", "US", "too_short", "too short"),
        ("+44 20 7946 09580000", "", "too_long", "too long"),
        ("555-0143", "US", "local_only", "needs its area code"),
        ("+1 202 555 0143 x5", "", "extension", "extension (x5)"),
        ("(202) 555-0143 ext. 12", "US", "extension", "extension (x12)"),
        ("+1 099 555 0143", "", "invalid_for_region", "not a valid number"),
        ("00 33 1 42", "", "too_short", "France"),
    ],
)
def test_it_refuses_invalid_numbers_with_the_reason(raw, region, code, words):
    with pytest.raises(InvalidPhoneNumber) as caught:
        phone_normalize(raw, default_region=region)
    assert caught.value.code == code
    assert words in str(caught.value)


def test_it_names_the_country_in_the_reason():
    with pytest.raises(InvalidPhoneNumber, match=r"United States \(\+1\)"):
        phone_normalize("555-0143", default_region="US")
    with pytest.raises(InvalidPhoneNumber, match=r"United Kingdom \(\+44\)"):
        phone_normalize("+44 20 7946 09580000")


@pytest.mark.parametrize(
    ("raw", "zone"),
    [
        ("+1 202 555 0143", "America/New_York"),
        ("+1 415 555 2671", "America/Los_Angeles"),
        ("+44 20 7946 0958", "Europe/London"),
        ("+33 1 42 68 53 00", "Europe/Paris"),
        ("+61 2 9374 4000", "Australia/Sydney"),
        ("+49 30 901820", "Europe/Berlin"),
    ],
)
def test_it_infers_the_timezone_from_the_number(raw, zone):
    assert phone_normalize(raw).timezone == zone


def test_it_leaves_the_timezone_empty_when_the_number_spans_several_zones():
    # A Russian mobile: the number plan does not say which of eleven zones.
    russian_mobile = phone_normalize("+7 912 345 67 89")
    assert russian_mobile.e164 == "+79123456789"
    assert russian_mobile.timezone == ""
    # A non-geographic number: no country, no zone.
    freephone = phone_normalize("+800 1234 5678")
    assert (freephone.region, freephone.timezone) == ("", "")


def test_it_reports_the_country_of_the_number():
    assert phone_normalize("020 7946 0958", default_region="GB").region == "GB"
    assert phone_normalize("+1 202 555 0143").region == "US"


def test_it_refuses_an_unknown_default_region():
    with pytest.raises(InvalidRegion, match="not a country code"):
        phone_normalize("020 7946 0958", default_region="XX")
    with pytest.raises(InvalidRegion):
        region_clean("England")
    assert region_clean(" gb ") == "GB"
    assert region_clean("") == ""


@pytest.mark.parametrize(
    ("given", "canonical"),
    [("Europe/Paris", "Europe/Paris"), ("europe/paris", "Europe/Paris"), (" America/New_York ", "America/New_York"),
     ("UTC", "UTC"), ("", "")],
)  # fmt: skip
def test_it_validates_timezones_against_the_iana_database(given, canonical):
    assert timezone_clean(given) == canonical


@pytest.mark.parametrize("given", ["Mars/Olympus_Mons", "EST5EDT7", "Paris", "GMT+25"])
def test_it_refuses_unknown_timezones(given):
    with pytest.raises(InvalidTimezone, match="not a known time zone"):
        timezone_clean(given)


def test_it_offers_every_region_with_its_name_and_code():
    choices = dict(region_choices())
    assert choices["GB"] == "United Kingdom (+44)"
    assert choices["US"] == "United States (+1)"
    assert choices["FR"] == "France (+33)"
    assert len(choices) > 200
