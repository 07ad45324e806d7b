"""The myrq command line, run as a real process against a real redis-server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from myrq.cli import main
from myrq.testing.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent


def myrq(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "myrq", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_enqueue_worker_job_and_info(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    url = redis_server.url
    enq = myrq("enqueue", "tests.jobs.add", "1", "2", "--queue", "math", "--broker", url)
    assert enq.returncode == 0, enq.stderr
    job_id = enq.stdout.strip()
    assert redis_client.exists(f"myrq:job:{job_id}")

    info = myrq("info", "--broker", url)
    assert info.returncode == 0, info.stderr
    assert "math" in info.stdout and "1 queued" in info.stdout

    work = myrq("worker", "math", "--burst", "--broker", url, "--log-level", "DEBUG")
    assert work.returncode == 0, work.stderr
    assert f"math: tests.jobs.add ({job_id}) finished" in work.stdout + work.stderr

    show = myrq("job", job_id, "--broker", url)
    assert show.returncode == 0, show.stderr
    assert "status: finished" in show.stdout and "result: 3" in show.stdout


def test_enqueue_with_kwargs_and_job_id(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["enqueue", "tests.jobs.echo", '"a"', "--kwargs", '{"k": [1]}',
                 "--job-id", "cli-1", "--broker", "memory://cli"])  # fmt: skip
    assert code == 0 and capsys.readouterr().out.strip() == "cli-1"
    assert main(["worker", "--burst", "--broker", "memory://cli"]) == 0
    assert main(["job", "cli-1", "--broker", "memory://cli"]) == 0
    out = capsys.readouterr().out
    assert "result: {'args': ['a'], 'kwargs': {'k': [1]}}" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["enqueue", "tests.jobs.add", "hello"], "argument 1 'hello' is not JSON"),
        (["enqueue", "tests.jobs.add", "--kwargs", "[1]"], "--kwargs must be a JSON object"),
        (["worker", "--broker", "amqp://x"], "unknown broker URL scheme 'amqp'"),
        (["enqueue", "tests.jobs.add", "--serializer", "yaml", "--broker", "memory://"],
         "unknown serializer 'yaml'"),
        (["job", "nope", "--broker", "memory://"], "no job 'nope'"),
        (["enqueue", "x", "--broker", "memory://"], "not a dotted path"),
    ],
)  # fmt: skip
def test_bad_arguments_get_one_line_and_nonzero_exit(args: list[str], needle: str) -> None:
    result = myrq(*args)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert needle in result.stderr


def test_unknown_command_is_a_usage_error() -> None:
    result = myrq("bogus")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr and "Traceback" not in result.stderr


def test_unreachable_broker_is_one_line() -> None:
    from myrq.testing.redis_server import free_port

    result = myrq("info", "--broker", f"redis://127.0.0.1:{free_port()}/0")
    assert result.returncode == 1 and "cannot reach Redis" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_demo_runs_and_checks_itself(serializer: str) -> None:
    result = myrq("demo", "--serializer", serializer)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all jobs ended as expected" in result.stdout


def test_demo_against_a_real_redis_server(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    result = myrq("demo", "--broker", redis_server.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "#1" in result.stdout and "all jobs ended as expected" in result.stdout
    assert redis_client.keys("myrq:job:*") == []  # the demo deletes its jobs
    for key in redis_client.keys("myrq:claim:*"):  # claim records, kept for a lease
        assert 0 < redis_client.pttl(key) <= 15_000


def test_worker_finds_allowed_modules_next_to_where_it_starts(
    redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    (tmp_path / "cli_tasks_xyz.py").write_text("def triple(x):\n    return 3 * x\n")
    url = redis_server.url
    enq = myrq("enqueue", "cli_tasks_xyz.triple", "14", "--broker", url)
    assert enq.returncode == 0, enq.stderr
    # The installed console script, not `python -m` (which puts the cwd on sys.path itself).
    script = Path(sys.executable).with_name("myrq")
    work = subprocess.run(
        [str(script), "worker", "--burst", "--broker", url, "--allow", "cli_tasks_xyz"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert work.returncode == 0, work.stderr
    job = myrq("job", enq.stdout.strip(), "--broker", url)
    assert "status: finished" in job.stdout and "result: 42" in job.stdout, job.stdout


def test_repair_requeues_running_jobs_whose_leases_were_lost(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    from myrq.backends import RedisBroker

    broker = RedisBroker(redis_client, url=redis_server.url)
    for name in ("lost", "later", "waiting"):
        broker.enqueue("default", name, {"func": b"{}", "queue": b"default"})
    broker.dequeue(["default"], "w", 30)
    redis_client.delete("myrq:leases")  # an operator's DEL, or an eviction
    broker.dequeue(["default"], "w", 30)  # "later" is claimed after: it holds a lease
    dry = myrq("repair", "--dry-run", "--broker", redis_server.url)
    assert dry.returncode == 0 and "lost" in dry.stdout and "later" not in dry.stdout
    assert broker.get("lost") is not None and broker.get("lost")["status"] == b"running"  # type: ignore[index]
    fixed = myrq("repair", "--broker", redis_server.url)
    assert fixed.returncode == 0, fixed.stderr
    assert "lost: requeued on default" in fixed.stdout and "repaired 1 job(s)" in fixed.stdout
    assert broker.queued_ids("default") == ["waiting", "lost"]
    again = myrq("repair", "--broker", redis_server.url)
    assert "nothing to repair" in again.stdout


def test_workers_info_and_job_show_leases_and_live_workers(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    from myrq.backends import RedisBroker

    broker = RedisBroker(redis_client, url=redis_server.url)
    broker.enqueue("default", "j1", {"func": b'{"func_name":"m.f","args":[],"kwargs":{}}',
                                     "queue": b"default", "created_at": b"1700000000"})  # fmt: skip
    broker.register_worker("alive-1", {"host": b"h", "pid": b"42", "queues": b"default",
                                       "job": b"j1", "beat_at": b"1700000000"}, 30)  # fmt: skip
    broker.dequeue(["default"], "alive-1", 30)
    out = myrq("workers", "--broker", redis_server.url).stdout
    assert "1 alive" in out and "alive-1" in out and "pid 42" in out and "job j1" in out
    info = myrq("info", "--broker", redis_server.url).stdout
    assert "running (leased) jobs: 1" in info and "j1  worker alive-1 (alive)" in info
    assert "lease expires in" in info
    job = myrq("job", "j1", "--broker", redis_server.url).stdout
    assert "worker: alive-1 (alive)" in job and "lease: expires in" in job
    assert "created: 2023-11-14 22:13:20 UTC (" in job  # readable, not an epoch float
    broker.unregister_worker("alive-1")
    job = myrq("job", "j1", "--broker", redis_server.url).stdout
    assert "worker: alive-1 (gone" in job
    assert "lease: alive-1:" in myrq("job", "j1", "--raw", "--broker", redis_server.url).stdout


def test_repair_leaves_jobs_of_live_workers_to_their_heartbeat(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    from myrq.backends import RedisBroker

    broker = RedisBroker(redis_client, url=redis_server.url)
    broker.enqueue("default", "mine", {"func": b"{}", "queue": b"default"})
    broker.dequeue(["default"], "alive-w", 30)
    broker.register_worker("alive-w", {"pid": b"1"}, 30)
    redis_client.delete("myrq:leases")
    out = myrq("repair", "--broker", redis_server.url).stdout
    assert "held by live worker alive-w" in out and "nothing to repair" in out
    rec = broker.get("mine")
    assert rec is not None and rec["status"] == b"running"


def test_enqueue_later_and_list_and_remove_schedules(capsys: pytest.CaptureFixture[str]) -> None:
    url = "memory://cli-time"
    assert main(["enqueue", "tests.jobs.add", "1", "2", "--delay", "1h", "--retry", "2",
                 "--job-id", "later", "--broker", url]) == 0  # fmt: skip
    assert main(["job", "later", "--broker", url]) == 0
    assert "status: scheduled" in capsys.readouterr().out
    from myrq import Queue

    Queue("default", broker=url).cron("*/5 * * * *", "tests.jobs.add", args=[1, 2], name="five")
    assert main(["cron", "--broker", url]) == 0
    assert "default/five: tests.jobs.add */5 * * * * (UTC); next 20" in capsys.readouterr().out
    assert main(["cron", "default", "--remove", "five", "--broker", url]) == 0
    assert main(["cron", "--broker", url]) == 0
    assert "no periodic schedules" in capsys.readouterr().out
    assert main(["cron", "--remove", "five", "--broker", url]) == 1  # needs its queue


def test_stop_cancel_requeue_and_empty_from_the_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "memory://cli-control"
    for job_id, func, arg in [("bad", "tests.jobs.fail", '"x"'), ("ok", "tests.jobs.add", "1")]:
        extra = [] if func == "tests.jobs.fail" else ["2"]
        assert main(["enqueue", func, arg, *extra, "--job-id", job_id, "--broker", url]) == 0
    assert main(["enqueue", "tests.jobs.add", "1", "2", "--job-id", "after",
                 "--depends-on", "ok", "--broker", url]) == 0  # fmt: skip
    assert main(["worker", "--burst", "--broker", url]) == 0
    capsys.readouterr()
    assert main(["info", "--broker", url]) == 0
    assert "2 finished, 1 failed" in capsys.readouterr().out
    assert main(["requeue", "bad", "--broker", url]) == 0
    assert "bad: requeued on default" in capsys.readouterr().out
    assert main(["requeue", "bad", "--broker", url]) == 1  # pending now: not ended
    assert main(["cancel", "bad", "--broker", url]) == 0
    assert main(["stop", "ok", "--broker", url]) == 0
    assert "ok: had already ended (finished)" in capsys.readouterr().out
    assert main(["requeue", "--queue", "default", "--state", "canceled", "--broker", url]) == 0
    assert "requeued 1 job(s) of default (canceled)" in capsys.readouterr().out
    assert main(["empty", "default", "--broker", url]) == 0
    assert "1 job(s) waiting; run again with --yes" in capsys.readouterr().out
    assert main(["empty", "default", "--yes", "--broker", url]) == 0
    assert "deleted 1 waiting job(s)" in capsys.readouterr().out
    assert main(["stop", "bad", "--broker", url]) == 1  # deleted: no such job
    assert main(["requeue", "--broker", url]) == 1  # neither ids nor a queue


def test_version() -> None:
    result = myrq("--version")
    assert result.returncode == 0 and result.stdout.startswith("myrq ")


def test_requeue_all_failed_of_a_queue_and_info_without_a_scan(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "memory://cli-requeue"
    for n in range(2):
        assert (
            main(["enqueue", "tests.jobs.fail", '"x"', "--job-id", f"f{n}", "--broker", url]) == 0
        )
    assert main(["worker", "--burst", "--broker", url]) == 0
    capsys.readouterr()
    assert main(["info", "--broker", url]) == 0
    out = capsys.readouterr().out
    assert "2 failed" in out and "jobs by status" not in out
    assert main(["info", "--scan", "--broker", url]) == 0
    assert "jobs by status (every record read)" in capsys.readouterr().out
    assert main(["requeue", "default", "--all-failed", "--broker", url]) == 0
    assert "requeued 2 job(s) of default (failed, timeout)" in capsys.readouterr().out
    assert main(["requeue", "a", "b", "--all-failed", "--broker", url]) == 1
    capsys.readouterr()
    assert main(["requeue", "--queue", "default", "--state", "bogus", "--broker", url]) == 1
    err = capsys.readouterr().err
    assert "--state bogus: only ended jobs can be requeued; the states are canceled" in err
    assert "Traceback" not in err
