"""Countries as a site names them (ISO 3166 alpha-2 codes that libphonenumber knows): the
check of a configured code, with the code probably meant when it is not one (`UK` ->
`GB`), and the calling code of each, for the widget's choice of country."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import phonenumbers

# Codes people write for a country that ISO 3166 gives another: the United Kingdom's
# (reserved for it, and used in .uk) and Greece's in EU texts.
_COUNTRY_ALIASES = {"UK": "GB", "EL": "GR"}


def country_code(value: object) -> str:
    """An ISO 3166 alpha-2 code libphonenumber knows (returned upper case), or ValueError
    saying which code was probably meant: `UK` -> `GB`, `Ireland` -> `IE`, `+353` -> `IE`."""
    if isinstance(value, str) and value.strip().upper() in phonenumbers.SUPPORTED_REGIONS:
        return value.strip().upper()
    reason = f"{value!r} is not an ISO 3166 country code"
    meant = country_hint(value) if isinstance(value, str) else None
    raise ValueError(f"{reason}; did you mean {meant!r}?" if meant else reason)


def country_hint(text: str) -> str | None:
    """The country code `text` probably stands for: an alias, a calling code or an English
    country name (exact, or close to one); None when nothing is close."""
    cleaned = text.strip()
    upper = cleaned.upper()
    if upper in _COUNTRY_ALIASES:
        return _COUNTRY_ALIASES[upper]
    digits = cleaned.removeprefix("+").removeprefix("00")
    if digits.isascii() and digits.isdigit() and len(digits) <= 3:
        region = phonenumbers.region_code_for_country_code(int(digits))
        return region if region in phonenumbers.SUPPORTED_REGIONS else None
    names = _english_names()
    lowered = cleaned.lower()
    if lowered in names:
        return names[lowered]
    close = difflib.get_close_matches(lowered, list(names), n=1, cutoff=0.8)
    return names[close[0]] if close else None


def _english_names() -> dict[str, str]:
    """`{"ireland": "IE", ...}` from libphonenumber's own region names."""
    from phonenumbers.geocoder import _region_display_name  # only on this (error) path

    names: dict[str, str] = {}
    for code in sorted(phonenumbers.SUPPORTED_REGIONS):
        try:
            name = _region_display_name(code, "en")
        except Exception:  # a changed private helper: hints only, never a crash
            return names
        if name:
            names[name.lower()] = code
    return names


def calling_codes(countries: Iterable[str]) -> dict[str, int]:
    """`{"GB": 44, "IE": 353}`: the calling code of each country."""
    return {code: phonenumbers.country_code_for_region(code) for code in countries}
