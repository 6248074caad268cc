"""
Run the real SBC as a separate process (``python -m twisted sbc --config ...``) on free
loopback ports, and talk to it with real sockets and SIPp.

Only processes started here are ever stopped, by their own pid.
"""

from __future__ import annotations

import atexit
import os
import shutil
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
SCENARIOS = REPO / "bench" / "scenarios"
FQDN = "sbc.test.invalid"


#: Ports handed out for listeners in tests: below the kernel's ephemeral range (32768 and up
#: on Linux), where an outgoing connection or client socket could take a port between our
#: check and the moment SIPp or the SBC binds it, and below the SBCs' RTP blocks (20000 and up).
_LISTEN_PORTS = (12000, 20000)
_handed_out: set[int] = set()
_ports_rng = random.Random()  # its own: a test that seeds the global generator changes nothing here


def _bindable(port: int) -> bool:
    for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        for k in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            try:
                with socket.socket(fam, k) as t:
                    t.bind((host, port))
            except OSError:
                return False
    return True


def free_port(kind: int = socket.SOCK_DGRAM, family: int = socket.AF_INET, span: int = 1) -> int:
    """A port that is free for both UDP and TCP on 127.0.0.1 and ::1 right now, and not one
    this process handed out before (two peers of one test, each given a free port before
    either binds it, must not get the same one).  ``span``: the ports after it too (see
    :func:`free_media_port`)."""
    for _ in range(200):
        port = _ports_rng.randrange(_LISTEN_PORTS[0], _LISTEN_PORTS[1] - span)
        block = range(port, port + span)
        if all(p not in _handed_out for p in block) and all(_bindable(p) for p in block):
            _handed_out.update(block)
            return port
    for _ in range(50):  # crowded: any port the kernel offers
        with socket.socket(family, kind) as s:
            s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
            port = s.getsockname()[1]
        if _bindable(port):
            return port
    raise RuntimeError("no free port")


def free_media_port() -> int:
    """A base for SIPp's ``-mp``: SIPp binds it and the three ports after it (audio RTP and
    RTCP, video RTP and RTCP), so all four must be free and handed out to nobody else."""
    return free_port(span=4)


def sipp_path() -> str | None:
    return shutil.which("sipp")


