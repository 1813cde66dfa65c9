"""A site's widget settings (`[sites.widget]`): what the visitor's call button looks like and
whether it asks for the visitor's name first.

They come from the gateway's configuration only, never from the embedding page, and are
public: the widget reads them from `GET /api/widget/<site>` (`public_settings`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from gateway.sites.problems import SettingsProblems, unknown_key_reason

LANGUAGES = ("en", "fr", "de", "es", "it", "nl", "pt", "pl")  # web/widget/lang/<code>.js
POSITIONS = ("bottom-right", "bottom-left", "inline")
VISITOR_DETAILS = ("off", "optional", "required")
MAX_LABEL_CHARS = 40
# WCAG 2.1 AA for normal text (success criterion 1.4.3).
MIN_CONTRAST = 4.5

_HEX_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
# CSS font families, as the widget sets them: names, quotes, commas, spaces, hyphens.
_FONT_FAMILIES = re.compile(r"[A-Za-z0-9 ,'\"-]{1,200}")
MAX_PROMISE_CHARS = 80
MAX_LOGO_CHARS = 500
MAX_RADIUS_PX = 32
_KEYS = (
    "label",
    "colour",
    "text_colour",
    "dark_colour",
    "dark_text_colour",
    "logo",
    "promise",
    "font",
    "radius",
    "position",
    "language",
    "visitor_details",
    "precheck",
)


@dataclass(frozen=True, slots=True)
class WidgetSettings:
    """How a site's widget looks and what it asks; the defaults pass WCAG AA contrast."""

    label: str = ""  # the button's words; empty: "Call us" in the visitor's language
    colour: str = "#0a7d32"  # background of the header band and the call button (#rrggbb)
    text_colour: str = "#ffffff"  # text on that background
    dark_colour: str = ""  # the same in the visitor's dark mode; empty: `colour`
    dark_text_colour: str = ""  # text on it; empty: `text_colour`
    logo: str = ""  # https URL of the site's logo or operator's picture; empty: a phone
    promise: str = ""  # one line under the name, e.g. "We answer in about 30 seconds"
    font: str = ""  # CSS font families; empty: the visitor's system font
    radius: int = 14  # corner radius of the panel, in px (buttons follow it)
    position: str = "bottom-right"  # bottom-right | bottom-left (floating) | inline
    language: str = "auto"  # auto (the browser's, else English) | one of LANGUAGES
    visitor_details: str = "off"  # off | optional | required (name and reason before a call)
    precheck: bool = False  # offer "Test my microphone and connection" before a call

    @property
    def asks_details(self) -> bool:
        return self.visitor_details != "off"

    def public_settings(self) -> dict[str, Any]:
        """What the widget needs, as sent to any page (nothing here is secret)."""
        return {key: getattr(self, key) for key in _KEYS}


def parse_widget(value: object) -> WidgetSettings:
    """`{label = "Call us", colour = "#0a7d32", text_colour = "#ffffff", logo = "https://…",
    promise = "…", font = "Inter, sans-serif", radius = 14, position = "bottom-right",
    language = "auto", visitor_details = "off", dark_colour = "", dark_text_colour = "",
    precheck = false}`,
    every key optional.

    Raises SettingsProblems (a ValueError) listing every part that is wrong, including colour
    pairs whose contrast is below WCAG AA (4.5:1) in the light or the dark scheme, so that
    no site can configure an unreadable header or button.
    """
    if not isinstance(value, dict):
        raise SettingsProblems([("", "must be a table of widget settings")])
    unknown = [(f".{key}", unknown_key_reason(key, _KEYS)) for key in value if key not in _KEYS]
    problems: list[str] = []
    defaults = WidgetSettings()
    parsed: dict[str, Any] = {}

    def check(key: str, parse: Callable[[object], Any]) -> None:
        try:
            parsed[key] = parse(value.get(key, getattr(defaults, key)))
        except ValueError as exc:
            problems.append(str(exc))

    check("label", _label)
    for key in ("colour", "text_colour"):
        check(key, partial(_colour, key=key))
    for key in ("dark_colour", "dark_text_colour"):
        check(key, partial(_colour, key=key, empty=True))
    check("logo", _logo)
    check("promise", _promise)
    check("font", _font)
    check("radius", _radius)
    check("position", partial(_one_of, key="position", allowed=POSITIONS))
    check("language", partial(_one_of, key="language", allowed=("auto", *LANGUAGES)))
    check("visitor_details", partial(_one_of, key="visitor_details", allowed=VISITOR_DETAILS))
    check("precheck", _precheck)
    pairs = [("colour", "text_colour", "", "")]
    if parsed.get("dark_colour") or parsed.get("dark_text_colour"):  # else the same pair
        pairs.append(("dark_colour", "dark_text_colour", "colour", "text_colour"))
    for background_key, text_key, background_default, text_default in pairs:
        background = parsed.get(background_key) or parsed.get(background_default)
        text = parsed.get(text_key) or parsed.get(text_default)
        if not background or not text:
            continue  # already reported
        ratio = contrast_ratio(background, text)
        if ratio < MIN_CONTRAST:
            problems.append(
                f"{text_key} {text} on {background_key} {background} has a contrast of "
                f"{ratio:.2f}:1; at least {MIN_CONTRAST}:1 is needed to be readable (WCAG AA)"
            )
    if unknown or problems:
        raise SettingsProblems([*unknown, *(("", problem) for problem in problems)])
    return WidgetSettings(**parsed)


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


def _colour(value: object, key: str, empty: bool = False) -> str:
    if empty and value == "":
        return ""
    if not isinstance(value, str) or not _HEX_COLOUR.fullmatch(value):
        raise ValueError(f"{key} must be a colour written #rrggbb or #rgb, not {value!r}")
    text = value.lower()
    if len(text) == 4:
        text = "#" + "".join(c * 2 for c in text[1:])
    return text


def _logo(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("logo must be a string")
    if not value:
        return ""
    url = urlsplit(value)
    if url.scheme != "https" or not url.netloc or len(value) > MAX_LOGO_CHARS:
        raise ValueError(f"logo must be an https:// URL of at most {MAX_LOGO_CHARS} characters")
    if any(c <= " " or c in "\"'()\\" or c >= "\x7f" for c in value):
        raise ValueError("logo must not contain spaces, quotes, brackets or non-ASCII")
    return value


def _promise(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("promise must be a string")
    if any(c < " " or "\x7f" <= c <= "\x9f" for c in value):
        raise ValueError("promise contains control characters")
    text = " ".join(value.split())
    if len(text) > MAX_PROMISE_CHARS:
        raise ValueError(f"promise is longer than {MAX_PROMISE_CHARS} characters")
    return text


def _font(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("font must be a string")
    if value and not _FONT_FAMILIES.fullmatch(value):
        raise ValueError(
            "font must be CSS font families (letters, digits, spaces, quotes, commas, "
            f"hyphens; at most 200), not {value[:40]!r}"
        )
    return value


def _radius(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RADIUS_PX:
        raise ValueError(f"radius must be a whole number of px from 0 to {MAX_RADIUS_PX}")
    return value


def _precheck(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"precheck must be true or false, not {value!r}")
    return value


def _one_of(value: object, key: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}, not {value!r}")
    assert isinstance(value, str)
    return value
