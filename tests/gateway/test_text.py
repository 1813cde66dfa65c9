"""Text from outside (gateway/text.py): what a phone may show, what a log may hold."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.text import (
    MAX_MESSAGE_LINES,
    MAX_NAME_CHARS,
    clean_message_text,
    clean_visitor_name,
    clean_visitor_text,
    clipped,
    is_invisible,
    loggable,
)


@pytest.mark.parametrize(
    "char",
    [
        "\u061c",  # Arabic letter mark
        "\u200b",  # zero-width space
        "\u200d",  # zero-width joiner
        "\u2060",  # word joiner
        "\ufeff",  # byte order mark
        "\u202e",  # right-to-left override
        "\u2066",  # left-to-right isolate
        "\u00ad",  # soft hyphen
        "\u3164",  # Hangul filler
        "\u2800",  # braille blank
        "\ufe0f",  # variation selector 16
        "\U000e0041",  # tag latin capital A
        "\ue000",  # private use
    ],
)
def test_format_and_invisible_characters_are_dropped_from_what_a_visitor_typed(char):
    assert is_invisible(char)
    assert clean_visitor_text(f"An{char}n{char} Smith", 64) == "Ann Smith"
    assert clean_visitor_text(f"{char} ", 64) == ""


def test_letters_marks_and_spaces_of_every_script_stay():
    for name in ("Zoë Ø'Brien", "李小龙", "محمد", "Dvořák-Šťastná", "नमस्ते", "José 🙂"):
        assert clean_visitor_text(name, 64) == name


@pytest.mark.parametrize(
    "name",
    [
        "+449098765432",
        "+44 909 876 5432",
        "Ann 0909",
        "Ann \uff10\uff19\uff10\uff19",  # fullwidth digits
        "Ann ٠٩٠٩",  # Arabic-Indic digits
        "Ann ⁰⁹⁰⁹",  # superscripts
        "Ann ⓪⑨⓪⑨",  # circled
    ],
)
def test_a_name_that_could_pass_for_a_number_is_refused(name):
    with pytest.raises(ValueError, match="must not look like a phone number"):
        clean_visitor_name(name)


def test_a_name_may_carry_a_few_digits_and_numerals():
    assert clean_visitor_name("Henry 8th") == "Henry 8th"
    assert clean_visitor_name("三郎 Louis XIV") == "三郎 Louis XIV"  # numerals are no digits


@given(st.text(max_size=4 * MAX_NAME_CHARS))
def test_a_cleaned_name_shows_only_visible_characters(value):
    try:
        text = clean_visitor_name(value)
    except ValueError:
        return
    assert not any(is_invisible(c) for c in text)
    assert all(unicodedata.category(c) not in ("Cc", "Cs", "Zl", "Zp") for c in text)
    assert text == text.strip() and "  " not in text
    assert sum(c.isdigit() for c in text) <= 3


def test_loggable_escapes_what_a_terminal_would_run_and_bounds_the_length():
    assert loggable("call from 203.0.113.9") == "call from 203.0.113.9"
    assert loggable("\x1b]0;owned\x07\x1b[31mred\nforged") == (
        "\\x1b]0;owned\\x07\\x1b[31mred\\x0aforged"
    )
    assert loggable("a\u202eb\u200bc\\d") == "a\\u202eb\\u200bc\\\\d"
    assert loggable("Zoë 李") == "Zoë 李"
    assert loggable("x" * 6150, 100) == "x" * 100 + "... (6050 more characters)"
    assert loggable("\x1b" * 6150, 100).endswith("... (6125 more characters)")


@given(st.text(), st.integers(min_value=1, max_value=300))
def test_anything_logged_is_one_bounded_line_of_visible_text(value, limit):
    shown = loggable(value, limit)
    assert shown.isprintable()
    assert not any(is_invisible(c) for c in shown)
    assert len(shown) <= limit + 10 + len(" (... more characters)") + len(str(len(value)))


def test_a_message_keeps_its_lines_emoji_and_right_to_left_text():
    text = "Hello 👋\r\n\r\n\r\nשלום  עולם\tمرحبا\n👩\u200d💻 ❤\ufe0f\n\n"  # noqa: RUF001
    kept = "Hello 👋\n\nשלום עולם مرحبا\n👩\u200d💻 ❤\ufe0f"  # noqa: RUF001
    assert clean_message_text(text) == kept


@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\u200b", "\u061c", "\ufeff", "\ue000"])
def test_a_message_drops_what_could_reorder_or_hide_its_text(char):
    assert clean_message_text(f"pay{char} 42") == "pay 42"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "is empty"),
        (" \n\t\n ", "is empty"),
        ("a\x07b", "contains control characters"),
        ("\ud800", "is not valid Unicode"),
        ("x" * 1001, "is longer than 1000 characters"),
        ("x\n" * (MAX_MESSAGE_LINES + 1), f"has more than {MAX_MESSAGE_LINES} lines"),
    ],
)
def test_a_bad_message_is_refused_in_words(text, reason):
    with pytest.raises(ValueError, match=reason):
        clean_message_text(text)


@given(st.text(max_size=300))
def test_a_cleaned_message_is_visible_lines(value):
    try:
        text = clean_message_text(value)
    except ValueError:
        return
    assert text == text.strip() and "\r" not in text
    for line in text.split("\n"):
        assert line == " ".join(line.split())
        assert not any(unicodedata.category(c) == "Cc" for c in line)


def test_clipped_bounds_a_value_without_escaping_it():
    """The formatter escapes the whole line once (test_log_format.py); call sites bound."""
    assert clipped("\x1bred") == "\x1bred"
    assert clipped("x" * 150, 100) == "x" * 100 + "... (50 more characters)"
    assert clipped(ValueError("bad")) == "bad"
