"""Start and stop a private redis-server for tests and benchmarks.

The server listens only on a unix socket in a fresh temporary directory (no
TCP port, so it can never clash with another run or the shared 6379), keeps
nothing on disk unless asked, and is killed on :meth:`RedisServer.stop`.
Fault tests ask for persistence (``appendfsync=``, ``save=``), SIGKILL the
server with :meth:`RedisServer.kill` and bring it back on the same socket and
data directory with :meth:`RedisServer.restart`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class RedisServerNotFound(RuntimeError):
    """No redis-server binary on PATH."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server process owned by the caller.

    Args:
        port: also listen on this TCP port on 127.0.0.1 (0: unix socket only).
        extra: more ``redis-server`` arguments, given last (they override the others).
        save: RDB snapshot rules (``--save``): ``""`` none (the default), ``None``
            Redis's own default (``3600 1 300 100 60 10000``), or e.g. ``"60 1000"``.
        appendfsync: ``None`` for no append-only file (the default), or
            ``"always"``, ``"everysec"`` or ``"no"`` to turn it on with that fsync policy.
    """

    def __init__(
        self,
        port: int = 0,
        extra: list[str] | None = None,
        *,
        save: str | None = "",
        appendfsync: str | None = None,
    ) -> None:
        if appendfsync not in (None, "always", "everysec", "no"):
            raise ValueError(f"appendfsync must be always, everysec or no, not {appendfsync!r}")
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerNotFound(
                "redis-server is not on PATH; install it (Debian: apt-get install redis-server)"
            )
        self.binary = binary
        self.port = port
        self.extra = list(extra or [])
        self.save = save
        self.appendfsync = appendfsync
        self.dir = Path(tempfile.mkdtemp(prefix="myrq-redis-"))
        self.socket = self.dir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def tcp_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The running server's process id (None before start)."""
        return self.process.pid if self.process is not None else None

    def start(self, timeout: float = 10.0) -> RedisServer:
        persistence = [] if self.save is None else ["--save", self.save]
        if self.appendfsync is None:
            persistence += ["--appendonly", "no"]
        else:
            persistence += ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.dir),
            *persistence,
            "--logfile", str(self.dir / "redis.log"),
            *self.extra,
        ]  # fmt: skip
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()  # a restart: the old process's pipe
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                log = self.dir / "redis.log"
                detail = log.read_text() if log.exists() else ""
                raise RuntimeError(f"redis-server exited at start: {err}{detail[-2000:]}")
            if self._ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on {self.socket} within {timeout}s")

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(0.5)
                s.connect(str(self.socket))
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server (the socket directory is kept for a restart)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self, timeout: float = 10.0) -> RedisServer:
        """SIGKILL the server if it runs, then start it again with the same
        settings, socket and directory: it reloads whatever its persistence
        settings kept (its append-only file or RDB snapshot), nothing else.
        """
        self.kill()
        return self.start(timeout)

    def stop(self) -> None:
        """Kill the server and remove its directory."""
        self.kill()
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def require_server() -> bool:
    """True when a missing redis-server must fail tests rather than skip them.

    Set ``MYRQ_REQUIRE_REDIS_SERVER=1`` (``.ci/run`` does) to make it so.
    """
    return os.environ.get("MYRQ_REQUIRE_REDIS_SERVER", "") not in ("", "0", "false", "no")
