"""Starting and stopping the servers under test, pinned to a core, and reading their usage."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SERVER_CORE = "0"
LOAD_CORE = "1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


_RUNNING: dict[int, Server] = {}


@atexit.register
def stop_all() -> None:
    """Stop every server this process started and has not stopped (errors, Ctrl+C)."""
    for server in list(_RUNNING.values()):
        server.stop()


class ServerError(RuntimeError):
    """A server did not start; the message carries the end of its log."""


def uvicorn_command(app: str, port: int, *, backlog: int = 2048) -> list[str]:
    """One uvicorn worker, no access log, uvloop and httptools when installed."""
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--no-access-log", "--log-level", "warning",
               "--backlog", str(backlog)]
    for module, flag in (("uvloop", ["--loop", "uvloop"]), ("httptools", ["--http", "httptools"])):
        with contextlib.suppress(ImportError):
            __import__(module)
            command += flag
    return command


@dataclass
class Server:
    """A server process pinned to SERVER_CORE; ``start`` returns once its port accepts."""

    name: str
    command: list[str]
    port: int
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ServerError(f"{self.name} is not running")
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if _port_open(self.port):
            raise ServerError(f"port {self.port} for {self.name} is already in use")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            # taskset execs the command, so the Popen pid is the server's own pid.
            self.process = subprocess.Popen(
                ["taskset", "-c", SERVER_CORE, *self.command],
                env={**os.environ, **self.env}, cwd=self.cwd, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        _RUNNING[id(self)] = self
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"{self.name} exited with {self.process.returncode}:\n"
                                  f"{self.log_tail()}")
            if _port_open(self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise ServerError(f"{self.name} did not open port {self.port} within {START_TIMEOUT:.0f} s:"
                          f"\n{self.log_tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        _RUNNING.pop(id(self), None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def rss_kib(self) -> int:
        """Resident memory (VmRSS) in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise ServerError(f"no VmRSS for {self.name}")

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