class TwistProcess:
    """A ``python -m twisted <plugin>`` process with its own folder and log.

    Only this process is ever stopped, by its pid.  Tests read the log after stopping it, so
    the folder goes when the test run ends.
    """

    name = "process"

    def __init__(self, prefix: str, log_name: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        atexit.register(shutil.rmtree, self.dir, True)
        self.log = self.dir / log_name
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self, plugin_args: list[str], ready: "Callable[[], bool]",
              timeout: float = 20.0) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "twisted", "--log-format", "text", *plugin_args],
                cwd=self.dir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up:\n" + self.log_text())
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer OPTIONS in time:\n" + self.log_text())

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class RunningSbc(TwistProcess):
    """An SBC process with its own config file and log."""

    name = "SBC"

    def __init__(self, extra_toml: str = "", *, tls: tuple[Path, Path] | None = None,
                 agent_uri: str = "sip:{user}@127.0.0.1:5090", trunk_toml: str | None = None) -> None:
        """``trunk_toml``: the whole ``[[trunk]]`` text instead of the default trunk "local"
        (which allows 127.0.0.1 and ::1 and sends calls to ``agent_uri``); ``extra_toml``
        follows it."""
        super().__init__("sbc-it-", "sbc.log")
        self.sip_port = free_port()
        self.admin_port = free_port(socket.SOCK_STREAM)
        self.tls_port = free_port(socket.SOCK_STREAM) if tls else None
        block = random.randrange(20000, 60000, 400)
        self.media_ports = (block, block + 399)
        listeners = []
        for transport in ("udp", "tcp"):
            for address in ("127.0.0.1", "::1"):
                listeners.append(
                    f'[[listen]]\ntransport = "{transport}"\naddress = "{address}"\n'
                    f"port = {self.sip_port}\n"
                )
        if tls:
            cert, key = tls
            listeners.append(
                f'[[listen]]\ntransport = "tls"\naddress = "127.0.0.1"\nport = {self.tls_port}\n'
                f'certificate = "{cert}"\nprivate_key = "{key}"\n'
            )
        self.config = self.dir / "sbc.toml"
        self.config.write_text(
            f'[sbc]\nfqdn = "{FQDN}"\n\n'
            + "\n".join(listeners)
            + f'\n[admin]\naddress = "127.0.0.1"\nport = {self.admin_port}\n\n'
            # SIPp's agent-side scenarios would count the SBC's OPTIONS pings as unexpected
            # messages: no pings unless a test asks for them.
            + ("" if "[agent]" in extra_toml else "[agent]\noptions_interval = 0\n\n")
            # Each SBC of a test run takes its own RTP port block, so that parallel SBCs do
            # not fight over the default 10000-19999.
            + ("" if "[media]" in extra_toml else
               f"[media]\nport_min = {self.media_ports[0]}\nport_max = {self.media_ports[1]}\n\n")
            + (trunk_toml if trunk_toml is not None else
               '[[trunk]]\nname = "local"\nallow = ["127.0.0.1/32", "::1/128"]\n'
               f'agent_uri = "{agent_uri}"\n')
            + extra_toml
        )

    def start(self, timeout: float = 20.0) -> "RunningSbc":
        self.spawn(["sbc", "--config", str(self.config)], self.ping, timeout)
        return self

    def ping(self) -> bool:
        reply = udp_exchange(options_request(self.sip_port), self.sip_port, timeout=0.3)
        return reply is not None and reply.startswith(b"SIP/2.0 200")

    def health(self) -> dict:
        """The admin /healthz document."""
        import json
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/healthz", timeout=5) as r:
            return json.load(r)


_shared: RunningSbc | None = None


def shared_sbc() -> RunningSbc:
    """One SBC process shared by the integration tests of this run."""
    global _shared
    if _shared is None or not _shared.alive():
        # The tests sharing it send deliberately bad input (the RFC 4475 torture corpus, 50
        # rounds of it) from one source: no temporary bans here, or the corpus would ban
        # 127.0.0.1 for the other tests (bans are tested in test_admission_e2e).
        _shared = RunningSbc(extra_toml="\n[security]\nban_threshold = 0\n").start()
    return _shared


def options_request(port: int, *, host: str = "127.0.0.1", transport: str = "UDP",
                    branch: str = "z9hG4bK-it-1", call_id: str = "it-1@test") -> bytes:
    h = f"[{host}]" if ":" in host else host
    return (
        f"OPTIONS sip:ping@{h}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {h}:9;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:probe@test.invalid>;tag=probe1\r\n"
        f"To: <sip:ping@{h}:{port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def udp_exchange(data: bytes, port: int, *, host: str = "127.0.0.1",
                 timeout: float = 1.0) -> bytes | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, (host, port))
        try:
            return s.recvfrom(70000)[0]
        except (socket.timeout, ConnectionRefusedError):
            return None


def read_sip_message(sock: socket.socket, buf: bytearray, timeout: float) -> bytes | None:
    """Read one Content-Length-framed message from a stream socket (None on timeout/close)."""
    sock.settimeout(timeout)
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buf[:end])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() in (b"content-length", b"l"):
                    length = int(value.strip() or b"0")
            total = end + 4 + length
            if len(buf) >= total:
                msg = bytes(buf[:total])
                del buf[:total]
                return msg
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return None
        if not chunk:
            return None
        buf += chunk


def status_of(reply: bytes | None) -> int | None:
    if reply is None:
        return None
    parts = reply.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[0] == b"SIP/2.0" else None
