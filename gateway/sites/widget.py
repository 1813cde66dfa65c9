"""A site's widget settings (`[sites.widget]`): what the visitor's call button looks like and
whether it asks for the visitor's name first.

They come from the gateway's configuration only, never from the embedding page, and are
public: the widget reads them from `GET /api/widget/<site>` (`public_settings`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

LANGUAGES = ("en", "fr", "de", "es", "it", "nl", "pt", "pl")  # web/widget/lang/<code>.js
POSITIONS = ("bottom-right", "bottom-left", "inline")
VISITOR_DETAILS = ("off", "optional", "required")
MAX_LABEL_CHARS = 40
# WCAG 2.1 AA for normal text (success criterion 1.4.3).
MIN_CONTRAST = 4.5

_HEX_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_KEYS = ("label", "colour", "text_colour", "position", "language", "visitor_details")


@dataclass(frozen=True, slots=True)
class WidgetSettings:
    """How a site's widget looks and what it asks; the defaults pass WCAG AA contrast."""

    label: str = ""  # the button's words; empty: "Call us" in the visitor's language
    colour: str = "#0a7d32"  # background of the call button (lower-case #rrggbb)
    text_colour: str = "#ffffff"  # text on that background
    position: str = "bottom-right"  # bottom-right | bottom-left (floating) | inline
    language: str = "auto"  # auto (the browser's, else English) | one of LANGUAGES
    visitor_details: str = "off"  # off | optional | required (name and reason before a call)

    @property
    def asks_details(self) -> bool:
        return self.visitor_details != "off"

    def public_settings(self) -> dict[str, Any]:
        """What the widget needs, as sent to any page (nothing here is secret)."""
        return {
            "label": self.label,
            "colour": self.colour,
            "text_colour": self.text_colour,
            "position": self.position,
            "language": self.language,
            "visitor_details": self.visitor_details,
        }


def parse_widget(value: object) -> WidgetSettings:
    """`{label = "Call us", colour = "#0a7d32", text_colour = "#ffffff", position =
    "bottom-right", language = "auto", visitor_details = "off"}`, every key optional.

    Raises ValueError naming the part that is wrong, including colour pairs whose contrast
    is below WCAG AA (4.5:1), so that no site can configure an unreadable button.
    """
    if not isinstance(value, dict):
        raise ValueError("must be a table of widget settings")
    unknown = sorted(set(value) - set(_KEYS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (known: {', '.join(_KEYS)})")
    defaults = WidgetSettings()
    label = _label(value.get("label", defaults.label))
    colour = _colour(value.get("colour", defaults.colour), "colour")
    text_colour = _colour(value.get("text_colour", defaults.text_colour), "text_colour")
    ratio = contrast_ratio(colour, text_colour)
    if ratio < MIN_CONTRAST:
        raise ValueError(
            f"text_colour {text_colour} on colour {colour} has a contrast of {ratio:.2f}:1; "
            f"at least {MIN_CONTRAST}:1 is needed to be readable (WCAG AA)"
        )
    return WidgetSettings(
        label=label,
        colour=colour,
        text_colour=text_colour,
        position=_one_of(value.get("position", defaults.position), "position", POSITIONS),
        language=_one_of(
            value.get("language", defaults.language), "language", ("auto", *LANGUAGES)
        ),
        visitor_details=_one_of(
            value.get("visitor_details", defaults.visitor_details),
            "visitor_details",
            VISITOR_DETAILS,
        ),
    )


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2.1 contrast ratio of two `#rrggbb` colours, 1 to 21."""
    lighter, darker = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _luminance(colour: str) -> float:
    """WCAG 2.1 relative luminance of `#rrggbb`."""
    channels = []
    for i in (1, 3, 5):
        c = int(colour[i : i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    red, green, blue = channels
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def _label(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("label must be a string")
    if any(c < " " or "\x7f" <= c <= "\x9f" for c in value):
        raise ValueError("label contains control characters")
    text = " ".join(value.split())
    if len(text) > MAX_LABEL_CHARS:
        raise ValueError(f"label is longer than {MAX_LABEL_CHARS} characters")
    return text


def _colour(value: object, key: str) -> str:
    if not isinstance(value, str) or not _HEX_COLOUR.fullmatch(value):
        raise ValueError(f"{key} must be a colour written #rrggbb or #rgb, not {value!r}")
    text = value.lower()
    if len(text) == 4:
        text = "#" + "".join(c * 2 for c in text[1:])
    return text


def _one_of(value: object, key: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}, not {value!r}")
    assert isinstance(value, str)
    return value
