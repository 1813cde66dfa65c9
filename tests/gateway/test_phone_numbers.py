"""Visitors' numbers: E.164 out, or a refusal a visitor can read."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import PhoneNumberType

from gateway.callbacks.numbers import NumberRefused, callback_number


def example(region: str, kind: PhoneNumberType) -> str:
    number = phonenumbers.example_number_for_type(region, kind)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


@pytest.mark.parametrize("kind", [PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE])
def test_fixed_and_mobile_numbers_become_e164(kind):
    typed = example("GB", kind)
    e164 = callback_number(typed, ["GB"])
    assert e164.startswith("+44") and e164[1:].isdigit()
    national = phonenumbers.format_number(
        phonenumbers.parse(typed), phonenumbers.PhoneNumberFormat.NATIONAL
    )
    assert callback_number(national, ["GB", "US"]) == e164  # first country is the default


@pytest.mark.parametrize(
    ("region", "kind", "words"),
    [
        ("GB", PhoneNumberType.PREMIUM_RATE, "premium-rate"),
        ("FR", PhoneNumberType.SHARED_COST, "shared-cost"),
        ("GB", PhoneNumberType.PERSONAL_NUMBER, "personal"),
        ("GB", PhoneNumberType.VOIP, "voip"),
        ("GB", PhoneNumberType.UAN, "uan"),
        ("GB", PhoneNumberType.PAGER, "pager"),
    ],
)
def test_fraud_prone_types_are_refused(region, kind, words):
    with pytest.raises(NumberRefused) as err:
        callback_number(example(region, kind), [region])
    assert err.value.code == "number_type_refused" and words in err.value.message.lower()


def test_other_countries_are_refused():
    with pytest.raises(NumberRefused) as err:
        callback_number(example("FR", PhoneNumberType.MOBILE), ["GB", "US"])
    assert err.value.code == "country_not_allowed" and "GB, US" in err.value.message


@pytest.mark.parametrize("text", ["", "   ", "hello", "+44 12", "+44" + "1" * 40, "0\x001"])
def test_garbage_is_refused(text):
    with pytest.raises(NumberRefused):
        callback_number(text, ["GB"])


@given(st.text(max_size=60))
def test_any_text_gives_e164_or_a_refusal(text):
    try:
        result = callback_number(text, ["GB", "US", "DE"])
    except NumberRefused:
        return
    assert result.startswith("+") and result[1:].isdigit()
