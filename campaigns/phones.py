"""Phone numbers and time zones of contacts: normalised to E.164 with Google's libphonenumber (``phonenumbers``).

A pure module (no database): the contact services, the CSV import and the do-not-call list all go through
``phone_normalize``, so one rule decides what a number is. Choices made:

- A number written without ``+country code`` is read in the ``default_region`` (ISO 3166 code, e.g. "GB" reads
  "020 7946 0958" as +44 20 7946 0958). Without a default region such a number is refused: guessing the country
  of a contact list would dial strangers.
- "00" is the international prefix in most of the world: "00 33 1 42 68 53 00" is +33 1 42 68 53 00 whatever
  the default region (the library alone would read it as a US number when the region is US, whose prefix is 011).
- Text in parentheses that holds letters ("(mobile)", "(work)") is a label, not vanity letters, and is ignored.
  Vanity numbers outside parentheses ("1-800-FLOWERS") are kept, as the library reads them.
- A number with an extension is refused: a dialer cannot dial one, and E.164 has no place for it.
- Only numbers the library holds valid for their country are accepted (length and number plan); the reason for a
  refusal says which check failed.
- The time zone is inferred from the number only when the number plan places it in exactly one zone (a London
  or a New York number); a number whose country or area spans several zones (many mobiles) gets "", and the
  campaign's default time zone applies to it.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from functools import cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult, geocoder
from phonenumbers import timezone as number_timezones

__all__ = [
    "InvalidPhoneNumber",
    "InvalidRegion",
    "InvalidTimezone",
    "NormalisedPhone",
    "phone_normalize",
    "region_choices",
    "region_clean",
    "timezone_clean",
]

# Longer than any real number with its punctuation; anything longer is a paragraph in the wrong column.
MAX_INPUT_CHARS = 64
_UNKNOWN_ZONE = "Etc/Unknown"
_LABEL_IN_PARENS_RE = re.compile(r"\((?=[^)]*[A-Za-z])[^)]*\)")
_PUNCTUATION_RE = re.compile(r"[\s().\-/\u00a0]")


class InvalidPhoneNumber(ValueError):
    """Not a number Callbook can dial; the message says why, for people. ``code`` is for API clients:
    empty, not_a_number, missing_country_code, unknown_country_code, too_short, too_long, invalid_length,
    local_only, extension, invalid_for_region."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class InvalidRegion(ValueError):
    """A default region that is not an ISO 3166 country code known to the phone-number library."""


class InvalidTimezone(ValueError):
    """A time zone name that is not in the IANA database."""


@dataclass(frozen=True, slots=True)
class NormalisedPhone:
    e164: str
    region: str  # ISO country of the number; "" for non-geographic numbers (+800 ...)
    timezone: str  # the one IANA zone the number plan places it in; "" when several or unknown


def region_clean(value: str) -> str:
    """An ISO 3166 region code, upper-cased ("gb" -> "GB"); "" stays "". Raises InvalidRegion."""
    region = value.strip().upper()
    if region and region not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidRegion(f"'{value.strip()[:20]}' is not a country code (use two letters, such as US, GB, FR).")
    return region


@cache
def _country_name(region: str) -> str:
    example = phonenumbers.example_number(region)
    name = geocoder.country_name_for_number(example, "en") if example is not None else ""
    return name or region


@cache
def region_choices() -> tuple[tuple[str, str], ...]:
    """(code, "United Kingdom (+44)") for every region, sorted by name: the default-region pickers."""
    choices = [
        (region, f"{_country_name(region)} (+{phonenumbers.country_code_for_region(region)})")
        for region in phonenumbers.SUPPORTED_REGIONS
    ]
    return tuple(sorted(choices, key=lambda choice: choice[1]))


def _where(number: phonenumbers.PhoneNumber, default_region: str | None) -> str:
    code = number.country_code or 0
    region = phonenumbers.region_code_for_number(number)
    if not region:
        # An invalid number has no region of its own: name the one it was read in, else the main country of its
        # country code (the United Kingdom for +44, the United States for +1).
        same_code = bool(default_region) and phonenumbers.country_code_for_region(default_region or "") == code
        region = default_region if same_code else phonenumbers.region_code_for_country_code(code)
    if region and region in phonenumbers.SUPPORTED_REGIONS:
        return f"{_country_name(region)} (+{code})"
    return f"+{code}"


