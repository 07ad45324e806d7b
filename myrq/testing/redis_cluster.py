"""Start and stop a private Redis Cluster or Sentinel setup, for tests and benchmarks.

:class:`LocalCluster` starts ``masters`` (plus ``replicas`` per master)
``redis-server`` processes with ``cluster-enabled yes`` on free TCP ports of
127.0.0.1, joins them with ``redis-cli --cluster create``, and waits until every
node reports ``cluster_state:ok``. :class:`LocalSentinel` starts one master, its
replicas and one Sentinel watching them. Each node also listens on a unix socket
in its own temporary directory (see :class:`~myrq.testing.redis_server.RedisServer`);
:meth:`stop` kills every process and removes the directories. Nothing keeps data
on disk, and no fixed port is used.
"""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from myrq.exceptions import BrokerConnectionError
from myrq.testing.redis_server import RedisServer, RedisServerNotFound

if TYPE_CHECKING:
    from myrq.queue import Queue

#: Node timeout of test clusters and Sentinels (ms): a failed master is replaced within seconds.
NODE_TIMEOUT_MS = 1500


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(count: int, *, bus: bool = False) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 (with ``bus``: port + 10000 free too)."""
    found: list[int] = []
    while len(found) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port in found or (bus and (port > 55000 or not _port_is_free(port + 10000))):
            continue
        found.append(port)
    return found


def _cli() -> str:
    binary = shutil.which("redis-cli")
    if binary is None:
        raise RedisServerNotFound(
            "redis-cli is not on PATH; install it (Debian: apt-get install redis-tools)"
        )
    return binary


def _info(server: RedisServer, section: str) -> dict[str, str]:
    out = subprocess.run(
        [_cli(), "-s", str(server.socket), *section.split()],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout
    return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)


class LocalCluster:
    """A Redis Cluster of ``masters`` masters, ``replicas`` replicas each, owned by the caller."""

    def __init__(self, masters: int = 3, replicas: int = 0, extra: list[str] | None = None):
        self.masters = masters
        self.replicas = replicas
        self.dir = Path(tempfile.mkdtemp(prefix="myrq-cluster-"))
        ports = free_ports(masters * (1 + replicas), bus=True)
        options = [
            "--cluster-enabled", "yes",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--cluster-require-full-coverage", "no",
            "--cluster-allow-replica-migration", "no",
            *(extra or []),
        ]  # fmt: skip
        self.nodes = [
            RedisServer(port, [*options, "--cluster-config-file", f"nodes-{port}.conf"])
            for port in ports
        ]

    @property
    def url(self) -> str:
        """``redis+cluster://`` URL naming every node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self, timeout: float = 60.0) -> LocalCluster:
        try:
            for node in self.nodes:
                node.start()
            if self.replicas:
                addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
                subprocess.run(
                    [_cli(), "--cluster", "create", *addresses,
                     "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                    capture_output=True, text=True, timeout=timeout, check=True,
                )  # fmt: skip
            else:  # by hand: redis-cli wants 3 masters at least, benchmarks use 1 and 2
                self._join_masters()
            self.wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _join_masters(self) -> None:
        """Give master ``i`` the ``i``-th of equal slot ranges and introduce them to each other."""
        count = len(self.nodes)
        for i, node in enumerate(self.nodes):
            low, high = i * 16384 // count, (i + 1) * 16384 // count - 1
            self.cli(node, "cluster", "addslotsrange", str(low), str(high))
        for node in self.nodes[1:]:
            self.cli(self.nodes[0], "cluster", "meet", "127.0.0.1", str(node.port))

    def wait_ok(self, timeout: float = 60.0) -> None:
        """Wait until every running node says ``cluster_state:ok`` and knows every master."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = [n for n in self.nodes if n.process and n.process.poll() is None]
            infos = [_info(n, "cluster info") for n in running]
            if all(
                i.get("cluster_state") == "ok" and i.get("cluster_size") == str(self.masters)
                for i in infos
            ) and self._replicas_synced(running):
                return
            time.sleep(0.1)
        raise RuntimeError(f"cluster in {self.dir} not ok after {timeout}s")

    def _replicas_synced(self, running: list[RedisServer]) -> bool:
        for node in running:
            info = _info(node, "info replication")
            if info.get("role") == "slave" and info.get("master_link_status") != "up":
                return False
        return True

    def node_of_port(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def cli(self, node: RedisServer, *args: str, timeout: float = 30.0) -> str:
        """Run ``redis-cli`` on ``node`` (by its unix socket); its standard output."""
        done = subprocess.run(
            [_cli(), "-s", str(node.socket), *args],
            capture_output=True, text=True, timeout=timeout, check=True,
        )  # fmt: skip
        return done.stdout

    def role(self, node: RedisServer) -> str:
        return _info(node, "info replication").get("role", "")

    def masters_now(self) -> list[RedisServer]:
        """The running nodes that are masters now."""
        running = [n for n in self.nodes if n.process and n.process.poll() is None]
        return [n for n in running if self.role(n) == "master"]

    def replica_of(self, master: RedisServer) -> RedisServer:
        """A running replica of ``master``."""
        for node in self.nodes:
            if node.process and node.process.poll() is None and self.role(node) == "slave":
                info = _info(node, "info replication")
                if info.get("master_port") == str(master.port):
                    return node
        raise LookupError(f"no replica of {master.port}")

    def node_id(self, node: RedisServer) -> str:
        return self.cli(node, "cluster", "myid").strip()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LocalSentinel:
    """A master, ``replicas`` replicas, and one Sentinel (quorum 1) watching them as ``service``."""

    def __init__(self, replicas: int = 1, service: str = "myrq", extra: list[str] | None = None):
        self.service = service
        ports = free_ports(2 + replicas)
        self.master = RedisServer(ports[0], list(extra or []))
        self.replicas = [
            RedisServer(port, ["--replicaof", "127.0.0.1", str(ports[0]), *(extra or [])])
            for port in ports[1:-1]
        ]
        self.sentinel_port = ports[-1]
        self.dir = Path(tempfile.mkdtemp(prefix="myrq-sentinel-"))
        self.sentinel: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{self.service}"

    def start(self, timeout: float = 30.0) -> LocalSentinel:
        try:
            self.master.start()
            for replica in self.replicas:
                replica.start()
            conf = self.dir / "sentinel.conf"
            conf.write_text(
                f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 1\n"
                f"sentinel down-after-milliseconds {self.service} {NODE_TIMEOUT_MS}\n"
                f"sentinel failover-timeout {self.service} 10000\n"
                f"logfile {self.dir / 'sentinel.log'}\n"
            )
            binary = shutil.which("redis-server") or "redis-server"
            self.sentinel = subprocess.Popen(
                [binary, str(conf), "--sentinel"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self._wait(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            synced = all(
                _info(r, "info replication").get("master_link_status") == "up"
                for r in self.replicas
            )
            if synced and self.sentinel_replicas() >= len(self.replicas):
                return
            time.sleep(0.1)
        raise RuntimeError(f"sentinel setup in {self.dir} not ready after {timeout}s")

    def sentinel_cli(self, *args: str) -> str:
        done = subprocess.run(
            [_cli(), "-p", str(self.sentinel_port), *args],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        return done.stdout

    def sentinel_replicas(self) -> int:
        """How many replicas the Sentinel knows of (and reports not down)."""
        out = self.sentinel_cli("sentinel", "replicas", self.service).split()
        return sum(1 for word in out if word == "slave")

    def master_port(self) -> int:
        """The port of the master the Sentinel names now."""
        out = self.sentinel_cli("sentinel", "get-master-addr-by-name", self.service).split()
        return int(out[1])

    def node_of_port(self, port: int) -> RedisServer:
        return next(n for n in (self.master, *self.replicas) if n.port == port)

    def stop(self) -> None:
        if self.sentinel is not None and self.sentinel.poll() is None:
            self.sentinel.kill()
            self.sentinel.wait(timeout=10)
        for node in (self.master, *self.replicas):
            node.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalSentinel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SteadyProducer(threading.Thread):
    """Enqueues ``tests.faultjobs.ledger_write``-style jobs at a steady rate, in a thread.

    Each job is sent again until one send is acknowledged (a resend of the same
    prepared job is recognised by the broker), so ``acked`` lists exactly the
    jobs whose enqueue returned: the ones a failover must not lose.
    """

    def __init__(self, queue: Queue, func: str, ledger: Path, per_second: float) -> None:
        super().__init__(daemon=True)
        self.queue, self.func, self.ledger, self.pause = queue, func, ledger, 1 / per_second
        self.acked: list[str] = []
        self.acked_at: list[float] = []  # time.monotonic() of each acknowledgement
        self.retries = 0
        self.halt = threading.Event()

    def longest_pause(self) -> float:
        """The longest time between two acknowledgements (seconds)."""
        return max((b - a for a, b in itertools.pairwise(list(self.acked_at))), default=0.0)

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            job = self.queue.prepare(self.func, (str(self.ledger), f"t{n}"), job_id=f"t{n}")
            while not self.halt.is_set():
                try:
                    self.queue.enqueue_many([job])
                    self.acked.append(job.id)
                    self.acked_at.append(time.monotonic())
                    break
                except BrokerConnectionError:
                    self.retries += 1
                    time.sleep(0.05)
            n += 1
            time.sleep(self.pause)
