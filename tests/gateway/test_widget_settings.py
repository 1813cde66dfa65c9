"""A site's widget settings: defaults, each rule in words, WCAG contrast, the config path."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.config import ConfigError, parse_config
from gateway.sites.widget import WidgetSettings, contrast_ratio, parse_widget

SITE = """
[[sites]]
id = "shop"
destination = "sip:desk@pbx.example.com"
"""


def test_an_empty_table_gives_the_defaults() -> None:
    settings = parse_widget({})
    assert settings == WidgetSettings()
    assert settings.public_settings() == {
        "label": "",
        "colour": "#0a7d32",
        "text_colour": "#ffffff",
        "dark_colour": "",
        "dark_text_colour": "",
        "logo": "",
        "promise": "",
        "font": "",
        "radius": 14,
        "position": "bottom-right",
        "language": "auto",
        "visitor_details": "off",
        "precheck": False,
    }
    assert not settings.asks_details


def test_every_key_is_read_and_colours_are_normalized() -> None:
    settings = parse_widget(
        {
            "label": "  Talk   to us ",
            "colour": "#1A5FB4",
            "text_colour": "#FFF",
            "position": "inline",
            "language": "fr",
            "visitor_details": "required",
        }
    )
    assert settings == WidgetSettings(
        label="Talk to us",
        colour="#1a5fb4",
        text_colour="#ffffff",
        position="inline",
        language="fr",
        visitor_details="required",
    )
    assert settings.asks_details


def test_the_look_keys_are_read() -> None:
    settings = parse_widget(
        {
            "logo": "https://shop.example/logo.png",
            "promise": "  We answer in   about 30 seconds ",
            "font": "Inter, 'Helvetica Neue', sans-serif",
            "radius": 0,
            "dark_colour": "#8AB4F8",
            "dark_text_colour": "#202124",
        }
    )
    shown = settings.public_settings()
    assert shown["logo"] == "https://shop.example/logo.png"
    assert shown["promise"] == "We answer in about 30 seconds"
    assert shown["font"] == "Inter, 'Helvetica Neue', sans-serif"
    assert (shown["radius"], shown["dark_colour"], shown["dark_text_colour"]) == (
        0,
        "#8ab4f8",
        "#202124",
    )


def test_every_problem_of_the_table_is_reported_at_once() -> None:
    with pytest.raises(ValueError) as caught:
        parse_widget({"colur": "#000", "radius": -1, "language": "sv", "logo": "ftp://x"})
    lines = str(caught.value).splitlines()
    assert len(lines) == 4, lines
    assert "did you mean 'colour'?" in lines[0]


def test_contrast_ratio_matches_wcag() -> None:
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#ffffff", "#ffffff") == pytest.approx(1.0)
    # WebAIM's checker: #767676 on white is the lightest grey that passes AA (4.54:1).
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
    assert contrast_ratio("#777777", "#ffffff") < 4.5
    # The default pair passes.
    assert contrast_ratio("#0a7d32", "#ffffff") >= 4.5


@pytest.mark.parametrize(
    ("table", "reason"),
    [
        ([], "must be a table of widget settings"),
        ({"colour": "#fff", "text_colour": "#ffff00"}, "contrast of 1.07:1"),
        ({"colour": "#777777"}, "at least 4.5:1 is needed"),
        ({"color": "#000"}, "color: unknown key; did you mean 'colour'?"),
        ({"dark_colour": "#ffffff"}, "text_colour #ffffff on dark_colour #ffffff"),
        ({"dark_colour": "#202124", "dark_text_colour": "#303134"}, "contrast of 1.24:1"),
        ({"logo": "http://example.com/a.png"}, "logo must be an https:// URL"),
        ({"logo": "https://example.com/a b.png"}, "logo must not contain spaces"),
        ({"promise": "x" * 81}, "promise is longer than 80 characters"),
        ({"promise": "a\nb"}, "promise contains control characters"),
        ({"font": "Inter; color: red"}, "font must be CSS font families"),
        ({"radius": 40}, "radius must be a whole number of px from 0 to 32"),
        ({"radius": True}, "radius must be a whole number"),
        ({"colour": "green"}, "colour must be a colour written #rrggbb or #rgb"),
        ({"text_colour": "#12345"}, "text_colour must be a colour"),
        ({"colour": 7}, "colour must be a colour"),
        ({"position": "top"}, "position must be one of bottom-right, bottom-left, inline"),
        ({"language": "sv"}, "language must be one of auto, en, fr, de, es, it, nl, pt, pl"),
        ({"visitor_details": True}, "visitor_details must be one of off, optional, required"),
        ({"label": 3}, "label must be a string"),
        ({"precheck": "yes"}, "precheck must be true or false"),
        ({"label": "Call\nus"}, "label contains control characters"),
        ({"label": "x" * 41}, "longer than 40 characters"),
    ],
)
def test_bad_settings_say_what_is_wrong(table: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_widget(table)


def test_the_config_reads_a_sites_widget_table() -> None:
    config = parse_config(
        SITE + '[sites.widget]\nlabel = "Hello"\nposition = "bottom-left"\n'
        'visitor_details = "optional"\n'
    )
    (site,) = config.sites
    assert site.widget.label == "Hello"
    assert site.widget.position == "bottom-left"
    # The widget's settings are public: they travel with the site's public info.
    assert site.public_info.widget == site.widget


def test_a_bad_widget_table_is_a_config_problem_of_its_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(SITE + '[sites.widget]\ncolour = "#eeeeee"\n')
    (problem,) = caught.value.problems
    assert problem.startswith('sites["shop"].widget: text_colour #ffffff on colour #eeeeee')


def test_the_public_settings_say_whether_the_site_is_open_and_takes_callbacks() -> None:
    site = parse_config(
        SITE
        + 'fallback = "message"\n'
        + 'hours = {timezone = "Europe/Paris", mon = "09:00-12:00, 14:00-18:00"}\n'
        + 'callback = {dial = "sip:{number}@trunk.example.com", countries = ["FR", "BE"]}\n'
    ).sites[0]
    monday_10_utc = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)  # 11:00 in Paris: open
    shown = site.public_info.public_settings(monday_10_utc)
    assert shown["open"] is True and shown["next_opening"] is None
    assert shown["fallback"] == []  # "message": nothing but the reason
    assert shown["voicemail"] is None and shown["chat"] is None and shown["messages"] is False
    assert shown["callback"] == {
        "countries": ["FR", "BE"],
        "calling_codes": {"FR": 33, "BE": 32},
        "max_days_ahead": 14,
    }
    lunch = site.public_info.public_settings(monday_10_utc + dt.timedelta(hours=2))
    assert lunch["open"] is False
    assert lunch["next_opening"] == "2026-03-02T14:00:00+01:00"  # the site's own offset
    evening = site.public_info.public_settings(monday_10_utc + dt.timedelta(hours=8))
    assert evening["next_opening"] == "2026-03-09T09:00:00+01:00"
    for private in ("trunk.example.com", "pbx.example.com", "sip:"):
        assert private not in repr(shown)
    plain = parse_config(SITE).sites[0].public_info.public_settings(monday_10_utc)
    assert plain == {
        **WidgetSettings().public_settings(),
        "open": True,
        "next_opening": None,
        "hours": None,
        "fallback": [],  # a callback, but the site takes none
        "callback": None,
        "voicemail": None,
        "chat": None,
        "messages": False,
    }
    offers = parse_config(
        SITE
        + 'fallback = ["voicemail", "callback", "text"]\nvoicemail_max_seconds = 90\n'
        + "chat = true\nchat_timeout = 30\n"
        + 'callback = {dial = "sip:{number}@trunk.example.com", countries = ["FR"]}\n'
    ).sites[0]
    shown = offers.public_info.public_settings(monday_10_utc)
    assert shown["fallback"] == ["voicemail", "callback", "text"]  # in the site's order
    assert shown["voicemail"] == {"max_seconds": 90.0}
    assert shown["chat"] == {"reply_within": 30.0} and shown["messages"] is True


def test_the_public_settings_list_the_weekly_opening_hours() -> None:
    site = parse_config(
        SITE
        + "[sites.hours]\n"
        + 'timezone = "Europe/London"\n'
        + 'mon = "09:00-12:30, 13:30-17:00"\n'
        + 'tue = "09:00-17:00"\n'
        + 'sat = "20:00-24:00"\n'
        + 'closed = ["2026-12-25"]\n'
    ).sites[0]
    shown = site.public_info.public_settings(dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC))
    assert shown["hours"] == {
        "timezone": "Europe/London",
        "week": {
            "mon": [["09:00", "12:30"], ["13:30", "17:00"]],  # a split shift
            "tue": [["09:00", "17:00"]],
            "wed": [],  # closed that day
            "thu": [],
            "fri": [],
            "sat": [["20:00", "24:00"]],  # to midnight: 24:00, not 23:59
            "sun": [],
        },
    }
    assert "2026-12-25" not in repr(shown)  # closed dates: the next opening covers them
    always = parse_config(
        SITE + 'hours = {timezone = "Europe/London", always_open = true}\n'
    ).sites[0]
    assert always.public_info.public_settings(dt.datetime.now(dt.UTC))["hours"] is None
