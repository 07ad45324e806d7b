"""Redis ACL credentials and TLS, on private redis-servers started here.

The servers listen on a free TCP port (TLS for the second one) and on a
private unix socket used only to see that they are up. The ``default`` user is
disabled, so nothing works without the ACL user's password.

The password must never leak: not in errors, logs, ``myrq info`` output, or
the str/repr of brokers and workers.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from myrq import BrokerConnectionError, Job, JobStatus, MyrqError, Queue, Worker, config
from myrq.backends import RedisBroker, broker_from_url
from myrq.testing.redis_server import (
    RedisServer,
    RedisServerNotFound,
    free_port,
    require_server,
)
from myrq.urls import redact_url
from tests import jobs

ROOT = Path(__file__).resolve().parent.parent
USER = "alice"
PASSWORD = "s3cret-pw"  # appears nowhere else, so any occurrence in output is a leak
WRONG = "wr0ng-guess"
ACL = ["--user", "default", "off", "--user", USER, "on", f">{PASSWORD}", "~*", "&*", "+@all"]


class AclRedisServer(RedisServer):
    """A RedisServer whose readiness check logs in (PING alone gets NOAUTH)."""

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(0.5)
                s.connect(str(self.socket))
                s.sendall(f"AUTH {USER} {PASSWORD}\r\nPING\r\n".encode())
                got = b""
                while b"PONG" not in got and not got.startswith(b"-"):
                    chunk = s.recv(64)
                    if not chunk:
                        return False
                    got += chunk
                return b"+PONG" in got
        except OSError:
            return False


def _start(server_args: dict[str, object]) -> AclRedisServer:
    try:
        return AclRedisServer(**server_args).start()  # type: ignore[arg-type]
    except RedisServerNotFound as exc:
        if require_server():
            pytest.fail(f"MYRQ_REQUIRE_REDIS_SERVER is set but {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def acl_server() -> Iterator[AclRedisServer]:
    server = _start({"port": free_port(), "extra": ACL})
    yield server
    server.stop()


def _url(server: RedisServer, password: str = PASSWORD, scheme: str = "redis") -> str:
    return f"{scheme}://{USER}:{password}@127.0.0.1:{server.port}/0"


@pytest.fixture
def url(acl_server: AclRedisServer) -> Iterator[str]:
    u = _url(acl_server)
    client = redis.Redis.from_url(u)
    client.flushall()
    yield u
    client.flushall()
    client.close()


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text, f"the password leaked: {text[:2000]}"
        assert WRONG not in text, f"the (wrong) password leaked: {text[:2000]}"


def _error_texts(exc: BaseException) -> list[str]:
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    if exc.__cause__ is not None:
        texts += [str(exc.__cause__), repr(exc.__cause__)]
    return texts


# -- redaction -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://alice:pw1@10.0.0.1:6379/0", "redis://alice:***@10.0.0.1:6379/0"),
        ("redis://:pw1@host/0", "redis://:***@host/0"),
        ("rediss://a:p@w1@[::1]:6380/2?ssl_cert_reqs=required",
         "rediss://a:***@[::1]:6380/2?ssl_cert_reqs=required"),
        ("redis://host:1/0?username=a&password=pw1&ssl_password=pw1&db=0",
         "redis://host:1/0?username=a&password=***&ssl_password=***&db=0"),
        ("redis://host/0?%70assword=pw1", "redis://host/0?%70assword=***"),
        ("unix://:pw1@/run/redis.sock?db=1", "unix://:***@/run/redis.sock?db=1"),
        ("redis://host:notaport/0", "redis://host:notaport/0"),  # nothing secret: unchanged
        ("redis://alice@host:6379/0", "redis://alice@host:6379/0"),
    ],
)  # fmt: skip
def test_redact_url_hides_every_password_redis_py_would_use(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# -- ACL user over TCP ------------------------------------------------------------


def test_the_server_really_requires_the_password(acl_server: AclRedisServer) -> None:
    with (
        redis.Redis(host="127.0.0.1", port=acl_server.port) as anonymous,
        pytest.raises(redis.AuthenticationError),
    ):
        anonymous.ping()


def test_acl_user_url_runs_jobs_end_to_end(url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        broker = broker_from_url(url)
        assert isinstance(broker, RedisBroker)
        job = Queue("default", broker=broker).enqueue(jobs.add, 1, 2)
        worker = Worker(["default"], broker=broker, lease_ttl=30)
        assert worker.work(burst=True) == 1
        assert job.get_status() is JobStatus.FINISHED and job.result == 3
        assert Job.fetch(job.id, broker=url).result == 3  # a URL given to fetch works too
    assert f"{USER}:***@127.0.0.1:" in broker.url
    assert_no_secret(caplog.text, str(broker), repr(broker), broker.url, repr(worker), repr(job))
    assert "started on queues" in caplog.text  # the log was captured: the check is not vacuous
    broker.close()


def test_password_given_in_the_query_string_is_redacted_too(acl_server: AclRedisServer) -> None:
    u = f"redis://127.0.0.1:{acl_server.port}/0?username={USER}&password={PASSWORD}"
    broker = RedisBroker.from_url(u)
    broker.ping()  # redis-py does log in with it
    assert_no_secret(broker.url, repr(broker))
    assert "password=***" in broker.url
    broker.close()


@pytest.mark.parametrize("password", [WRONG, None])
def test_wrong_or_missing_password_gives_a_clear_redacted_error(
    acl_server: AclRedisServer, password: str | None
) -> None:
    u = _url(acl_server, WRONG) if password else f"redis://{USER}@127.0.0.1:{acl_server.port}/0"
    broker = RedisBroker.from_url(u)
    with pytest.raises(BrokerConnectionError) as info:
        Queue("default", broker=broker).enqueue(jobs.add, 1, 2)
    msg = str(info.value)
    assert f"127.0.0.1:{acl_server.port}" in msg
    if password:
        assert f"{USER}:***@" in msg
    assert "refused the login" in msg and "password" in msg, msg  # says what is wrong
    assert_no_secret(*_error_texts(info.value), repr(broker))
    broker.close()


def test_worker_with_a_wrong_password_logs_no_secret(
    acl_server: AclRedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    broker = RedisBroker.from_url(_url(acl_server, WRONG))
    with caplog.at_level(logging.DEBUG), pytest.raises(MyrqError) as info:
        Worker(["default"], broker=broker).work(burst=True)  # gives up after ~3 s
    assert "could not take a job" in caplog.text
    assert_no_secret(caplog.text, *_error_texts(info.value))
    broker.close()


def test_configured_settings_do_not_show_the_password(url: str) -> None:
    config.configure(broker=url)
    assert_no_secret(repr(config.settings()), str(config.settings()))
    assert Job.fetch is not None and isinstance(config.get_broker(), RedisBroker)
    assert_no_secret(repr(config.get_broker()))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("MYRQ_BROKER_URL", "MYRQ_SERIALIZER", "MYRQ_KEY_PREFIX"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "myrq", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_cli_never_prints_the_password(url: str, acl_server: AclRedisServer) -> None:
    Queue("default", broker=RedisBroker.from_url(url)).enqueue(jobs.add, 2, 3)
    info = _cli("info", "--broker", url)
    assert info.returncode == 0, info.stderr
    assert f"{USER}:***@127.0.0.1:{acl_server.port}" in info.stdout
    assert "1 queued" in info.stdout
    work = _cli("worker", "--burst", "--log-level", "DEBUG", "--broker", url)
    assert work.returncode == 0, work.stderr
    assert "finished" in work.stderr  # its log lines (stderr) were captured
    bad = _cli("info", "--broker", _url(acl_server, WRONG))
    assert bad.returncode == 1
    assert bad.stderr.startswith("myrq: error:") and f"{USER}:***@" in bad.stderr
    assert_no_secret(info.stdout, info.stderr, work.stdout, work.stderr, bad.stdout, bad.stderr)


# -- TLS ------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AclRedisServer, Path]]:
    """A redis-server speaking only TLS on its TCP port, with a throwaway CA."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed: cannot make test certificates")
    d = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.crt", "-days", "2", "-subj", "/CN=myrq test CA", cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
             "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)  # fmt: skip
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf",
             cwd=d)  # fmt: skip
    port = free_port()
    tls = ["--tls-port", str(port), "--tls-cert-file", str(d / "server.crt"),
           "--tls-key-file", str(d / "server.key"), "--tls-ca-cert-file", str(d / "ca.crt"),
           "--tls-auth-clients", "no"]  # fmt: skip
    try:
        server = _start({"port": 0, "extra": [*ACL, *tls]})
    except RuntimeError as exc:  # e.g. a redis-server built without TLS
        if "tls" in str(exc).lower():
            pytest.skip(f"this redis-server has no TLS support: {exc}")
        raise
    server.port = port  # the TLS port; the plain TCP port is off (--port 0)
    yield server, d / "ca.crt"
    server.stop()


