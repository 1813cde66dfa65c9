"""Site routing keys: operators, ring strategy, hours, callbacks; errors name the key."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.config import ConfigError, parse_config


def site(extra: str) -> str:
    return f'[[sites]]\nid = "shop"\n{extra}\n'


def test_several_destinations_with_their_own_credentials():
    config = parse_config(
        site(
            'destinations = ["sip:alice@127.0.0.1:5080", {uri = "sip:bob@127.0.0.1:5082", '
            'username = "bob", password = "s3cret"}]\nring = "parallel"\nring_total = 40'
        )
    )
    shop = config.sites[0]
    assert [str(d.uri) for d in shop.destinations] == [
        "sip:alice@127.0.0.1:5080",
        "sip:bob@127.0.0.1:5082",
    ]
    assert shop.destinations[1].credentials == ("bob", "s3cret")
    assert "s3cret" not in repr(shop)
    assert (shop.ring, shop.ring_total, str(shop.destination)) == (
        "parallel",
        40.0,
        "sip:alice@127.0.0.1:5080",
    )


def test_single_destination_keeps_the_site_credentials():
    shop = parse_config(
        site('destination = "sip:op@pbx.example"\nusername = "u"\npassword = "p"')
    ).sites[0]
    assert shop.destinations[0].credentials == ("u", "p") and shop.ring_total is None


def test_hours_and_callback():
    shop = parse_config(
        site(
            'destination = "sip:op@pbx.example"\n'
            'hours = {timezone = "Europe/London", mon = "09:00-17:00", closed = ["2026-12-25"]}\n'
            'callback = {dial = "sip:{number}@trunk.example", countries = ["gb", "IE"], '
            "attempts = 2}"
        )
    ).sites[0]
    monday_noon = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
    assert shop.hours.is_open(monday_noon) and not shop.hours.is_open(
        monday_noon + dt.timedelta(days=1)
    )
    assert shop.callback.countries == ("GB", "IE") and shop.callback.attempts == 2
    assert shop.callback.dial.format(number="+441632960123") == ("sip:+441632960123@trunk.example")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("", 'sites["shop"].destination: required'),
        ('destination = "sip:a@b"\ndestinations = ["sip:c@d"]', "not both"),
        ('destinations = ["nope"]', 'sites["shop"].destinations[0]: not a SIP URI'),
        ('destinations = [{uri = "sip:a@b", password = "x"}]', "go together"),
        ('destination = "sip:a@b"\nring = "random"', 'sites["shop"].ring: must be one of'),
        (
            'destination = "sip:a@b"\nhours = {timezone = "Nowhere/City", mon = "09:00-10:00"}',
            'sites["shop"].hours.timezone: unknown time zone',
        ),
        ('destination = "sip:a@b"\nhours = {mon = "9-5"}', "sites[\"shop\"].hours.mon: '9-5'"),
        ('destination = "sip:a@b"\nhours = {timezone = "UTC"}', "always_open"),
        ('destination = "sip:a@b"\ncallback = {countries = ["GB"]}', ".callback.dial: required"),
        ('destination = "sip:a@b"\ncallback = {dial = "sip:x@y", countries = ["GB"]}', "{number}"),
        (
            'destination = "sip:a@b"\ncallback = {dial = "sip:{number}@y", countries = ["XX"]}',
            "ISO 3166",
        ),
        (
            'destination = "sip:a@b"\ncallback = {dial = "sip:{number}@y", countries = ["GB"], '
            "attempts = 0}",
            "attempts",
        ),
    ],
)
def test_bad_routing_is_named(extra, message):
    with pytest.raises(ConfigError) as err:
        parse_config(site(extra))
    assert message in str(err.value)


def test_transfer_to_patterns_and_their_default():
    from sip_bridge import parse_sip_uri

    shop = parse_config(
        site(
            'destination = "sip:op@pbx.example.com"\n'
            'transfer_to = ["sip:*@pbx.example.com", "sip:sales-*@10.0.0.5:5070"]'
        )
    ).sites[0]
    allowed = [
        "sip:bob@pbx.example.com",
        "sip:bob@PBX.example.com:5099",  # no port in the pattern: any port of the host
        "sip:sales-2@10.0.0.5:5070",
    ]
    refused = [
        "sip:bob@evil.example.com",
        "sip:bob@pbx.example.com;maddr=198.51.100.9",  # would go to another host
        "sips:bob@pbx.example.com",
        "sip:sales-2@10.0.0.5:5071",
        "sip:support@10.0.0.5:5070",
        "sip:pbx.example.com",  # no user part: the pattern wants one
    ]
    assert [shop.transfer_to.allows(parse_sip_uri(u)) for u in allowed] == [True] * 3
    assert [shop.transfer_to.allows(parse_sip_uri(u)) for u in refused] == [False] * 6
    # Left out: exactly the site's destinations.
    plain = parse_config(site('destination = "sip:op@pbx.example.com:5080"')).sites[0]
    assert plain.transfer_to.allows(parse_sip_uri("sip:op@pbx.example.com:5080"))
    assert not plain.transfer_to.allows(parse_sip_uri("sip:op2@pbx.example.com:5080"))


def test_register_needs_credentials_and_defaults_the_registrar_to_the_destination():
    shop = parse_config(
        site(
            'destination = "sip:+4930123@trunk.example.net:5080"\nusername = "u"\n'
            'password = "p"\nregister = true'
        )
    ).sites[0]
    assert (str(shop.registrar), str(shop.address_of_record)) == (
        "sip:trunk.example.net:5080",
        "sip:u@trunk.example.net",
    )
    assert shop.register_expires == 3600


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ("register = true", 'sites["shop"].register', "needs the site's username and password"),
        ('transfer_to = ["sip:a@*.example.com"]', 'sites["shop"].transfer_to', "only in the user"),
        ('transfer_to = ["http://x"]', 'sites["shop"].transfer_to', "not a SIP URI"),
        ("register_expires = 10", 'sites["shop"].register_expires', "60-86400"),
    ],
)
def test_transfer_and_registration_errors_name_the_key(extra, key, words):
    with pytest.raises(ConfigError) as caught:
        parse_config(site(f'destination = "sip:op@pbx.example"\n{extra}'))
    assert any(line.startswith(key) and words in line for line in caught.value.problems), (
        caught.value.problems
    )
