"""`python -m sip_bridge call URI`: place one call with the gateway's own SIP stack.

For people setting up a trunk or a desk phone: it prints every step (INVITE sent, 100, 180,
183, 200, ACK, BYE), plays and records audio, sends DTMF, and exits 0 only when the call was
answered and ended cleanly; otherwise it prints the SIP status and reason and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sip_bridge import sdp
from sip_bridge.asyncio.call_media import CallMedia
from sip_bridge.asyncio.endpoint import SipCall, SipEndpoint
from sip_bridge.asyncio.player import PcmRecorder, play_wav
from sip_bridge.events import (
    CallAnswered,
    CallEnded,
    EarlyMedia,
    EndReason,
    MessageTrace,
    OfferReceived,
)
from sip_bridge.rtp.wav import read_wav
from sip_bridge.useragent import UserAgentConfig

EXIT_OK = 0
EXIT_CALL_FAILED = 1
CODECS = {"pcmu": "PCMU", "pcma": "PCMA", "g722": "G722"}
CLEAN_ENDINGS = (EndReason.LOCAL_HANGUP, EndReason.REMOTE_HANGUP)


def parse_host_port(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    if not (port.isascii() and port.isdigit()) or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}")
    return host.strip("[]"), int(port)


def parse_port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if (
        not sep
        or not (low.isascii() and low.isdigit())
        or not (high.isascii() and high.isdigit())
        or not 1024 <= int(low) < int(high) < 65536
    ):
        raise argparse.ArgumentTypeError(f"port range must look like 20000-20999, not {text!r}")
    return int(low), int(high)


def parse_credentials(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise argparse.ArgumentTypeError("--auth takes USER:PASSWORD")
    return user, password


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sip_bridge", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    call = commands.add_parser("call", help="place one call and report each step")
    call.add_argument("uri", help="whom to call, e.g. sip:operator@pbx.example.com")
    call.add_argument("--play", type=Path, help="WAV file to send (16-bit PCM, any rate)")
    call.add_argument("--record", type=Path, help="write what the far end sent to this WAV")
    call.add_argument(
        "--duration",
        type=float,
        help="seconds to stay in the call after the answer "
        "(default: the length of --play, else 10)",
    )
    call.add_argument(
        "--auth",
        type=parse_credentials,
        metavar="USER:PASSWORD",
        help="digest credentials for 401/407 challenges",
    )
    call.add_argument("--proxy", metavar="URI", help="outbound proxy, e.g. sip:proxy.example.com")
    call.add_argument(
        "--dtmf",
        default="",
        metavar="DIGITS",
        help="RFC 4733 digits to send once answered (0-9 * # A-D)",
    )
    call.add_argument("--codec", choices=sorted(CODECS), default="pcmu")
    call.add_argument("--transport", choices=("udp", "tcp", "tls"), default="udp")
    call.add_argument(
        "--bind",
        default="127.0.0.1:0",
        metavar="HOST[:PORT]",
        help="local SIP address (default 127.0.0.1, any port)",
    )
    call.add_argument(
        "--public-address",
        metavar="HOST",
        help="address to announce in Via, Contact and SDP (behind NAT)",
    )
    call.add_argument(
        "--rtp-ports", type=parse_port_range, default=(40000, 40999), metavar="LOW-HIGH"
    )
    call.add_argument(
        "--ring-timeout",
        type=float,
        default=30.0,
        help="CANCEL if not answered within this many seconds",
    )
    call.add_argument("--from-user", default="sip_bridge", help="user part of From")
    call.add_argument("--display-name", help="display name in From")
    return parser


class CallReporter:
    """Prints each step of the call in a line a person setting up a trunk can follow."""

    def __init__(self, out=sys.stdout) -> None:
        self.out = out
        self.start = time.monotonic()

    def line(self, text: str) -> None:
        print(f"{time.monotonic() - self.start:7.3f}  {text}", file=self.out, flush=True)

    def trace(self, trace: MessageTrace) -> None:
        arrow = "->" if trace.direction == "sent" else "<-"
        host, port = trace.address
        self.line(f"{arrow} {trace.summary}   [{host}:{port}]")


async def place_call(args: argparse.Namespace, reporter: CallReporter) -> int:
    bind = parse_host_port(args.bind, 0)
    public = args.public_address or bind[0]
    codec = CODECS[args.codec]
    config = UserAgentConfig(
        address=(public, bind[1]),
        transport=args.transport,
        user=args.from_user,
        display_name=args.display_name,
        outbound_proxy=args.proxy,
        trace=True,
        resolve_names=True,  # a domain is located as a PBX or trunk would be (RFC 3263)
    )
    play_seconds = None
    if args.play is not None:
        play_seconds = len(read_wav(args.play, 8000)) / 8000
    duration = args.duration if args.duration is not None else (play_seconds or 10.0)

    endpoint = await SipEndpoint.open(config, bind=bind)
    endpoint.on_trace = reporter.trace
    media = await CallMedia.open(bind[0], args.rtp_ports, announce=public, codecs=[codec])
    recorder: PcmRecorder | None = None
    tasks: list[asyncio.Task] = []
    try:
        call = await endpoint.invite(
            args.uri, sdp=media.offer(), credentials=args.auth, display_name=args.display_name
        )
        answered = await _until_answered(call, media, reporter, args.ring_timeout)
        if answered is None:
            ended = await call.ended
            return _report_end(reporter, ended, answered=False)
        n = media.negotiated
        assert n is not None  # _until_answered accepted the answer
        reporter.line(
            f"   media: {n.codec}, ptime {n.ptime} ms, to "
            f"{n.remote_address[0]}:{n.remote_address[1]}"
            if n.remote_address
            else f"   media: {n.codec}, far end not sending yet"
        )
        if args.record is not None:
            recorder = PcmRecorder(media.rtp)
            tasks.append(asyncio.create_task(recorder.record()))
        if args.play is not None:
            tasks.append(asyncio.create_task(play_wav(media.rtp, args.play)))
        if args.dtmf:
            tasks.append(asyncio.create_task(_send_digits(media, args.dtmf, reporter)))
        ended = await _in_call(call, media, reporter, duration)
        return _report_end(reporter, ended, answered=True)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if recorder is not None:
            recorder.write_wav(args.record)
            reporter.line(
                f"   recorded {len(recorder.samples()) / media.rtp.codec.sample_rate:.1f} s"
                f" to {args.record}"
            )
        await endpoint.close()
        await media.close()


async def _until_answered(
    call: SipCall, media: CallMedia, reporter: CallReporter, ring_timeout: float
) -> CallAnswered | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ring_timeout
    cancelled = False
    while True:
        timeout = None if cancelled else max(0.0, deadline - loop.time())
        try:
            event = await call.next_event(timeout)
        except TimeoutError:
            reporter.line(f"   no answer within {ring_timeout:g} s: cancelling")
            call.hangup()
            cancelled = True
            continue
        if isinstance(event, EarlyMedia):
            if _apply_answer(media, event.sdp, reporter, call):
                reporter.line("   early media")
        elif isinstance(event, CallAnswered):
            if _apply_answer(media, event.sdp, reporter, call):
                return event
        elif isinstance(event, CallEnded):
            return None


def _apply_answer(media: CallMedia, answer: bytes, reporter: CallReporter, call: SipCall) -> bool:
    try:
        media.accept_answer(answer)
    except sdp.SdpError as exc:
        reporter.line(f"   unusable SDP answer: {exc}: hanging up")
        call.hangup()
        return False
    return True


async def _in_call(
    call: SipCall, media: CallMedia, reporter: CallReporter, duration: float
) -> CallEnded:
    media.rtp.on_media_timeout = lambda: reporter.line("   no RTP from the far end")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration
    hung_up = False
    while True:
        timeout = None if hung_up else max(0.0, deadline - loop.time())
        try:
            event = await call.next_event(timeout)
        except TimeoutError:
            call.hangup()
            hung_up = True
            continue
        if isinstance(event, OfferReceived):
            _answer_reoffer(call, media, event, reporter)
        elif isinstance(event, CallEnded):
            return event


def _answer_reoffer(
    call: SipCall, media: CallMedia, event: OfferReceived, reporter: CallReporter
) -> None:
    if event.sdp is None:
        call.answer_offer(media.offer())
        return
    try:
        answer = media.answer(event.sdp)
    except sdp.SdpError as exc:
        reporter.line(f"   refusing re-offer: {exc}")
        call.reject_offer(488)
        return
    call.answer_offer(answer)
    reporter.line("   on hold" if media.on_hold else "   resumed (sendrecv)")


async def _send_digits(media: CallMedia, digits: str, reporter: CallReporter) -> None:
    await asyncio.sleep(0.5)  # let the far end's jitter buffer settle first
    await media.rtp.send_dtmf(digits)
    reporter.line(f"   DTMF sent: {digits}")


def _report_end(reporter: CallReporter, ended: CallEnded, *, answered: bool) -> int:
    words = ended.reason.value.replace("_", " ")
    if answered and ended.reason in CLEAN_ENDINGS:
        reporter.line(f"call ended: {words}")
        return EXIT_OK
    status = f"{ended.status} " if ended.status else ""
    reporter.line(f"call failed: {status}{ended.detail or words} ({words})")
    return EXIT_CALL_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.dtmf and any(d not in "0123456789*#ABCDabcd" for d in args.dtmf):
        print("--dtmf takes digits 0-9 * # A-D", file=sys.stderr)
        return 2
    args.dtmf = args.dtmf.upper()
    for path in (args.play,):
        if path is not None and not path.is_file():
            print(f"--play: no such file {path}", file=sys.stderr)
            return 2
    reporter = CallReporter()
    try:
        return asyncio.run(place_call(args, reporter))
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