def test_rediss_url_with_ca_runs_jobs_end_to_end(tls_server: tuple[AclRedisServer, Path]) -> None:
    server, ca = tls_server
    u = f"{_url(server, scheme='rediss')}?ssl_ca_certs={ca}&ssl_cert_reqs=required"
    config.configure(broker=u)  # accepted at configure time
    broker = broker_from_url(u)
    assert isinstance(broker, RedisBroker)
    broker.client.flushall()
    job = Queue("default", broker=broker).enqueue(jobs.add, 20, 22)
    assert Worker(["default"], broker=broker, lease_ttl=30).work(burst=True) == 1
    assert job.get_status() is JobStatus.FINISHED and job.result == 42
    assert broker.url.startswith(f"rediss://{USER}:***@127.0.0.1:{server.port}/0?")
    assert_no_secret(broker.url, repr(broker))
    broker.close()


def test_tls_without_the_ca_is_refused_clearly(tls_server: tuple[AclRedisServer, Path]) -> None:
    server, _ = tls_server
    broker = RedisBroker.from_url(f"{_url(server, scheme='rediss')}?ssl_cert_reqs=required")
    with pytest.raises(BrokerConnectionError, match="certificate verify failed") as info:
        broker.ping()
    assert_no_secret(*_error_texts(info.value))
    broker.close()


def test_plain_redis_to_the_tls_port_fails(tls_server: tuple[AclRedisServer, Path]) -> None:
    server, _ = tls_server
    broker = RedisBroker.from_url(_url(server) + "?socket_timeout=2")
    with pytest.raises(BrokerConnectionError) as info:
        broker.ping()
    assert_no_secret(*_error_texts(info.value))
    broker.close()