def _parse(text: str, region: str | None) -> phonenumbers.PhoneNumber:
    try:
        return phonenumbers.parse(text, region)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            if text.lstrip().startswith("+"):
                raise InvalidPhoneNumber(
                    f"'{text}' starts with an unknown country code.", code="unknown_country_code"
                ) from None
            raise InvalidPhoneNumber(
                f"'{text}' has no country code: write it as +<country code> <number>, or choose the default "
                "country for numbers written without one.",
                code="missing_country_code",
            ) from None
        if exc.error_type in (NumberParseException.TOO_SHORT_NSN, NumberParseException.TOO_SHORT_AFTER_IDD):
            raise InvalidPhoneNumber(f"'{text}' is too short to be a phone number.", code="too_short") from None
        if exc.error_type == NumberParseException.TOO_LONG:
            raise InvalidPhoneNumber(f"'{text}' is too long to be a phone number.", code="too_long") from None
        raise InvalidPhoneNumber(f"'{text}' is not a phone number.", code="not_a_number") from None


def _check(number: phonenumbers.PhoneNumber, text: str, region: str | None) -> str:
    """Raises InvalidPhoneNumber unless ``number`` is valid; returns its region ("001" when non-geographic)."""
    if number.extension:
        raise InvalidPhoneNumber(
            f"'{text}' has an extension (x{number.extension}), which a dialer cannot dial: give the direct number.",
            code="extension",
        )
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible == ValidationResult.INVALID_COUNTRY_CODE:
        raise InvalidPhoneNumber(f"'{text}' starts with an unknown country code.", code="unknown_country_code")
    problems = {
        ValidationResult.TOO_SHORT: ("too_short", "is too short for a number in {}."),
        ValidationResult.TOO_LONG: ("too_long", "is too long for a number in {}."),
        ValidationResult.INVALID_LENGTH: ("invalid_length", "has the wrong number of digits for {}."),
        ValidationResult.IS_POSSIBLE_LOCAL_ONLY: ("local_only", "is a local number in {}: it needs its area code."),
    }
    if possible in problems:
        code, message = problems[possible]
        raise InvalidPhoneNumber(f"'{text}' {message.format(_where(number, region))}", code=code)
    # What is_valid_number does, keeping the region it finds (the costly part, on +1 with its 25 regions).
    number_region = phonenumbers.region_code_for_number(number)
    if number_region is None or not phonenumbers.is_valid_number_for_region(number, number_region):
        raise InvalidPhoneNumber(
            f"'{text}' is not a valid number in {_where(number, region)}.", code="invalid_for_region"
        )
    return number_region


def phone_normalize(raw: str, *, default_region: str = "") -> NormalisedPhone:
    """The E.164 form of ``raw``, its country and its inferred time zone. Raises InvalidPhoneNumber with the
    reason, or InvalidRegion for a bad ``default_region``."""
    text = " ".join(str(raw).split())
    if not text:
        raise InvalidPhoneNumber("No phone number given.", code="empty")
    if len(text) > MAX_INPUT_CHARS:
        raise InvalidPhoneNumber(
            f"'{text[:20]}…' is {len(text)} characters long: not a phone number.", code="not_a_number"
        )
    region = region_clean(default_region) or None
    cleaned = _LABEL_IN_PARENS_RE.sub(" ", text).strip() or text
    compact = _PUNCTUATION_RE.sub("", cleaned)
    international: InvalidPhoneNumber | None = None
    if compact.startswith("00") and not compact.startswith("000"):
        # The international prefix of most of the world, whatever the default region's own prefix is.
        try:
            number = _parse("+" + compact[2:], None)
            number_region = _check(number, text, None)
        except InvalidPhoneNumber as exc:
            international = exc  # maybe a national number of the default region after all: it decides
        else:
            return _result(number, number_region)
    try:
        number = _parse(cleaned, region)
        number_region = _check(number, text, region)
    except InvalidPhoneNumber:
        # "00 ..." that is no number either way: the reason of the likelier, international, reading.
        if international is not None:
            raise international from None
        raise
    return _result(number, number_region)


def _result(number: phonenumbers.PhoneNumber, region: str) -> NormalisedPhone:
    zones = [zone for zone in number_timezones.time_zones_for_number(number) if zone != _UNKNOWN_ZONE]
    return NormalisedPhone(
        e164=phonenumbers.format_number(number, PhoneNumberFormat.E164),
        region=region if region in phonenumbers.SUPPORTED_REGIONS else "",
        timezone=zones[0] if len(zones) == 1 and _is_known_zone(zones[0]) else "",
    )


@cache
def _zones_by_folded_name() -> dict[str, str]:
    return {name.casefold(): name for name in zoneinfo.available_timezones()}


def _is_known_zone(name: str) -> bool:
    return name.casefold() in _zones_by_folded_name()


def timezone_clean(value: str) -> str:
    """The IANA name of ``value`` with its canonical case ("europe/paris" -> "Europe/Paris"); "" stays "".
    Raises InvalidTimezone for a name the time-zone database does not know."""
    name = value.strip()
    if not name:
        return ""
    known = _zones_by_folded_name().get(name.casefold())
    if known is None:
        raise InvalidTimezone(f"'{name[:64]}' is not a known time zone: use an IANA name such as Europe/Paris.")
    return known
