"""A site with several operators: parallel, sequential and round-robin ringing."""

from __future__ import annotations

import asyncio

from tests.support.audio import assert_tone
from tests.support.browser import capture_remote_audio
from tests.support.ports import free_udp_port

from .conftest import open_call_page, wait_for_status
from .test_browser_call import assert_all_released


def destinations(*uris: str) -> str:
    return "destinations = [" + ", ".join(f'"{u}"' for u in uris) + "]"


async def test_parallel_first_to_answer_gets_the_call_the_other_sees_cancel(
    gateway_factory, baresip_factory, page
):
    alice = baresip_factory(
        user="alice", codecs=("PCMU",), tone_hz=440, tone_seconds=20, answermode="manual"
    )
    bob = baresip_factory(
        user="bob", codecs=("PCMU",), tone_hz=700, tone_seconds=20, answermode="manual"
    )
    gateway = await gateway_factory(
        destination=None, site_extra=destinations(alice.uri, bob.uri) + '\nring = "parallel"'
    )
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()
    await wait_for_status(page, "Ringing")
    for _ in range(50):  # both phones ring
        if "Incoming call" in alice.output() and "Incoming call" in bob.output():
            break
        await asyncio.sleep(0.1)
    bob.answer()
    await wait_for_status(page, "In call")
    samples, rate = await capture_remote_audio(page, 1.5)
    assert_tone(samples, rate, 700, skip_seconds=0.2, what="bob's phone")
    for _ in range(50):
        if "CANCEL sip:alice@" in alice.output():
            break
        await asyncio.sleep(0.1)
    assert "CANCEL sip:alice@" in alice.output()
    assert alice.calls_established() == 0
    await page.get_by_role("button", name="Hang up").click()
    await assert_all_released(gateway)


async def test_sequential_moves_on_after_no_answer(
    gateway_factory, sipp_factory, baresip_factory, page
):
    first = sipp_factory("uas_no_answer")  # rings, never answers: must get CANCEL
    second = baresip_factory(codecs=("PCMU",), tone_hz=700, tone_seconds=20)
    gateway = await gateway_factory(
        destination=None,
        ring_timeout=2,
        site_extra=destinations(first.uri, second.uri) + '\nring = "sequential"',
    )
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()
    await wait_for_status(page, "In call", timeout=10)
    await first.assert_passed_async()
    samples, rate = await capture_remote_audio(page, 1.0)
    assert_tone(samples, rate, 700, skip_seconds=0.2, what="the second operator")
    await page.get_by_role("button", name="Hang up").click()
    await assert_all_released(gateway)


async def test_sequential_moves_on_after_busy_and_round_robin_rotates(
    gateway_factory, sipp_factory, baresip_factory, page
):
    busy = sipp_factory("uas_busy")
    free = baresip_factory(codecs=("PCMU",), tone_seconds=20)
    gateway = await gateway_factory(
        destination=None, site_extra=destinations(busy.uri, free.uri) + '\nring = "round-robin"'
    )
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()  # starts at busy, moves to free
    await wait_for_status(page, "In call")
    await busy.assert_passed_async()
    await page.get_by_role("button", name="Hang up").click()
    await assert_all_released(gateway)
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()  # the next call starts at free
    await wait_for_status(page, "In call")
    for _ in range(50):  # baresip logs the call a moment after the page shows it
        if free.calls_established() == 2:
            break
        await asyncio.sleep(0.1)
    assert free.calls_established() == 2
    await page.get_by_role("button", name="Hang up").click()
    await assert_all_released(gateway)


class SilentHost(asyncio.DatagramProtocol):
    """A host that takes SIP and answers nothing (a phone that hangs): what it got is kept."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append(data)

    def methods(self) -> list[bytes]:
        return [data.split(b" ", 1)[0] for data in self.received]


async def test_a_destination_that_is_down_is_not_rung_and_the_next_one_answers(
    gateway_factory, baresip_factory, page
):
    port = free_udp_port()
    transport, silent = await asyncio.get_running_loop().create_datagram_endpoint(
        SilentHost, local_addr=("127.0.0.1", port)
    )
    hung = f"sip:alice@127.0.0.1:{port}"
    bob = baresip_factory(user="bob", codecs=("PCMU",), tone_hz=700, tone_seconds=20)
    try:
        gateway = await gateway_factory(
            destination=None,
            health_interval=0.5,
            site_extra=destinations(hung, bob.uri) + '\nring = "sequential"',
        )
        health = gateway.calls.health
        assert health is not None
        for _ in range(200):  # two unanswered OPTIONS, each given up after its deadline
            if health.is_down("shop", hung):
                break
            await asyncio.sleep(0.1)
        assert health.is_down("shop", hung) and not health.is_down("shop", bob.uri)
        await open_call_page(page, gateway)
        await page.get_by_role("button", name="Call").click()
        await wait_for_status(page, "In call")  # bob's, though alice comes first in the list
        samples, rate = await capture_remote_audio(page, 1.0)
        assert_tone(samples, rate, 700, skip_seconds=0.2, what="bob's phone")
        await page.get_by_role("button", name="Hang up").click()
        await assert_all_released(gateway)
        assert gateway.history is not None
        await gateway.history.flush()
        (record,) = await gateway.database.records.find(site="shop")
        assert record.outcome == "answered" and record.destination == bob.uri
        assert set(silent.methods()) == {b"OPTIONS"}  # health checks only: never an INVITE
    finally:
        transport.close()
