"""SIPp (3.6.1, Debian ``sip-tester``) as a scripted peer: a UAS the code under test calls, or a
UAC that sends requests to it.

Facts about running SIPp here (see also /work/shared/peers.md):
- It needs no terminal: ``-nostdin`` and stdout to a file work; the final statistics screen
  lands in stdout when it exits.
- It prints nothing when it is ready; readiness is its SIP socket in ``/proc/net/udp``.
- Exit status: 0 every call passed; 1 a call failed (unexpected message, ``recv`` timeout,
  regexp ``check_it`` failure, retransmission timeout); 97 ``stop_now``; 99 ended without
  processing a call; 255 fatal error (also the ``<error>`` action, and the global
  ``-timeout`` with ``-timeout_error``, always passed here: without it SIPp would exit 0
  with the call still up); 254 could not bind a socket.
- Sockets: SIP on ``-p`` (127.0.0.1), media on ``-mp`` and ``-mp``+2 (``-rtp_echo`` echoes
  on both, to the packet's source), the control port ``-cp`` (bound on ``-ci``).
  ``rtp_stream`` sends from the ``-mp`` socket itself: ``[rtpstream_audio_port]`` is
  ``[media_port]``.
- ``rtp_stream`` files are read relative to the working directory, which is the peer's own
  directory: ``tone.ulaw`` and ``tone.alaw`` are written there before SIPp starts.
- Keywords from ``-key name value`` are ``[name]`` in the scenario; a scenario that uses a
  key refuses to load when it is missing, so the defaults in ``DEFAULT_KEYS`` are always
  passed.

Facts about writing scenarios for SIPp 3.6.1, found while writing tests/sipp:
- Keywords are replaced in message text only: not in attributes (``rtp_stream`` file names,
  ``recv response=``, ``pause milliseconds=``), not in a status line's code, and not nested
  (``[authentication username=[user]]`` does not work: use ``-au``/``-ap``).
- Every variable must be referenced at least twice (an assignment counts), else the
  scenario does not load ("Variable $x is referenced 1 times").
- ``[last_Via:]`` gives all Via values joined on one line; ``[last_X:]`` of a missing
  header gives an empty line, which SIPp drops. ``ereg`` on a header (``search_in="hdr"``)
  sees only its first occurrence, with a leading space; to keep several Via headers, match
  them in the whole message: ``[[:cntrl:]](Via:[[:print:]]*([[:cntrl:]]{2}Via:[[:print:]]*)*)``
  (POSIX classes: ``\r`` and ``\n`` are not escapes there).
- ``verifyauth`` reads only ``Authorization`` (never ``Proxy-Authorization``), knows only MD5,
  recomputes the digest from the header's own uri/nonce/cnonce/nc, and does not check the
  nonce; ``[authentication]`` answers 401 and 407 but computes only MD5 (SHA-256: "must use
  MD5 or AKAv1-MD5"). Hence ``HARNESS_CHECKS`` below.
- A ``recv`` timeout whose ``ontimeout`` label is the scenario's last element counts as a
  failed call: put a ``nop`` after the label.
- After a ``send``, messages already queued are processed before the next element: a
  ``nop`` with an ``<error>`` right after sending a final response may never run. Wait for
  the ACK first.
- ``<error message=...>`` ends SIPp at once with status 255 and the message in the error
  log: the way to fail with a reason.
- ``[branch-N]`` is the branch of the element N places back (index-based): a CANCEL or a
  non-2xx ACK can repeat the INVITE's branch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .audio import write_tone_alaw, write_tone_ulaw
from .digest import check_credentials
from .peer_process import PeerProcess, PeerStartError, tail
from .ports import free_port_block
from .sipp_trace import TracedMessage, parse_trace

__all__ = [
    "AUTH_NONCE",
    "AUTH_OPAQUE",
    "DEFAULT_KEYS",
    "EXIT_MEANINGS",
    "HARNESS_CHECKS",
    "SCENARIO_DIR",
    "Sipp",
    "SippExitCode",
    "check_digest_credentials",
    "scenario_path",
]

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "sipp"
HOST = "127.0.0.1"

EXIT_MEANINGS = {
    0: "all calls passed",
    1: "a call failed",
    97: "stopped by an internal command",
    99: "ended without processing any call",
    254: "could not bind a socket",
    255: "fatal error, <error> action, or global -timeout",
}

# The challenge of the auth scenarios (fixed, so that tests can compute credentials ahead).
AUTH_NONCE = "dcd98b7102dd2f0e8b11d0f600bfb0c093"
AUTH_OPAQUE = "5ccc069c403ebaf9f0171e9517f40e41"

# Keys the scenarios here use; any of them may be overridden per instance.
DEFAULT_KEYS: Mapping[str, str] = {
    "user": "alice",  # digest username the auth scenarios expect
    "pass": "secret",  # and its password
    "realm": "sipp.test",  # the realm they challenge with
    "hold_answer_direction": "recvonly",  # reference/call_held_and_resumed.xml
    "retry_again": "no",  # reference/auth_call_rejected.xml
    "redirect_to": "sip:nobody@127.0.0.1:9",  # uas_redirect.xml: the 302's Contact
    "sink_port": "9",  # uas_reinvite_codec.xml: where the answers point the caller's RTP
    "refer_to": "sip:nobody@127.0.0.1:9",  # uas_refer.xml: the transfer target
    "refused_target": "sip:premium@198.51.100.9",  # uas_refer.xml: one the caller refuses
}


def scenario_path(name: str | Path) -> Path:
    """A scenario file: a path, or a name (with or without .xml) under ``tests/sipp``."""
    path = Path(name)
    if path.is_absolute() or path.exists():
        return path.resolve()
    candidate = SCENARIO_DIR / path
    if candidate.suffix != ".xml":
        candidate = candidate.with_suffix(".xml")
    if not candidate.exists():
        raise FileNotFoundError(f"no SIPp scenario {name!r} in {SCENARIO_DIR}")
    return candidate


class SippExitCode(int):
    """SIPp's exit status; its repr carries the trace, so ``assert sipp.wait() == 0`` says why.

    pytest shortens long assertion explanations unless run with ``-vv``; ``assert_passed``
    raises with the whole report instead.
    """

    report: str

    def __new__(cls, status: int, report: str) -> SippExitCode:
        code = super().__new__(cls, status)
        code.report = report
        return code

    def __repr__(self) -> str:
        meaning = EXIT_MEANINGS.get(int(self), "unknown")
        return f"{int(self)} (SIPp: {meaning})\n{self.report}"


class Sipp:
    """One SIPp instance running one scenario, in its own directory.

    Create, then ``start()`` (or use as a context manager); a UAS is listening when
    ``start()`` returns. ``wait()``/``wait_async()`` give the exit status, ``messages()``
    the SIP trace, ``stop()`` kills it (idempotent; fixtures call it at teardown).
    """

    def __init__(
        self,
        scenario: str | Path,
        workdir: Path,
        *,
        remote: tuple[str, int] | None = None,
        rtp_echo: bool = False,
        calls: int = 1,
        timeout: float = 20.0,
        keys: Mapping[str, str] | None = None,
        service: str = "operator",
        tone_hz: float = 1000.0,
        tone_seconds: float = 4.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        """``remote`` makes it a UAC sending to that address; without it, a UAS.

        ``tone_hz``/``tone_seconds`` shape the ``tone.ulaw``/``tone.alaw`` files that
        ``rtp_stream`` actions play. ``timeout`` bounds the whole run (``-timeout``).
        """
        self.scenario = scenario_path(scenario)
        self.workdir = workdir
        self.remote = remote
        self.rtp_echo = rtp_echo
        self.calls = calls
        self.timeout = timeout
        self.keys = {**DEFAULT_KEYS, **(keys or {})}
        self.service = service
        self.tone_hz = tone_hz
        self.tone_seconds = tone_seconds
        self.extra_args = list(extra_args)
        self.port = 0
        self.media_port = 0
        self.control_port = 0
        self._process: PeerProcess | None = None

    # --- addresses ---------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """Where its SIP socket listens."""
        return (HOST, self.port)

    @property
    def uri(self) -> str:
        """A request-URI that reaches it (a UAS accepts any user)."""
        return f"sip:{self.service}@{HOST}:{self.port}"

    @property
    def messages_path(self) -> Path:
        return self.workdir / "messages.log"

    @property
    def errors_path(self) -> Path:
        return self.workdir / "errors.log"

    # --- life cycle ----------------------------------------------------------------------

    def _argv(self) -> list[str]:
        argv = ["sipp"]
        if self.remote is not None:
            argv.append(f"{self.remote[0]}:{self.remote[1]}")
        argv += [
            "-sf", str(self.scenario),
            "-i", HOST,
            "-p", str(self.port),
            "-mi", HOST,
            "-mp", str(self.media_port),
            "-ci", HOST,
            "-cp", str(self.control_port),
            "-m", str(self.calls),
            "-timeout", f"{self.timeout}s",
            "-timeout_error",
            "-nostdin",
            "-s", self.service,
            "-trace_msg", "-message_file", str(self.messages_path),
            "-trace_err", "-error_file", str(self.errors_path),
        ]  # fmt: skip
        if self.rtp_echo:
            argv.append("-rtp_echo")
        for name, value in self.keys.items():
            argv += ["-key", name, value]
        return argv + self.extra_args

    def start(self, *, attempts: int = 3) -> Sipp:
        """Start SIPp; for a UAS, return once its SIP socket is bound."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        write_tone_ulaw(self.workdir / "tone.ulaw", self.tone_hz, self.tone_seconds)
        write_tone_alaw(self.workdir / "tone.alaw", self.tone_hz, self.tone_seconds)
        for attempt in range(attempts):
            # SIP port, then media ports mp and mp+2 (echo of audio and video), then control.
            self.port = free_port_block(6, align=2)
            self.media_port = self.port + 2
            self.control_port = self.port + 5
            self._process = PeerProcess("sipp", self._argv(), self.workdir)
            self._process.start()
            if self.remote is not None:
                # A UAC needs no waiting, and may well be done before we could look.
                return self
            try:
                self._process.wait_until_bound(self.port, timeout=5.0)
                self._process.wait_until_bound(self.control_port, timeout=5.0)
                return self
            except PeerStartError:
                status = self._process.returncode
                self._process.stop()
                # 254: a port taken between our check and SIPp's bind; try other ports.
                if status != 254 or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def __enter__(self) -> Sipp:
        return self.start() if self._process is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Kill it if still running (no SIPp outlives its test)."""
        if self._process is not None:
            self._process.stop(grace=0.5)

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.returncode

    # --- results -------------------------------------------------------------------------

    def messages(self) -> str:
        """The SIP messages SIPp sent and received so far (``-trace_msg``), as text."""
        return tail(self.messages_path, limit=10**9)

    def trace(self) -> list[TracedMessage]:
        """The SIP messages SIPp sent and received so far, parsed."""
        return parse_trace(self.messages())

    def errors(self) -> str:
        """Unexpected messages and scenario errors (``-trace_err``)."""
        return tail(self.errors_path, limit=10**9)

    def report(self) -> str:
        """Everything useful to explain a failure: errors, screen, messages."""
        process = self._process
        return (
            f"scenario {self.scenario.name} in {self.workdir}\n"
            + (process.output(limit=4000) if process else "(not started)")
            + f"\n--- SIPp errors ---\n{tail(self.errors_path, 6000)}"
            + f"\n--- SIPp messages ---\n{tail(self.messages_path, 12000)}"
        )

    def _exit_code(self, status: int | None) -> SippExitCode:
        if status is None:
            self.stop()
            raise AssertionError(
                f"SIPp still running after {self.timeout + 5} s (killed)\n{self.report()}"
            )
        check = HARNESS_CHECKS.get(self.scenario.name)
        if status == 0 and check is not None:
            problems = check(self)
            if problems:
                return SippExitCode(
                    1,
                    f"harness check of {self.scenario.name} failed after SIPp passed:\n  "
                    + "\n  ".join(problems)
                    + "\n"
                    + self.report(),
                )
        return SippExitCode(status, self.report())

    def wait(self, timeout: float | None = None) -> SippExitCode:
        """Block until SIPp exits; its status (0 = scenario passed).

        Do not call from a coroutine whose event loop runs the code under test: use
        ``wait_async``.
        """
        process = self._require()
        return self._exit_code(process.wait(self.timeout + 5 if timeout is None else timeout))

    async def wait_async(self, timeout: float | None = None) -> SippExitCode:
        """``wait`` that lets the event loop run meanwhile."""
        process = self._require()
        status = await process.wait_async(self.timeout + 5 if timeout is None else timeout)
        return self._exit_code(status)

    def assert_passed(self, timeout: float | None = None) -> None:
        """Wait, and fail with the whole report unless the scenario passed."""
        self._check(self.wait(timeout))

    async def assert_passed_async(self, timeout: float | None = None) -> None:
        self._check(await self.wait_async(timeout))

    def _check(self, code: SippExitCode) -> None:
        if code != 0:
            meaning = EXIT_MEANINGS.get(int(code), "unknown")
            raise AssertionError(
                f"SIPp scenario {self.scenario.name} failed: exit {int(code)} ({meaning})\n"
                + code.report
            )

    def _require(self) -> PeerProcess:
        if self._process is None:
            raise RuntimeError("SIPp was not started")
        return self._process


def check_digest_credentials(sipp: Sipp) -> list[str]:
    """Recompute the digest of every INVITE answering a 401/407 that SIPp sent.

    Independent of SIPp's ``verifyauth`` (MD5 and ``Authorization`` only in 3.6.1): also
    covers ``Proxy-Authorization`` and SHA-256, and checks the digest uri against the
    Request-URI. Credentials are the ``user`` and ``pass`` keys.
    """
    problems: list[str] = []
    challenge: TracedMessage | None = None
    checked = 0
    for message in sipp.trace():
        if message.sent and message.status in (401, 407):
            challenge = message
        elif not message.sent and message.method == "INVITE" and challenge is not None:
            asked_in, answer_in = (
                ("WWW-Authenticate", "Authorization")
                if challenge.status == 401
                else ("Proxy-Authenticate", "Proxy-Authorization")
            )
            credentials = message.header(answer_in)
            if credentials is None:
                problems.append(f"INVITE after the {challenge.status} has no {answer_in}")
                continue
            checked += 1
            problems += [
                f"{answer_in}: {problem}"
                for problem in check_credentials(
                    credentials,
                    challenge.header(asked_in) or "",
                    method="INVITE",
                    request_uri=message.request_uri or "",
                    username=sipp.keys["user"],
                    password=sipp.keys["pass"],
                )
            ]
    if checked == 0 and not problems:
        problems.append("no INVITE with credentials after a 401/407 in the trace")
    return problems


# Checks run on the trace after SIPp exited with 0, for what the scenario cannot check.
HARNESS_CHECKS: dict[str, Callable[[Sipp], list[str]]] = {
    "uas_auth_401.xml": check_digest_credentials,
    "uas_auth_407.xml": check_digest_credentials,
    "uas_auth_401_sha256.xml": check_digest_credentials,
}
