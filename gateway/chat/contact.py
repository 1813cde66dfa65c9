"""How a visitor who left a message wants to be answered: a phone number or an email
address, as they typed it, checked for form only (the site's owner answers it by hand).

A number is at most 32 characters of digits, spaces and `+ ( ) - . /`, with 6 to 15 digits
(E.164's most); an address is one plain address the standard library's parser takes.
Anything else is refused with words that say which it looked like.
"""

from __future__ import annotations

import re

from gateway.sites.notifications import email_address

MAX_CONTACT_CHARS = 254
_PHONE = re.compile(r"\+?[0-9 ()./-]{1,32}")


class ContactError(ValueError):
    """Not a number or an address; `code` is `contact_missing` or `contact_invalid`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_contact(value: object) -> tuple[str, str]:
    """(the contact, "phone" | "email"); raises ContactError."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ContactError("contact_missing", "Leave a phone number or an email address.")
    if not isinstance(value, str) or len(value) > MAX_CONTACT_CHARS:
        raise ContactError("contact_invalid", "That is not a phone number or an email address.")
    text = " ".join(value.split())
    if "@" in text:
        try:
            return email_address(text, "contact"), "email"
        except ValueError:
            raise ContactError(
                "contact_invalid", "That is not an email address: check it."
            ) from None
    digits = sum(char.isdigit() for char in text)
    if not _PHONE.fullmatch(text) or not 6 <= digits <= 15:
        raise ContactError(
            "contact_invalid", "That is not a phone number: check the digits (6 to 15)."
        )
    return text, "phone"
