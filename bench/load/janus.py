"""The anchor: the Janus SIP plugin (Debian `janus` 1.1.2), the C gateway people deploy for
browser-to-SIP calls, set up for loopback in the point's directory.

- Configuration written here, nothing read from /etc/janus: the core (ICE on 127.0.0.1,
  DTLS certificate made at start, warnings only in the log, no event handlers or loggers),
  the HTTP transport on 127.0.0.1 (no admin API), and the SIP plugin with its SIP and RTP
  on 127.0.0.1. All other plugins and transports are disabled. Otherwise Janus's defaults
  (one event loop thread per handle, as deployed).
- libnice skips loopback interfaces, and loopback is all there is in the benchmark's
  network namespace: `loopback_ifaddrs.c`, compiled here with `cc` into the point's
  directory, is preloaded to clear IFF_LOOPBACK in getifaddrs().

Visitors use bench/load/signaling.py's JanusSignaling (janus.js's requests over HTTP).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .servers import HOST, OPERATOR_USER, SERVER_SESSION, Processes, Server, free_port, wait_bound

SHIM_SOURCE = Path(__file__).with_name("loopback_ifaddrs.c")
PLUGINS = [
    "audiobridge", "duktape", "echotest", "lua", "nosip", "recordplay", "streaming",
    "textroom", "videocall", "videoroom", "voicemail",
]  # fmt: skip
TRANSPORTS = ["mqtt", "nanomsg", "pfunix", "rabbitmq", "websockets"]


class JanusUnavailable(RuntimeError):
    """Janus or a C compiler is missing (scripts/install-system-deps installs both)."""


def library_dir() -> Path:
    """Where Debian's janus keeps its plugins (the multiarch directory of this machine)."""
    for candidate in sorted(Path("/usr/lib").glob("*/janus")):
        if (candidate / "plugins" / "libjanus_sip.so").exists():
            return candidate
    raise JanusUnavailable("the Janus SIP plugin is not installed (Debian package janus)")


def build_shim(directory: Path) -> Path:
    """Compile the getifaddrs shim into `directory`; its path."""
    compiler = shutil.which("cc")
    if compiler is None:
        raise JanusUnavailable("no C compiler (cc) to build the loopback shim for Janus")
    output = directory / "libloopback_ifaddrs.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(output), str(SHIM_SOURCE), "-ldl"],
        check=True,
        capture_output=True,
    )
    return output


def write_config(directory: Path, *, http: int, rtp: tuple[int, int], sip_rtp: tuple[int, int]):
    libraries = library_dir()
    directory.mkdir(parents=True, exist_ok=True)
    disabled_plugins = ",".join(f"libjanus_{name}.so" for name in PLUGINS)
    disabled_transports = ",".join(f"libjanus_{name}.so" for name in TRANSPORTS)
    (directory / "janus.jcfg").write_text(
        f"""general: {{
    configs_folder = "{directory}"
    plugins_folder = "{libraries}/plugins"
    transports_folder = "{libraries}/transports"
    events_folder = "{libraries}/events"
    loggers_folder = "{libraries}/loggers"
    debug_level = 3
    interface = "{HOST}"
    server_name = "bench"
}}
certificates: {{
}}
media: {{
    rtp_port_range = "{rtp[0]}-{rtp[1]}"
}}
nat: {{
    ice_enforce_list = "lo"
    nice_debug = false
}}
plugins: {{
    disable = "{disabled_plugins}"
}}
transports: {{
    disable = "{disabled_transports}"
}}
loggers: {{
    disable = "libjanus_jsonlog.so"
}}
events: {{
    broadcast = false
}}
"""
    )
    (directory / "janus.transport.http.jcfg").write_text(
        f"""general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    port = {http}
    ip = "{HOST}"
    https = false
}}
admin: {{
    admin_http = false
    admin_https = false
}}
"""
    )
    (directory / "janus.plugin.sip.jcfg").write_text(
        f"""general: {{
    local_ip = "{HOST}"
    sdp_ip = "{HOST}"
    keepalive_interval = 0
    behind_nat = false
    register_ttl = 3600
    rtp_port_range = "{sip_rtp[0]}-{sip_rtp[1]}"
    sip_timer_t1x64 = 32000
    events = false
}}
"""
    )


def start_janus(processes: Processes, *, calls: int, operator_port: int) -> Server:
    """Janus with the SIP plugin, calling the operator; once its HTTP API listens."""
    if shutil.which("janus") is None:
        raise JanusUnavailable("janus is not installed (Debian package janus)")
    workdir = processes.workdir
    shim = build_shim(workdir)
    config = workdir / "janus"
    http = free_port()
    pairs = 4 * max(calls, 50)
    rtp = (42000, 42000 + 2 * pairs - 1)
    sip_rtp = (rtp[1] + 1, rtp[1] + 2 * pairs)
    write_config(config, http=http, rtp=rtp, sip_rtp=sip_rtp)
    process = processes.start(
        "janus",
        ["janus", "-F", str(config), "-o"],
        env={"LD_PRELOAD": str(shim)},
        own_session=SERVER_SESSION,
    )
    wait_bound(http, process, timeout=20, proto="tcp")
    return Server(
        "janus",
        process,
        {
            "kind": "janus",
            "url": f"http://{HOST}:{http}/janus",
            "operator_uri": f"sip:{OPERATOR_USER}@{HOST}:{operator_port}",
        },
    )
