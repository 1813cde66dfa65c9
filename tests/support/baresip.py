"""baresip (1.0.0, Debian ``baresip-core``) as a desk phone: it answers automatically, plays
a tone, records what it hears and what it sends, and can dial and hang up on command.

Facts about running it here (see also /work/shared/peers.md):
- Headless config: ``audio_player aubridge,sink`` (silent and idle; ``alsa,null`` burns a
  core), ``audio_source aufile,<WAV>`` (S16LE mono at exactly the codec's rate, 16 kHz for
  G.722: aufile does not resample, and with a WAV of another rate the source fails to start
  and baresip never answers), ``net_interface 127.0.0.1`` (not ``lo``),
  ``dns_server 127.0.0.1:53``. Without a config file baresip writes a template that loads
  alsa and stdio, which fail here.
- ``sndfile`` with ``snd_path`` records ``dump-<time>-dec.wav`` (heard) and
  ``dump-<time>-enc.wav`` (sent), at the codec's rate, finalized when the call ends. Names
  have a 1 s resolution: each phone has its own directory.
- When the source WAV ends, baresip hangs up: ``tone_seconds`` bounds every call.
- ``sip_listen 127.0.0.1:P`` binds UDP and TCP P and TCP P+1. The control socket
  (``ctrl_tcp``, netstring-framed JSON ``{"command": ..., "params": ..., "token": ...}``)
  is on P+2; its commands (``dial``, ``hangup``, ...) come from the ``menu`` module, which
  also prints a call-status line every second. RTP uses ``rtp_ports`` P+4..P+13.
- The SIP socket is bound before the modules load, ``account.so`` among them: readiness is
  the socket bound *and* "baresip is ready." printed (after "Populated 1 account").
- The request-URI's user must be the account's user, else 404.
- ``audio_codecs`` in the account line takes name/rate/channels: ``G722`` alone means
  G722/8000/1, "not found", and the account then allows every loaded codec.
- stdout is the readable log, not block-buffered: "Call established", "... terminated
  (duration: N secs)"; with ``sip_trace`` (``-s``) every SIP message too (in ANSI colours).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .audio import write_tone_wav
from .peer_process import PeerProcess, PeerStartError, tail
from .ports import free_port_block

__all__ = ["CODEC_RATES", "BaresipError", "BaresipPhone", "Recording"]

HOST = "127.0.0.1"
CODEC_RATES = {"PCMU": 8000, "PCMA": 8000, "G722": 16000}
_CODEC_MODULES = {"PCMU": "g711.so", "PCMA": "g711.so", "G722": "g722.so"}
_READY = "baresip is ready."
_ESTABLISHED = re.compile(r"Call established")
_TERMINATED = re.compile(r"terminated \(duration")
_ENCODER = re.compile(r"audio: Set audio encoder: (\S+) (\d+)Hz")


class BaresipError(RuntimeError):
    """baresip did not do what was asked (a command failed, a call did not happen)."""


@dataclass(frozen=True)
class Recording:
    """The two files ``sndfile`` wrote for one call."""

    decoded: Path
    """What the phone heard (received and decoded)."""
    encoded: Path
    """What the phone sent (before encoding)."""


class BaresipPhone:
    """One baresip instance with its own config directory, ports and recordings.

    ``start()`` returns once it can take calls at ``uri``. Calls are answered at once
    (``answermode=auto``); while in a call it sends a ``tone_hz`` tone for ``tone_seconds``
    and then hangs up.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        user: str = "operator",
        codecs: Sequence[str] = ("PCMU", "PCMA"),
        tone_hz: float = 440.0,
        tone_seconds: float = 10.0,
        amplitude: float = 0.5,
        auth: tuple[str, str] | None = None,
        sip_trace: bool = True,
        lifetime: float = 120.0,
        extra_config: Sequence[str] = (),
        answermode: str = "auto",
        port: int = 0,
    ) -> None:
        """``codecs`` is the account's ``audio_codecs`` list, in preference order; the tone
        WAV is at the first codec's rate. ``auth`` = (user, password) for challenges to the
        calls it makes. ``lifetime`` is baresip's ``-t``, a safety net. ``port``: its SIP
        port (a block of 14 from ``free_port_block(14, align=2)``), for a phone that appears
        where a configuration already points; 0 picks one."""
        unknown = [codec for codec in codecs if codec not in CODEC_RATES]
        if unknown or not codecs:
            raise ValueError(f"codecs must be some of {sorted(CODEC_RATES)}, got {codecs}")
        if len({CODEC_RATES[codec] for codec in codecs}) > 1:
            # aufile plays the WAV only if its rate is the codec's: with a codec of another
            # rate negotiated, baresip would not even answer.
            raise ValueError(f"codecs of one clock rate only (aufile cannot resample): {codecs}")
        self.workdir = workdir
        self.user = user
        self.codecs = tuple(codecs)
        self.tone_hz = tone_hz
        self.tone_seconds = tone_seconds
        self.amplitude = amplitude
        self.auth = auth
        self.sip_trace = sip_trace
        self.lifetime = lifetime
        self.extra_config = list(extra_config)
        self.answermode = answermode  # "manual": it rings until `answer()` is called
        self.port = 0
        self._wanted_port = port
        self._process: PeerProcess | None = None

    # --- addresses ---------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    @property
    def uri(self) -> str:
        """The URI to call it at."""
        return f"sip:{self.user}@{HOST}:{self.port}"

    @property
    def control_port(self) -> int:
        return self.port + 2

    @property
    def rtp_ports(self) -> range:
        return range(self.port + 4, self.port + 14)

    @property
    def rate(self) -> int:
        """Sample rate of the tone it plays (the first codec's)."""
        return CODEC_RATES[self.codecs[0]]

    @property
    def recordings_dir(self) -> Path:
        return self.workdir / "recordings"

    @property
    def tone_path(self) -> Path:
        return self.workdir / "tone.wav"

    # --- life cycle ----------------------------------------------------------------------

    def _config(self) -> str:
        modules = sorted({_CODEC_MODULES[codec] for codec in self.codecs})
        lines = [
            "poll_method epoll",
            f"sip_listen {HOST}:{self.port}",
            f"net_interface {HOST}",
            f"dns_server {HOST}:53",
            "call_local_timeout 120",
            "call_max_calls 4",
            "audio_player aubridge,sink",
            f"audio_source aufile,{self.tone_path}",
            "audio_alert aubridge,sink",
            f"rtp_ports {self.rtp_ports.start}-{self.rtp_ports.stop - 1}",
            "module_path /usr/lib/baresip/modules",
            *(f"module {module}" for module in modules),
            "module aufile.so",
            "module aubridge.so",
            "module sndfile.so",
            f"snd_path {self.recordings_dir}",
            "module_app account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen {HOST}:{self.control_port}",
            *self.extra_config,
        ]
        return "\n".join(lines) + "\n"

    def _account(self) -> str:
        # Name/rate/channels: a bare "G722" would mean G722/8000/1, which does not exist.
        codecs = ",".join(f"{codec}/{CODEC_RATES[codec]}/1" for codec in self.codecs)
        account = (
            f"<sip:{self.user}@{HOST}>;regint=0;answermode={self.answermode};audio_codecs={codecs}"
        )
        if self.auth is not None:
            account += f";auth_user={self.auth[0]};auth_pass={self.auth[1]}"
        return account + "\n"

    def start(self, *, timeout: float = 5.0, attempts: int = 3) -> BaresipPhone:
        """Write the config, start baresip, return when it takes calls."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.recordings_dir.mkdir(exist_ok=True)
        write_tone_wav(self.tone_path, self.tone_hz, self.tone_seconds, self.rate, self.amplitude)
        for attempt in range(attempts):
            self.port = self._wanted_port or free_port_block(14, align=2)
            (self.workdir / "config").write_text(self._config())
            (self.workdir / "accounts").write_text(self._account())
            argv = ["baresip", "-f", str(self.workdir), "-t", str(round(self.lifetime))]
            if self.sip_trace:
                argv.append("-s")
            self._process = PeerProcess("baresip", argv, self.workdir)
            self._process.start()
            try:
                self._process.wait_until_bound(self.port, timeout)
                self._process.wait_until_bound(self.control_port, timeout, tcp=True)
                self._wait_for_output(_READY, timeout)
                return self
            except PeerStartError:
                self._process.stop()
                # A port taken between our check and baresip's bind: try other ports.
                if "Address already in use" not in self._process.output() or (
                    attempt == attempts - 1
                ):
                    raise
        raise AssertionError("unreachable")

    def __enter__(self) -> BaresipPhone:
        return self.start() if self._process is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop it (SIGTERM lets it finish its recordings), kill it if it hangs."""
        if self._process is not None:
            self._process.stop(grace=3.0)

    def _require(self) -> PeerProcess:
        if self._process is None:
            raise RuntimeError("baresip was not started")
        return self._process

    # --- output --------------------------------------------------------------------------

    def output(self) -> str:
        """Everything it printed so far (its log, with SIP messages if ``sip_trace``)."""
        return tail(self._require().stdout_path, limit=10**9)

    def report(self) -> str:
        """Command line and output tails, for failure messages."""
        return f"phone in {self.workdir}\n" + self._require().output(limit=8000)

    def _wait_for_output(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        process = self._require()
        while text not in self.output():
            if process.returncode is not None:
                raise PeerStartError(
                    f"baresip exited with {process.returncode} before printing {text!r}\n"
                    + self.report()
                )
            if time.monotonic() > deadline:
                raise PeerStartError(
                    f"baresip did not print {text!r} in {timeout} s\n" + self.report()
                )
            time.sleep(0.01)

    def calls_established(self) -> int:
        """How many calls were established so far."""
        return len(_ESTABLISHED.findall(self.output()))

    def encoders(self) -> list[tuple[str, int]]:
        """(codec, clock rate) of each audio encoder set so far: what was negotiated."""
        return [(name, int(rate)) for name, rate in _ENCODER.findall(self.output())]

    def calls_ended(self) -> int:
        """How many calls were established and then ended so far."""
        return len(_TERMINATED.findall(self.output()))

    def wait_for_calls_ended(self, count: int = 1, timeout: float = 15.0) -> None:
        """Block until ``count`` calls have ended (their recordings are then complete).

        Blocks the thread: from a coroutine whose loop runs the code under test, use
        ``wait_for_calls_ended_async``.
        """
        deadline = time.monotonic() + timeout
        while self.calls_ended() < count:
            if time.monotonic() > deadline:
                raise BaresipError(
                    f"{self.calls_ended()} of {count} calls ended in {timeout} s\n" + self.report()
                )
            time.sleep(0.02)

    async def wait_for_calls_ended_async(self, count: int = 1, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.calls_ended() < count:
            if time.monotonic() > deadline:
                raise BaresipError(
                    f"{self.calls_ended()} of {count} calls ended in {timeout} s\n" + self.report()
                )
            await asyncio.sleep(0.02)

    def recordings(self) -> list[Recording]:
        """The recordings of all calls so far, oldest first (complete once a call ended)."""
        decoded = sorted(self.recordings_dir.glob("dump-*-dec.wav"))
        pairs = []
        for path in decoded:
            encoded = path.with_name(path.name.removesuffix("-dec.wav") + "-enc.wav")
            pairs.append(Recording(decoded=path, encoded=encoded))
        return pairs

    def last_recording(self) -> Recording:
        recordings = self.recordings()
        if not recordings:
            raise BaresipError(f"no recording in {self.recordings_dir}\n" + self.report())
        return recordings[-1]

    # --- control -------------------------------------------------------------------------

    def command(self, command: str, params: str | None = None, timeout: float = 3.0) -> str:
        """Run a baresip command through ``ctrl_tcp``; its response data.

        Raises ``BaresipError`` when baresip answers ``ok: false``.
        """
        request: dict[str, str] = {"command": command, "token": "harness"}
        if params is not None:
            request["params"] = params
        payload = json.dumps(request).encode()
        with socket.create_connection((HOST, self.control_port), timeout=timeout) as control:
            control.sendall(b"%d:%s," % (len(payload), payload))
            buffer = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for message in _netstrings(buffer):
                    if message.get("response"):
                        if not message.get("ok"):
                            raise BaresipError(f"command {command} {params or ''}: {message}")
                        return str(message.get("data", ""))
                chunk = control.recv(65536)
                if not chunk:
                    break
                buffer += chunk
        raise BaresipError(f"no response to command {command} in {timeout} s")

    def answer(self) -> None:
        """Answer the ringing call (with ``answermode="manual"``)."""
        self.command("accept")

    def dial(self, uri: str) -> None:
        """Call ``uri`` (the call is then placed asynchronously)."""
        self.command("dial", uri)

    def hangup(self) -> None:
        """Hang up the current call (a CANCEL if it is still ringing, else a BYE)."""
        self.command("hangup")


def _netstrings(buffer: bytes) -> list[dict[str, object]]:
    """The complete JSON netstrings (``<length>:<json>,``) at the start of ``buffer``."""
    messages = []
    position = 0
    while True:
        colon = buffer.find(b":", position)
        if colon < 0 or not buffer[position:colon].isdigit():
            return messages
        end = colon + 1 + int(buffer[position:colon])
        if end >= len(buffer):
            return messages
        try:
            messages.append(json.loads(buffer[colon + 1 : end]))
        except ValueError:
            return messages
        position = end + 1
