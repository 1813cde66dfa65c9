"""kamailio (Debian ``kamailio``, 5.6) as a registrar with digest authentication, in memory.

Facts about running it here (see also /work/shared/peers.md): ``kamailio -f CFG -DD -E``
stays in the foreground and logs to stderr; ``-Y DIR`` puts its runtime files (the pid
file, FIFOs) in the test's directory instead of /run; ``mpath`` names the module folder.
Modules: ``usrloc`` with ``db_mode 0`` keeps bindings in memory, ``registrar`` saves them
(``save("location")``) and finds them (``lookup("location")``), ``auth``'s
``pv_www_authenticate(realm, password, flags)`` checks a digest against a password written
in the config (no database), ``www_challenge`` sends the 401.

The routing script here: REGISTER for `user` must authenticate with `password`, then is
saved (one log line per REGISTER: the AOR, the Contact and its Expires); OPTIONS and INVITE
to a registered user go to its Contact (``lookup`` then ``t_relay``); anything else gets 404.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from .peer_process import PeerProcess, PeerStartError, tail
from .ports import free_udp_port

HOST = "127.0.0.1"
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"
_REGISTERED = re.compile(r"REGISTER aor=(\S+) contact=(\S*) expires=(\S*) status=(\d+)")

CONFIG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
auto_aliases=no
listen=udp:{host}:{port}
alias={host}:{port}
mpath="{modules}"

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"

modparam("usrloc", "db_mode", 0)
modparam("registrar", "default_expires", 3600)
modparam("registrar", "min_expires", 60)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (is_method("REGISTER")) {{
        if ($tU != "{user}" || !pv_www_authenticate("{realm}", "{password}", "0")) {{
            www_challenge("{realm}", "0");
            exit;
        }}
        if (!save("location")) {{
            sl_reply_error();
        }}
        xlog("L_NOTICE", "REGISTER aor=$tu contact=$ct expires=$hdr(Expires) status=200\\n");
        exit;
    }}
    if (is_method("OPTIONS|INVITE") && $rU != $null) {{
        if (!lookup("location")) {{
            sl_send_reply("404", "Not Found");
            exit;
        }}
        t_relay();
        exit;
    }}
    if (is_method("ACK")) {{
        t_relay();
        exit;
    }}
    sl_send_reply("404", "Not Found");
}}
"""


class Kamailio:
    """One kamailio registrar for `user` / `password` in `realm`."""

    def __init__(
        self, workdir: Path, *, user: str = "alice", password: str = "secret", realm: str = "test"
    ) -> None:
        self.workdir = workdir
        self.user = user
        self.password = password
        self.realm = realm
        self.port = 0
        self._process: PeerProcess | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    @property
    def uri(self) -> str:
        return f"sip:{HOST}:{self.port}"

    def start(self) -> Kamailio:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_udp_port()
        config = self.workdir / "kamailio.cfg"
        config.write_text(
            CONFIG.format(
                host=HOST,
                port=self.port,
                modules=MODULES,
                user=self.user,
                password=self.password,
                realm=self.realm,
            )
        )
        runtime = self.workdir / "run"
        runtime.mkdir(exist_ok=True)
        argv = ["kamailio", "-f", str(config), "-DD", "-E", "-Y", str(runtime)]
        self._process = PeerProcess("kamailio", argv, self.workdir)
        self._process.start()
        self._process.wait_until_bound(self.port, timeout=10.0)
        return self

    def log(self) -> str:
        if self._process is None:
            return ""
        return tail(self._process.stderr_path, limit=10**6)

    def registrations(self) -> list[tuple[str, str, str]]:
        """(AOR, Contact, Expires) of each REGISTER it saved, oldest first."""
        found = _REGISTERED.findall(self.log())
        return [(aor, contact, expires) for aor, contact, expires, _ in found]

    def wait_for_registrations(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.registrations()) < count:
            if time.monotonic() > deadline:
                raise PeerStartError(
                    f"{len(self.registrations())} of {count} REGISTERs saved in {timeout} s\n"
                    + (self._process.output() if self._process else "")
                )
            time.sleep(0.02)

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop(grace=2.0)
