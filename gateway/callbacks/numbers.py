"""Visitors' phone numbers for Request-a-Call: parsed, validated and typed with Google's
libphonenumber (the `phonenumbers` package), before the gateway ever dials one.

Only numbers a site can be expected to call back are accepted: fixed lines and mobiles (and
toll-free, which cost the caller nothing), in the site's countries. Premium-rate, shared-cost,
personal, pager, UAN, voicemail and VoIP numbers are the classic toll-fraud (IRSF) targets and
are refused with a reason the visitor can read.
"""

from __future__ import annotations

from collections.abc import Iterable

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

MAX_INPUT = 40

ACCEPTED_TYPES = {
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.TOLL_FREE,
}

REFUSED_TYPES = {
    PhoneNumberType.PREMIUM_RATE: "premium-rate numbers cannot be called back",
    PhoneNumberType.SHARED_COST: "shared-cost numbers cannot be called back",
    PhoneNumberType.PERSONAL_NUMBER: "personal (forwarding) numbers cannot be called back",
    PhoneNumberType.PAGER: "pager numbers cannot be called back",
    PhoneNumberType.UAN: "company (UAN) numbers cannot be called back",
    PhoneNumberType.VOICEMAIL: "voicemail numbers cannot be called back",
    PhoneNumberType.VOIP: "internet (VoIP) numbers cannot be called back",
}


class NumberRefused(ValueError):
    """The visitor's number cannot be called; `code` for machines, the message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def callback_number(text: object, countries: Iterable[str], country: str | None = None) -> str:
    """The E.164 form (`+441632960123`) of a number a visitor typed, or `NumberRefused`.

    A number without a leading `+` is read as a national number of `country` (the one the
    visitor chose, which must be one of `countries`), else of the site's first country. A
    number with its `+` and country code is read as it says, whatever was chosen.
    """
    allowed = [c.upper() for c in countries]
    if country is not None and country.upper() not in allowed:
        raise NumberRefused(
            "country_not_allowed", f"We can only call back numbers in {', '.join(allowed)}."
        )
    if not isinstance(text, str) or not text.strip():
        raise NumberRefused("number_missing", "Please enter your phone number.")
    if len(text) > MAX_INPUT or any(c < " " for c in text):
        raise NumberRefused("number_invalid", "That does not look like a phone number.")
    default_region = country.upper() if country is not None else (allowed[0] if allowed else None)
    try:
        number = phonenumbers.parse(text.strip(), default_region)
    except NumberParseException:
        raise NumberRefused("number_invalid", "That does not look like a phone number.") from None
    if not phonenumbers.is_valid_number(number):
        raise NumberRefused("number_invalid", "That number is not valid: check the digits.")
    region = phonenumbers.region_code_for_number(number)
    if allowed and region not in allowed:
        raise NumberRefused(
            "country_not_allowed",
            f"We can only call back numbers in {', '.join(allowed)}.",
        )
    kind = phonenumbers.number_type(number)
    if kind not in ACCEPTED_TYPES:
        reason = REFUSED_TYPES.get(kind, "this kind of number cannot be called back")
        raise NumberRefused("number_type_refused", reason[0].upper() + reason[1:] + ".")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
